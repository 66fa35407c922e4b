"""The ``napari-unet`` command: thin argument parsing over the headless API.

Every sub-command reports bad input as one line on stderr and exits with
status 2 (no traceback); outputs are written atomically.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

EXIT_BAD_INPUT = 2


class CliError(Exception):
    """A user error: printed as one line, exit status 2."""


def _add_predict(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "predict",
        help="segment images, stacks or folders of them with a U-Net (overlap-tile)",
        description="2D images, (Z, Y, X) stacks slice by slice, zarr stores tile by tile; "
        "many files in this process or on dask.distributed workers. Inputs whose outputs "
        "exist are skipped.",
    )
    parser.add_argument(
        "inputs", nargs="+", type=Path, help="TIFF/PNG images, zarr stores or folders of them"
    )
    parser.add_argument("--model", required=True, help="bundled model name or checkpoint path")
    parser.add_argument("--output", required=True, type=Path, help="output folder")
    parser.add_argument(
        "--tile-size", type=int, default=None, help="input tile edge (default: auto)"
    )
    parser.add_argument("--batch-size", type=int, default=4, help="tiles per forward pass")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    parser.add_argument(
        "--tta",
        action="store_true",
        help="test-time augmentation: average each tile over its 8 rotations and flips (8x slower)",
    )
    parser.add_argument(
        "--instances",
        choices=["components", "watershed"],
        default="components",
        help="how instance labels are made from the mask",
    )
    parser.add_argument(
        "--axes",
        default=None,
        help="axes of every input, e.g. ZYX, ZCYX, YXS (S = RGB samples); default: the "
        "file's metadata, else a guess from the shape",
    )
    parser.add_argument(
        "--output-format",
        choices=["auto", "tiff", "zarr"],
        default="auto",
        help="auto: a zarr store for zarr inputs and very large outputs, else TIFF files",
    )
    _add_batch_options(parser)


def _add_batch_options(parser: argparse.ArgumentParser) -> None:
    """Options of ``predict`` for many files, re-runs and dask.distributed."""
    parser.add_argument("--overwrite", action="store_true", help="recompute finished outputs")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads per file (default: all here, 1 on dask workers); results are "
        "bit-identical between runs with the same count",
    )
    cluster = parser.add_argument_group("many files (dask.distributed)")
    cluster.add_argument(
        "--scheduler", default=None, help="address of a dask scheduler, e.g. tcp://host:8786"
    )
    cluster.add_argument(
        "--workers", type=int, default=None, help="start a local cluster of N worker processes"
    )


def _add_train(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("train", help="fine-tune (or train from scratch) on annotations")
    parser.add_argument("--images", nargs="+", type=Path, required=True)
    parser.add_argument(
        "--labels",
        nargs="+",
        type=Path,
        required=True,
        help="annotations, one per image: 0 unlabelled, 1 background, 2.. foreground",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", help="bundled model name or checkpoint to start from")
    source.add_argument("--new", action="store_true", help="start from a fresh model")
    parser.add_argument("--output", type=Path, required=True, help="checkpoint to write")
    parser.add_argument(
        "--seconds",
        type=float,
        default=None,
        help="time budget (default: 60 s, none when --iterations is given; 0: none)",
    )
    parser.add_argument(
        "--iterations", type=int, default=None, help="iteration budget (with --seconds: first wins)"
    )
    parser.add_argument(
        "--learning-rate",
        type=float,
        default=None,
        help="Adam's starting rate (default: 1e-3 for --new, 1e-4 to fine-tune a trained model)",
    )
    parser.add_argument(
        "--distillation",
        type=float,
        default=None,
        help="weight of keeping a trained model's predictions on unpainted pixels "
        "(default 3; 0 = strokes only)",
    )
    parser.add_argument(
        "--lr-schedule",
        choices=["linear", "cosine", "constant"],
        default="linear",
        help="learning rate over the budget: decayed to 0 (linear, cosine) or constant",
    )
    parser.add_argument(
        "--bn-recalibration",
        type=int,
        default=0,
        metavar="N",
        help="batch-norm models: re-estimate the statistics from N batches after training",
    )
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--patch-size", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--no-elastic", action="store_true", help="switch elastic deformation off")
    parser.add_argument("--w0", type=float, default=10.0, help="border weight (paper: 10)")
    parser.add_argument("--sigma", type=float, default=5.0, help="border width in px (paper: 5)")
    parser.add_argument(
        "--no-class-balance", action="store_true", help="w_c = 1 instead of class-frequency balance"
    )
    parser.add_argument("--half", action="store_true", help="store weights as float16")
    parser.add_argument("--description", default=None, help="stored in the checkpoint")
    parser.add_argument(
        "--trained-on", default=None, help="what the data was (stored; default: the image paths)"
    )
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    arch = parser.add_argument_group("architecture of a --new model")
    arch.add_argument("--features", type=int, default=64, help="base features (paper: 64)")
    arch.add_argument("--depth", type=int, default=4, help="max-pool steps (paper: 4)")
    arch.add_argument("--padding", choices=["valid", "same"], default="valid")
    arch.add_argument("--classes", type=int, default=2, help="classes incl. background")
    arch.add_argument("--channels", type=int, default=1, help="input channels")
    arch.add_argument("--batch-norm", action="store_true")
    arch.add_argument("--upsampling", choices=["upconv", "bilinear"], default="upconv")


def _add_small_commands(commands: argparse._SubParsersAction) -> None:
    info = commands.add_parser("info", help="print a checkpoint's metadata as JSON")
    info.add_argument("checkpoint", help="bundled model name or checkpoint path")
    commands.add_parser("models", help="list the bundled models")
    evaluate = commands.add_parser("evaluate", help="compare a prediction with ground truth")
    evaluate.add_argument("--pred", type=Path, required=True)
    evaluate.add_argument("--truth", type=Path, required=True)
    evaluate.add_argument(
        "--kind", choices=["membranes", "instances", "semantic"], default="instances"
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``napari-unet``."""
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="napari-unet",
        description="U-Net segmentation (Ronneberger et al. 2015): predict, fine-tune, evaluate.",
    )
    parser.add_argument("--version", action="version", version=f"napari-unet {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_predict(commands)
    _add_train(commands)
    _add_small_commands(commands)
    from .demo import add_demo_parser

    add_demo_parser(commands)
    from ._export_command import add_export_parser

    add_export_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    from . import _commands

    handler = getattr(args, "handler", None) or getattr(_commands, f"run_{args.command}")
    try:
        status = handler(args)
    except KeyboardInterrupt:
        print("napari-unet: interrupted", file=sys.stderr)
        return 130
    except (CliError, ValueError, OSError) as error:
        print(f"napari-unet {args.command}: error: {_one_line(error)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return int(status or 0)


def _one_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return " ".join(text.split())


def print_json(data: object) -> None:
    """Print indented JSON to stdout."""
    print(json.dumps(data, indent=2, default=str))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

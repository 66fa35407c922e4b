"""The options of ``napari-unet predict``, by group (inference, mask, last masks, batch),
and the checks of their values made before anything is read."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from ..config import AUTO_TILE, PredictConfig, is_background_threshold
from ._common import DEVICE_HELP, CliError
from ._predict_inputs import parse_shard

__all__ = ["add_predict_arguments", "check_numbers"]


def add_predict_arguments(parser: argparse.ArgumentParser) -> None:
    """Every option of ``predict``; their defaults are :class:`PredictConfig`'s."""
    defaults = PredictConfig()
    parser.add_argument(
        "inputs",
        nargs="+",
        type=Path,
        help="TIFF, PNG, JPEG, BMP or .npy images, zarr stores, or folders of them",
    )
    parser.add_argument("--model", required=True, help="bundled model name or checkpoint path")
    parser.add_argument("--output", required=True, type=Path, help="output folder")
    _add_inference_options(parser, defaults)
    _add_mask_options(parser, defaults)
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
    _add_last_mask_options(parser)
    _add_batch_options(parser)


def check_numbers(args: argparse.Namespace) -> None:
    """Refuse counts below 1 (0 for ``--min-size``), more ``--workers`` than 4 per CPU and
    an ``--output`` that is a file.

    Raises
    ------
    CliError
        Saying which option is wrong.
    """
    for name in ("workers", "threads", "batch_size"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise CliError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
    if args.min_size < 0:
        raise CliError(f"--min-size must be at least 0 (0 keeps every object), got {args.min_size}")
    most = 4 * (os.cpu_count() or 1)
    if args.workers is not None and args.workers > most:
        raise CliError(f"--workers {args.workers}: at most {most} here (4 per CPU)")
    if args.output.exists() and not args.output.is_dir():
        raise CliError(f"--output {args.output} is a file; give a folder (created if missing)")


def _tile_size(text: str) -> int | str:
    """``--tile-size``: a number of pixels, or "auto"."""
    if text.strip().lower() == AUTO_TILE:
        return AUTO_TILE
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a number of pixels or {AUTO_TILE!r}, got {text!r}"
        ) from None


def _add_last_mask_options(parser: argparse.ArgumentParser) -> None:
    """After a fine-tune: the separations of an earlier run's masks, as Predict keeps them."""
    group = parser.add_argument_group("after a fine-tune (as the Predict widget does)")
    group.add_argument(
        "--last-masks",
        type=Path,
        default=None,
        metavar="FOLDER",
        help="an earlier run's output folder (this one too, with --overwrite): where the "
        "masks there separated two objects, the new mask keeps them apart while the new "
        "model's boundary still stands out, if they were made by the model this one was "
        "fine-tuned from (or by this one); otherwise the input is predicted afresh",
    )
    group.add_argument(
        "--strokes",
        nargs="+",
        type=Path,
        default=[],
        metavar="FILE",
        help="with --last-masks: the strokes the model was fine-tuned on, one file per "
        "input file in the same order (as train's --labels): a kept separation with an "
        "object stroke across it is dropped",
    )


def _add_inference_options(parser: argparse.ArgumentParser, defaults: PredictConfig) -> None:
    """Tiles, batches, device and test-time augmentation."""
    parser.add_argument(
        "--tile-size",
        type=_tile_size,
        default=defaults.tile_size,
        help="input tile edge in pixels, context included, or auto: the model's default tile "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=defaults.batch_size,
        help="tiles per forward pass (default: %(default)s)",
    )
    parser.add_argument("--device", default=defaults.device, help=DEVICE_HELP)
    parser.add_argument(
        "--tta",
        action=argparse.BooleanOptionalAction,
        default=defaults.test_time_augmentation,
        help="test-time augmentation: average each tile over its 8 rotations and flips (8x "
        "slower; its 4 rotations, 4x, for a model that asks for those); default: as the model "
        "says (on for a model whose figures were chosen with it)",
    )


def _add_mask_options(parser: argparse.ArgumentParser, defaults: PredictConfig) -> None:
    """How the mask and the instance labels are made from the probabilities."""
    parser.add_argument(
        "--instances",
        choices=["components", "watershed"],
        default=defaults.instances,
        help="how instance labels are made from the mask (default: %(default)s)",
    )
    parser.add_argument(
        "--min-size",
        type=int,
        default=defaults.min_instance_size,
        metavar="N",
        help="objects under N pixels are not instances; 0 keeps all (default: %(default)s)",
    )
    parser.add_argument(
        "--keep-holes",
        dest="fill_holes",
        action="store_false",
        default=defaults.fill_holes,
        help="leave what an object encloses as it is, in the mask and the instances "
        "(default: background and same-class objects enclosed by one object join it)",
    )
    parser.add_argument(
        "--keep-gaps",
        dest="close_boundaries",
        action="store_false",
        default=defaults.close_boundaries,
        help="gaps in predicted boundaries are not closed and objects do not grow to the "
        "model's background threshold (default: both, before instances are labelled, unless "
        "the model leaves its gaps open); with --keep-holes too the mask is the most "
        "probable class",
    )
    parser.add_argument(
        "--background-threshold",
        type=_background_threshold,
        default=defaults.background_threshold,
        metavar="T",
        help="objects grow into the boundary pixels whose probability is at most T, in "
        "[0.5, 1), never joining; 0.5: the most probable class with gaps closed (default: "
        "the model's own, e.g. 0.85 for em-membranes, 0.5 for a model without one)",
    )


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
    parser.add_argument(
        "--shard",
        type=parse_shard,
        default=None,
        metavar="I/N",
        help="predict only every N-th input from the I-th (1..N), so that the N tasks of a "
        "job array share the inputs; slurm: I and N from SLURM_ARRAY_TASK_ID, "
        "SLURM_ARRAY_TASK_MIN and SLURM_ARRAY_TASK_COUNT",
    )
    cluster = parser.add_argument_group("many files (dask.distributed)")
    cluster.add_argument(
        "--scheduler", default=None, help="address of a dask scheduler, e.g. tcp://host:8786"
    )
    cluster.add_argument(
        "--workers", type=int, default=None, help="start a local cluster of N worker processes"
    )


def _background_threshold(text: str) -> float:
    """``--background-threshold``: a number in [0.5, 1) (argparse reports anything else)."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not is_background_threshold(value):
        raise argparse.ArgumentTypeError(f"must be a number in [0.5, 1), got {text!r}")
    return value

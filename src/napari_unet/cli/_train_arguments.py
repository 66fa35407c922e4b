"""The options of ``napari-unet train``, by group (data, budget, loss, output, architecture),
and the checks of their values made before anything is read."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from ..config import (
    FINETUNE_ITERATIONS,
    LEARNING_FLOOR_CAP,
    LEARNT_ITERATIONS,
    NEW_MODEL_CONFIG,
    TIME_BUDGET_SECONDS,
    TRAINED_ITERATIONS,
    TrainConfig,
    WeightConfig,
)
from ._common import DEVICE_HELP, CliError, refuse_existing_output, writable_folder

__all__ = [
    "ARCHITECTURE_OPTIONS",
    "MAX_BATCH",
    "MAX_EDGE",
    "add_train_arguments",
    "check_numbers",
    "check_train_output",
]

#: Largest --patch-size and --tile-size accepted (pixels).
MAX_EDGE = 2**16

#: Largest training --batch-size (patches per step; the paper used 1).
MAX_BATCH = 1024


#: The network options of a ``--new`` model: ``ModelConfig`` field -> ``args`` attribute.
ARCHITECTURE_OPTIONS = {
    "in_channels": "channels",
    "n_classes": "classes",
    "depth": "depth",
    "base_features": "features",
    "padding": "padding",
    "batch_norm": "batch_norm",
    "upsampling": "upsampling",
}


def check_numbers(args: argparse.Namespace) -> None:
    """Refuse numeric options that would crash, hang or be silently meaningless, and
    network options given with ``--model`` (its network is the checkpoint's)."""
    if args.model:
        given = [
            f"--{option.replace('_', '-')}"
            for option in ARCHITECTURE_OPTIONS.values()
            if getattr(args, option) is not None
        ]
        if given:
            raise CliError(
                f"{', '.join(given)}: the network options are for a --new model; "
                f"--model {args.model} keeps the network of its checkpoint"
            )
    if args.seed < 0:
        raise CliError(f"--seed must be a whole number >= 0, got {args.seed}")
    for option, value in (("--iterations", args.iterations), ("--seconds", args.seconds)):
        if value is not None and not (math.isfinite(value) and value >= 0):
            raise CliError(f"{option} must be a number >= 0 (0: no such budget), got {value}")
    if args.learning_rate is not None and not (
        math.isfinite(args.learning_rate) and args.learning_rate > 0
    ):
        raise CliError(f"--learning-rate must be a number > 0, got {args.learning_rate}")
    if args.threads is not None and args.threads < 1:
        raise CliError(f"--threads must be at least 1, got {args.threads}")
    if not (math.isfinite(args.w0) and args.w0 >= 0):
        raise CliError(f"--w0 must be a finite number >= 0, got {args.w0}")
    if not (math.isfinite(args.sigma) and args.sigma > 0):
        raise CliError(f"--sigma must be a finite number of pixels > 0, got {args.sigma}")
    if not 1 <= args.batch_size <= MAX_BATCH:
        raise CliError(f"--batch-size must be between 1 and {MAX_BATCH}, got {args.batch_size}")
    if args.patch_size is not None and not 1 <= args.patch_size <= MAX_EDGE:
        raise CliError(f"--patch-size must be between 1 and {MAX_EDGE}, got {args.patch_size}")


def check_train_output(output: Path, overwrite: bool) -> None:
    """Refuse a ``train --output`` that cannot take a checkpoint, before training."""
    if output.is_dir():
        raise CliError(
            f"--output {output} is a folder; give a file name, e.g. {output / 'model.safetensors'}"
        )
    from ..io.inputs import IMAGE_SUFFIXES

    suffix = output.suffix.lower()
    if suffix in (".pt", ".pth", ".zip", ".zarr", *IMAGE_SUFFIXES):
        raise CliError(
            f"--output {output}: checkpoints are written as .safetensors files"
            + (" (a bioimage.io .zip: napari-unet export)" if suffix == ".zip" else "")
        )
    refuse_existing_output(output, overwrite)
    from ..io.reruns import remove_stale_temporaries

    writable_folder(output.parent if str(output.parent) else Path("."))
    remove_stale_temporaries([output])  # what a killed save left


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """Every option of ``train`` (their defaults are the core's: ``TrainConfig``,
    ``WeightConfig``, ``NEW_MODEL_CONFIG``)."""
    _add_data_arguments(parser)
    _add_budget_arguments(parser)
    _add_optimiser_arguments(parser)
    _add_sampling_arguments(parser)
    _add_loss_arguments(parser)
    _add_output_arguments(parser)
    _add_architecture_arguments(parser)


def _add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """Images, their annotations and the model to start from."""
    parser.add_argument(
        "--images",
        nargs="+",
        type=Path,
        required=True,
        help="2-D images (Y, X), channels first or last; a file declaring a stack axis "
        "(Z, T, ...) is refused",
    )
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


def _add_budget_arguments(parser: argparse.ArgumentParser) -> None:
    """Time and iteration budget."""
    parser.add_argument(
        "--seconds",
        type=float,
        default=None,
        help=f"time budget (default: {TIME_BUDGET_SECONDS:g} s, none when --iterations is "
        f"given; 0: none); a model still learning trains on past it until it has trained "
        f"{TRAINED_ITERATIONS} iterations in all, at most {LEARNING_FLOOR_CAP:g} times it",
    )
    parser.add_argument(
        "--iterations",
        type=int,
        default=None,
        help="iteration budget (with --seconds: first wins; default: "
        f"{FINETUNE_ITERATIONS} for a trained model ({TRAINED_ITERATIONS} iterations or more "
        f"in its history, or {LEARNT_ITERATIONS} with a last loss below a guess's), as the "
        "annotation-loop benchmark checks, none for a new one; 0: none)",
    )


def _add_optimiser_arguments(parser: argparse.ArgumentParser) -> None:
    """Learning rate and its schedule, batch-norm recalibration, batch size."""
    parser.add_argument(
        "--learning-rate",
        type=float,
        default=None,
        help="Adam's starting rate (default: 1e-3 for --new, 1e-4 to fine-tune a trained model)",
    )
    parser.add_argument(
        "--lr-schedule",
        choices=["linear", "cosine", "constant"],
        default=TrainConfig.lr_schedule,
        help="learning rate over the budget: decayed to 0 (linear, cosine) or constant "
        "(default %(default)s)",
    )
    parser.add_argument(
        "--bn-recalibration",
        type=int,
        default=TrainConfig.bn_recalibration,
        metavar="N",
        help="batch-norm models: re-estimate the statistics from N batches after training "
        "(default %(default)s)",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=TrainConfig.batch_size,
        help="patches per step (default %(default)s; the paper used 1)",
    )


def _add_sampling_arguments(parser: argparse.ArgumentParser) -> None:
    """Patches, seed, device, threads, augmentation."""
    parser.add_argument(
        "--patch-size",
        type=int,
        default=TrainConfig.patch_size,
        help="edge of the training patches in px (default: the smallest valid patch whose "
        "output is at least 96 px)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=TrainConfig.seed,
        help="random seed of the patches, the augmentation and a --new model's weights "
        "(default %(default)s)",
    )
    parser.add_argument(
        "--device",
        default=TrainConfig.device,
        help=DEVICE_HELP,
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="CPU threads for torch (default: torch's)"
    )
    parser.add_argument("--no-elastic", action="store_true", help="switch elastic deformation off")


def _add_loss_arguments(parser: argparse.ArgumentParser) -> None:
    """The paper's weighted loss and the distillation towards a trained model."""
    parser.add_argument(
        "--distillation",
        type=float,
        default=None,
        help="weight of keeping a trained model's predictions on unpainted pixels "
        f"(default {TrainConfig.distillation:g}; 0 = strokes only)",
    )
    parser.add_argument(
        "--distillation-border",
        type=float,
        default=TrainConfig.distillation_border,
        help="w0 of the border term on the trained model's own objects: how much more its "
        "gaps between touching objects are kept (default %(default)s; 0 = all pixels alike)",
    )
    parser.add_argument(
        "--w0", type=float, default=WeightConfig.w0, help="border weight (default and paper: 10)"
    )
    parser.add_argument(
        "--sigma",
        type=float,
        default=WeightConfig.sigma,
        help="border width in px (default and paper: 5)",
    )
    balance = parser.add_mutually_exclusive_group()
    balance.add_argument(
        "--class-balance", dest="class_balance", action="store_const", const=True,
        default=WeightConfig.class_balance,
        help="w_c balances the class frequencies (default: for a new model; off when "
        "fine-tuning a trained one)",
    )  # fmt: skip
    balance.add_argument(
        "--no-class-balance", dest="class_balance", action="store_const", const=False,
        help="w_c = 1, also for a new model",
    )  # fmt: skip


def _add_output_arguments(parser: argparse.ArgumentParser) -> None:
    """The checkpoint written and what it records."""
    parser.add_argument("--output", type=Path, required=True, help="checkpoint to write")
    parser.add_argument("--overwrite", action="store_true", help="replace --output if it exists")
    parser.add_argument("--half", action="store_true", help="store weights as float16")
    parser.add_argument(
        "--description",
        default=None,
        help="stored in the checkpoint (default: 'U-Net trained from scratch on TRAINED_ON' "
        "for --new, else the model's own with '; fine-tuned on TRAINED_ON')",
    )
    parser.add_argument(
        "--trained-on", default=None, help="what the data was (stored; default: the image paths)"
    )


def _add_architecture_arguments(parser: argparse.ArgumentParser) -> None:
    """The network of a ``--new`` model."""
    arch = parser.add_argument_group(
        "architecture of a --new model (with --model, the checkpoint's network is kept)"
    )
    model = NEW_MODEL_CONFIG
    arch.add_argument(
        "--features",
        type=int,
        help=f"base features (default {model.base_features}, which learns the most per CPU "
        "second; paper: 64)",
    )
    arch.add_argument("--depth", type=int, help=f"max-pool steps (default {model.depth}; paper: 4)")
    arch.add_argument(
        "--padding",
        choices=["valid", "same"],
        help=f"3x3 convolutions unpadded as in the paper, or padded (default {model.padding})",
    )
    arch.add_argument(
        "--classes", type=int, help=f"classes incl. background (default {model.n_classes})"
    )
    arch.add_argument("--channels", type=int, help=f"input channels (default {model.in_channels})")
    arch.add_argument(
        "--batch-norm", action="store_true", default=None, help="batch norm after each conv"
    )
    arch.add_argument(
        "--upsampling",
        choices=["upconv", "bilinear"],
        help=f"up-convolution as in the paper, or bilinear (default {model.upsampling})",
    )

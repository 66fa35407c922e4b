"""The command line of ``bench_annotation_loop.py``: its options, grouped by what they set."""

from __future__ import annotations

import argparse

from loop_tasks import TASKS

from napari_unet.config import FINETUNE_ITERATIONS, TrainConfig, WeightConfig
from napari_unet.evaluation.annotator import StrokeBudget


def _add_session_options(parser: argparse.ArgumentParser) -> None:
    """The task, the seeds (one session each), the rounds and their iterations."""
    parser.add_argument("--task", choices=sorted(TASKS), default="dsb")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--iterations",
        type=int,
        default=FINETUNE_ITERATIONS,
        help=f"per round (default: {FINETUNE_ITERATIONS}, what the widget and train give a "
        "trained model; it was 300 until 2026-12-02, so the published rows name theirs)",
    )


def _add_training_options(parser: argparse.ArgumentParser) -> None:
    """Each round's fine-tune: budget, learning rate, distillation and loss weights."""
    parser.add_argument("--seconds", type=float, default=None)
    parser.add_argument("--lr", type=float, default=TrainConfig.learning_rate)
    parser.add_argument("--distillation", type=float, default=TrainConfig.distillation)
    parser.add_argument("--context", type=float, default=TrainConfig.context_patches)
    parser.add_argument("--margin", type=int, default=TrainConfig.distillation_margin)
    parser.add_argument("--w0", type=float, default=WeightConfig.w0, help="border weight")
    balance = parser.add_mutually_exclusive_group()
    balance.add_argument(
        "--class-balance", dest="class_balance", action="store_const", const=True,
        default=WeightConfig.class_balance,
        help="w_c balances the strokes' classes (default: off for a trained model)",
    )  # fmt: skip
    balance.add_argument(
        "--no-class-balance", dest="class_balance", action="store_const", const=False,
        help="w_c = 1",
    )  # fmt: skip
    parser.add_argument(
        "--kd-border", type=float, default=TrainConfig.distillation_border,
        help="w0 of the border term on the teacher's objects in the distillation weights",
    )  # fmt: skip
    parser.add_argument(
        "--kd-temperature", type=float, default=TrainConfig.distillation_temperature,
        help="sharpen the teacher's probabilities to p^(1/T) (T < 1: firmer targets)",
    )  # fmt: skip


def _add_start_options(parser: argparse.ArgumentParser) -> None:
    """Which model each round starts from, and a new model instead of the bundled one."""
    parser.add_argument(
        "--start", choices=["base", "current", "first"], default="base",
        help="each round fine-tunes the loaded model (base) or the last round's (current); "
        "first: with --new-model, rounds 2.. fine-tune the model of round 1",
    )  # fmt: skip
    parser.add_argument(
        "--new-model", type=int, default=None, metavar="N",
        help="start from a new model trained N iterations on first scribbles (round 1); "
        "with --start base later rounds train again from scratch for N iterations",
    )  # fmt: skip


def _add_stroke_order_options(parser: argparse.ArgumentParser) -> None:
    """Which errors the simulated user paints first (``--guided`` holds the choice)."""
    parser.add_argument(
        "--guided", action="store_const", const="uncertainty", default=False,
        help="rank errors by uncertainty",
    )  # fmt: skip
    parser.add_argument(
        "--instances-first", dest="guided", action="store_const", const="instances",
        help="rank first the errors that merge or split objects (instance_error_priority)",
    )  # fmt: skip
    parser.add_argument(
        "--only-label", type=int, default=None, metavar="K",
        help="paint the errors of class K only (1: background or membrane), strokes of one class",
    )  # fmt: skip


def _add_stroke_options(parser: argparse.ArgumentParser) -> None:
    """How the simulated user paints: the brush, and how much a round (``StrokeBudget``)."""
    parser.add_argument(
        "--brush", type=int, default=None, metavar="W",
        help="strokes W px wide (default: 1, 2 or 3 px at random, as the issue asks)",
    )  # fmt: skip
    parser.add_argument(
        "--fraction", type=float, default=StrokeBudget.fraction,
        help="at most this share of the painted part's pixels a round "
        f"(default: {StrokeBudget.fraction})",
    )  # fmt: skip
    parser.add_argument(
        "--strokes", type=int, default=StrokeBudget.max_strokes,
        help=f"at most this many strokes a round (default: {StrokeBudget.max_strokes})",
    )  # fmt: skip
    parser.add_argument(
        "--sloppy", action="store_true",
        help="a stroke covers every unpainted pixel under the brush, not only its class's",
    )  # fmt: skip


def _add_mask_options(parser: argparse.ArgumentParser) -> None:
    """How each round's masks are made from the probabilities (Predict's rules by default)."""
    parser.add_argument(
        "--keep-gaps", dest="close_boundaries", action="store_false",
        help="score the plain most-probable class (before: gaps in boundaries closed)",
    )  # fmt: skip
    parser.add_argument(
        "--keep-holes", dest="fill_holes", action="store_false",
        help="leave what an object encloses as it is (as Predict did until 2026-12-02)",
    )  # fmt: skip
    parser.add_argument(
        "--no-memory", dest="memory", action="store_false",
        help="predict each round afresh (before 2026-12-02 16:00 the last round's "
        "separations were not kept: napari_unet.core.continuity)",
    )  # fmt: skip


def _add_split_options(parser: argparse.ArgumentParser) -> None:
    """Which part of the task is painted and which is scored."""
    parser.add_argument(
        "--swapped", action="store_true",
        help="exchange the painted and the scored part (a held-out check; task *-swapped)",
    )  # fmt: skip
    parser.add_argument(
        "--paint-slices", type=int, nargs="+", default=None, metavar="N",
        help="isbi: the slices (of 15-19) the user paints; the others are scored",
    )  # fmt: skip


def _add_output_options(parser: argparse.ArgumentParser) -> None:
    """Threads, the run's label, where records and probabilities go; ``--summarize``."""
    parser.add_argument(
        "--save-probabilities", default=None, metavar="DIR",
        help="keep every round's probabilities (float16 .npz) in DIR",
    )  # fmt: skip
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--device", default="cpu", help="torch device of training and prediction (cpu, cuda, auto)"
    )
    parser.add_argument("--label", default="default")
    parser.add_argument("--out", default=None, help="append one JSON line per session")
    parser.add_argument("--summarize", nargs="+", default=None, help="JSONL files to summarise")


def build_parser(description: str) -> argparse.ArgumentParser:
    """The benchmark's command line (the options in the order ``--help`` lists them)."""
    parser = argparse.ArgumentParser(description=description)
    _add_session_options(parser)
    _add_training_options(parser)
    _add_start_options(parser)
    _add_stroke_order_options(parser)
    _add_stroke_options(parser)
    _add_mask_options(parser)
    _add_split_options(parser)
    _add_output_options(parser)
    return parser

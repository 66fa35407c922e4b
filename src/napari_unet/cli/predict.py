"""``napari-unet predict``: images, stacks, zarr stores and folders of them, here or on dask."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ..config import AUTO_TILE, PredictConfig, is_background_threshold
from ._common import (
    DEVICE_HELP,
    EXIT_BAD_INPUT,
    CliError,
    Termination,
    sigterm_interrupts,
    writable_folder,
)
from ._predict_inputs import check_inputs, parse_shard, selected_inputs
from ._progress import ProgressBar

if TYPE_CHECKING:
    from ..core.inference import Progress
    from ..io.batch import FileResult


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


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Register ``predict``; the option defaults are :class:`PredictConfig`'s."""
    defaults = PredictConfig()
    parser = commands.add_parser(
        "predict",
        help="segment images, stacks or folders of them with a U-Net (overlap-tile)",
        description="2D images, (Z, Y, X) stacks slice by slice, zarr stores tile by tile; "
        "many files in this process or on dask.distributed workers. Inputs whose outputs "
        "exist are skipped.",
    )
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
    parser.set_defaults(handler=run_predict)


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


def run_predict(args: argparse.Namespace) -> int:
    """``napari-unet predict``: outputs per input as :mod:`napari_unet.io.batch` describes.

    Every input's header (of this ``--shard``) is checked against the model before
    anything is computed or written (bad ones: one line each, exit 2). A file failing
    later, or whose outputs another run is writing, is reported on one line and the
    others go on; the exit status is then 2.
    """
    from ..core.devices import resolve_device
    from ..io.batch import cached_model, check_outputs, run_batch

    inputs = _listed_inputs(args)
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
    # workers load their own copies: this one only checks the inputs (on a GPU it would
    # hold memory the workers need); the device is checked here all the same
    checking_only = args.scheduler is not None or bool(args.workers and len(inputs) > 1)
    if checking_only and args.scheduler is None:
        resolve_device(args.device)  # this machine's workers use it: one line, not one per file
    model = cached_model(args.model, "cpu" if checking_only else args.device)
    options = _predict_options(args, model, _checked_strokes(args, inputs))
    check_outputs(inputs, args.output)  # all of them: shards must not collide either
    inputs = selected_inputs(args, inputs)
    if not inputs:
        return 0
    check_inputs(args, inputs, model.config.in_channels)
    output = writable_folder(args.output)
    on_cluster = args.scheduler is not None or bool(args.workers and len(inputs) > 1)
    bars = _FileProgress()
    termination = Termination()
    try:
        with sigterm_interrupts(termination):
            results = run_batch(
                inputs,
                args.model,
                output,
                options,
                scheduler=args.scheduler,
                workers=args.workers if on_cluster else None,
                report=bars.report,
                progress=None if on_cluster else bars.start,
            )
    except KeyboardInterrupt:
        print(f"napari-unet predict: {interrupted_words(args, termination)}", file=sys.stderr)
        return 128 + (signal.SIGTERM if termination.received else signal.SIGINT)
    if len(results) > 1:
        print(batch_summary([result.status for result in results]))
    return EXIT_BAD_INPUT if any(result.status == "failed" for result in results) else 0


def interrupted_words(args: argparse.Namespace, termination: Termination) -> str:
    """What an interrupted run says (Ctrl-C, or SIGTERM from a scheduler): the unfinished
    outputs of this process and of a local cluster's workers are removed (see
    :func:`~napari_unet.io.batch.clean_up_after`); a scheduler's workers, which this run
    does not stop, may still finish the files they had started."""
    said = "terminated" if termination.received else "interrupted"
    if args.scheduler is not None:
        return f"{said}; the scheduler's workers may still finish the files they had started"
    return f"{said}; unfinished outputs removed"


def batch_summary(statuses: list[str]) -> str:
    """The last line of a run over several inputs: how many were predicted, skipped, failed."""
    counts = {status: statuses.count(status) for status in ("skipped", "failed")}
    predicted = len(statuses) - sum(counts.values())
    return (
        f"{len(statuses)} inputs: {predicted} predicted, {counts['skipped']} skipped "
        f"(outputs up to date), {counts['failed']} failed"
    )


def _listed_inputs(args: argparse.Namespace) -> list[Path]:
    """The inputs given, folders listed (less this package's outputs, said on stdout)."""
    from ..io.inputs import FORMATS, expand_inputs

    left_out: list[Path] = []
    inputs = expand_inputs(args.inputs, left_out)
    if left_out:
        print(
            f"left out {len(left_out)} outputs of napari-unet found among the inputs "
            f"({left_out[0].name}, ...)"
        )
    if not inputs:
        raise CliError(
            f"no images or zarr stores found in {', '.join(map(str, args.inputs))} "
            f"(napari-unet reads {FORMATS})"
        )
    return inputs


def _checked_strokes(args: argparse.Namespace, inputs: list[Path]) -> tuple[tuple[str, str], ...]:
    """``--last-masks`` checked to be a folder, and ``--strokes`` paired with the input
    files given: (each input's stem, its strokes file, absolute: dask workers may run
    in another working directory) pairs."""
    if args.last_masks is not None and not args.last_masks.is_dir():
        raise CliError(f"--last-masks: {args.last_masks} is not a folder")
    if not args.strokes:
        return ()
    if args.last_masks is None:
        raise CliError("--strokes needs --last-masks (they decide which kept lines go)")
    if len(inputs) != len(args.inputs):
        raise CliError("--strokes: give the input files one by one, not folders")
    if len(args.strokes) != len(inputs):
        raise CliError(
            f"--strokes: one file per input, in the same order ({len(args.strokes)} "
            f"for {len(inputs)} inputs)"
        )
    for strokes in args.strokes:
        if not strokes.is_file():
            raise CliError(f"--strokes: {strokes} is not a file")
    return tuple((path.stem, str(strokes.resolve())) for path, strokes in zip(inputs, args.strokes))


def _predict_options(args: argparse.Namespace, model, strokes: tuple[tuple[str, str], ...] = ()):
    """The PredictOptions of ``napari-unet predict`` (the tile size checked first).

    "auto" is resolved here, so the outputs record the model's default tile size;
    ``--last-masks`` is made absolute, as the inputs, output and checkpoint are (dask
    workers may run in another working directory).
    """
    from ..core.inference import resolved_tile_size
    from ..io.batch import PredictOptions

    tile_size = resolved_tile_size(model, args.tile_size)
    if tile_size is not None and args.tile_size != AUTO_TILE:
        if not 1 <= tile_size <= 2**16:
            raise CliError(f"--tile-size must be between 1 and {2**16}, got {tile_size}")
        model.check_input_size(tile_size)
    return PredictOptions(
        tile_size=tile_size,
        tile_size_requested=args.tile_size,
        batch_size=args.batch_size,
        device=args.device,
        test_time_augmentation=args.tta,
        instances=args.instances,
        min_instance_size=args.min_size,
        fill_holes=args.fill_holes,
        close_boundaries=args.close_boundaries,
        background_threshold=args.background_threshold,
        axes=args.axes,
        output_format=args.output_format,
        overwrite=args.overwrite,
        threads=args.threads,
        last_masks=None if args.last_masks is None else str(args.last_masks.resolve()),
        strokes=strokes,
    )


class _FileProgress:
    """One progress bar per file (in-process runs) and one line per finished file."""

    def __init__(self) -> None:
        self.bar: ProgressBar | None = None

    def start(self, path: str) -> Callable[[Progress], None]:
        from ..io.volumes import StackProgress

        name = Path(path).name

        def update(step: Progress) -> None:
            if self.bar is None:
                self.bar = ProgressBar(name)
            if step.stage == "mask":
                detail = "refining the mask (gaps, growth, holes)"
            elif step.stage == "instances":
                detail = f"instances {step.done}/{step.total}"
            elif isinstance(step, StackProgress) and step.n_slices > 1:
                detail = f"slice {step.slice_index + 1}/{step.n_slices}, {step.done}/{step.total}"
            else:
                detail = f"{step.done}/{step.total} tiles"
            self.bar.update(step.done / max(step.total, 1), detail)

        return update

    def report(self, result: FileResult) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if result.status == "failed":
            error = str(result.error)  # a reader's message names the file itself
            said = error if str(result.path) in error else f"{result.path}: {error}"
            print(f"napari-unet predict: error: {said}", file=sys.stderr)
            return
        if result.status == "skipped":
            print(
                f"{result.path}: skipped, outputs exist from the same model, options and input "
                f"({result.outputs[0]}, ...)"
            )
            return
        if result.note:
            print(f"{result.path}: {result.note}")
        found = f"{result.n_objects} object{'' if result.n_objects == 1 else 's'}"
        if len(result.outputs) == 1:
            print(f"{result.path}: {found} -> {result.outputs[0]}")
        else:
            stem = result.outputs[0][: -len("_prob.tif")]
            print(f"{result.path}: {found} -> {stem}_{{mask,prob,instances}}.tif")


def _background_threshold(text: str) -> float:
    """``--background-threshold``: a number in [0.5, 1) (argparse reports anything else)."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not is_background_threshold(value):
        raise argparse.ArgumentTypeError(f"must be a number in [0.5, 1), got {text!r}")
    return value

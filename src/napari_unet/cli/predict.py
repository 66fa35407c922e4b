"""``napari-unet predict``: images, stacks, zarr stores and folders of them, here or on dask."""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ..config import AUTO_TILE
from ._common import (
    EXIT_BAD_INPUT,
    CliError,
    Termination,
    sigterm_interrupts,
    writable_folder,
)
from ._predict_arguments import add_predict_arguments, check_numbers
from ._predict_inputs import check_inputs, selected_inputs
from ._progress import ProgressBar

if TYPE_CHECKING:
    from ..core.inference import Progress
    from ..io.batch import FileResult, PredictOptions


#: In a log (stderr not a terminal), a file's progress gets a line at least this often
#: while it moves, and one each 10 % of a stage that runs 10 s or longer (:class:`ProgressBar`).
LOG_SECONDS = 10.0


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Register ``predict``; the option defaults are
    :class:`~napari_unet.config.PredictConfig`'s."""
    parser = commands.add_parser(
        "predict",
        help="segment images, stacks or folders of them with a U-Net (overlap-tile)",
        description="2D images, (Z, Y, X) stacks slice by slice, zarr stores tile by tile; "
        "many files in this process or on dask.distributed workers. Inputs whose outputs "
        "exist are skipped.",
    )
    add_predict_arguments(parser)
    parser.set_defaults(handler=run_predict)


def run_predict(args: argparse.Namespace) -> int:
    """``napari-unet predict``: outputs per input as :mod:`napari_unet.io.batch` describes.

    Every input's header (of this ``--shard``) is checked against the model before
    anything is computed or written (bad ones: one line each, exit 2). A file failing
    later, or whose outputs another run is writing, is reported on one line and the
    others go on; the exit status is then 2.
    """
    from ..core.devices import resolve_device
    from ..io.batch import cached_model, check_outputs

    inputs = _listed_inputs(args)
    check_numbers(args)
    share = selected_inputs(args, inputs)
    # workers load their own copies: this one only checks the inputs (on a GPU it would
    # hold memory the workers need); the device is checked here all the same
    checking_only = not share or _on_cluster(args, share)  # an empty shard predicts nothing
    if checking_only and args.scheduler is None:
        resolve_device(args.device)  # this machine's workers use it: one line, not one per file
    model = cached_model(args.model, "cpu" if checking_only else args.device)
    options = _predict_options(args, model, _checked_strokes(args, inputs))
    check_outputs(inputs, args.output)  # all of them: shards must not collide either
    if not share:
        return 0
    check_inputs(args, share, model.config.in_channels)
    output = writable_folder(args.output)
    return _run(args, share, output, options)


def _on_cluster(args: argparse.Namespace, inputs: list[Path]) -> bool:
    """Whether ``inputs`` (this shard's) go to a scheduler's or a local cluster's workers:
    one input is predicted in this process, with this process's model."""
    return args.scheduler is not None or bool(args.workers and len(inputs) > 1)


def _run(
    args: argparse.Namespace, inputs: list[Path], output: Path, options: PredictOptions
) -> int:
    """Predict the checked ``inputs`` into ``output`` (see :func:`run_predict`); the exit
    status."""
    from ..io.batch import run_batch

    on_cluster = _on_cluster(args, inputs)
    bars = _FileProgress(args.output_format)
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
        bars.close()
        words = interrupted_words(args, termination, _kept_partials(inputs, output))
        print(f"napari-unet predict: {words}", file=sys.stderr)
        return 128 + (signal.SIGTERM if termination.received else signal.SIGINT)
    if len(results) > 1:
        print(batch_summary([result.status for result in results]))
    return EXIT_BAD_INPUT if any(result.status == "failed" for result in results) else 0


def interrupted_words(
    args: argparse.Namespace, termination: Termination, kept: Sequence[Path] = ()
) -> str:
    """What an interrupted run says (Ctrl-C, or SIGTERM from a scheduler): the unfinished
    outputs of this process and of a local cluster's workers are removed (see
    :func:`~napari_unet.io.batch.clean_up_after`), except the ``kept`` partial zarr stores
    whose written tiles the next run resumes (:mod:`napari_unet.io._resume`); a
    scheduler's workers, which this run does not stop, may still finish the files they
    had started."""
    said = "terminated" if termination.received else "interrupted"
    if args.scheduler is not None:
        return f"{said}; the scheduler's workers may still finish the files they had started"
    if not kept:
        return f"{said}; unfinished outputs removed"
    stores = str(kept[0]) if len(kept) == 1 else f"{len(kept)} stores ({kept[0]}, ...)"
    return (
        f"{said}; the tiles predicted so far are kept in {stores}: the same command resumes "
        "them (other unfinished outputs removed)"
    )


def _kept_partials(inputs: list[Path], output: Path) -> list[Path]:
    """The partial zarr stores of ``inputs`` kept for the next run to resume."""
    from ..io._resume import kept_partial
    from ..io.outputs import output_paths

    folder = output.resolve()  # as the batch names its stores, and so the resuming line
    found = (kept_partial(output_paths(path, folder, "zarr")[0]) for path in inputs)
    return [partial for partial in found if partial is not None]


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

    def __init__(self, output_format: str = "auto") -> None:
        self.bar: ProgressBar | None = None
        self.output_format = output_format

    def start(self, path: str) -> Callable[[Progress], None]:
        from ..io.outofcore import Notice
        from ..io.volumes import StackProgress

        name = Path(path).name

        def update(step: Progress) -> None:
            if self.bar is None:
                self.bar = ProgressBar(name, log_interval=LOG_SECONDS)
            if isinstance(step, Notice):  # a partial store resumed or discarded
                self.bar.note(f"{name}: {step.text}")
                return
            if step.stage == "mask":  # a store's: block by block, after a first (0, 1)
                blocks = f": {step.done}/{step.total} blocks" if step.total > 1 else ""
                detail = f"refining the mask (gaps, growth, holes){blocks}"
            elif step.stage == "instances":
                detail = f"instances {step.done}/{step.total}"
            elif isinstance(step, StackProgress) and step.n_slices > 1:
                detail = f"slice {step.slice_index + 1}/{step.n_slices}, {step.done}/{step.total}"
            else:
                detail = f"{step.done}/{step.total} tiles"
            self.bar.update(step.done / max(step.total, 1), detail)

        return update

    def close(self) -> None:
        """End the bar of the file under way (if any)."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def report(self, result: FileResult) -> None:
        self.close()
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
            if result.note:
                print(f"{result.path}: {result.note}")
            return
        if result.note:
            print(f"{result.path}: {result.note}")
        found = f"{result.n_objects} object{'' if result.n_objects == 1 else 's'}"
        if len(result.outputs) == 1:
            print(f"{result.path}: {found} -> {result.outputs[0]}{self._why_zarr(result)}")
        else:
            stem = result.outputs[0][: -len("_prob.tif")]
            print(f"{result.path}: {found} -> {stem}_{{mask,prob,instances}}.tif")

    def _why_zarr(self, result: FileResult) -> str:
        """Why ``--output-format auto`` wrote a zarr store for an input that is none."""
        from ..io.inputs import is_zarr_store
        from ..io.outofcore import OUT_OF_CORE_THRESHOLD

        if self.output_format != "auto" or is_zarr_store(Path(result.path)):
            return ""
        return (
            f" (a zarr store: the outputs pass {OUT_OF_CORE_THRESHOLD:,} pixels; "
            "--output-format tiff writes TIFF files)"
        )

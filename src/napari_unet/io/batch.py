"""Prediction of many files: in this process, or on dask.distributed workers.

One task is one input file. A task receives only paths (the input, the
checkpoint, the output folder) and a small :class:`PredictOptions` (a
:class:`~napari_unet.config.PredictConfig` plus how files are handled); every worker
loads each checkpoint once (:func:`cached_model`) and reads its input itself, so
no array or model travels over the network. The same :func:`predict_file` runs
in this process and on workers, so results are identical file by file.

Outputs per input ``<stem>`` (its name as given, a symbolic link's own:
:func:`~napari_unet.io.outputs.output_stem`): ``<stem>_prob.tif`` (float32, axes CYX or
ZCYX), ``<stem>_mask.tif`` (uint8, YX or ZYX) and ``<stem>_instances.tif`` (uint32, YX or
ZYX), each written atomically and saying its axes and the model's class names in its
metadata, the instances last; or one ``<stem>_prediction.zarr``
store (:func:`napari_unet.io.outofcore.predict_to_zarr`), renamed into place when
complete. Outputs record how they were made (:mod:`napari_unet.io.reruns`): an
input whose outputs are all there and record this model, these options, this
input, last mask and strokes and this package version is skipped; outputs that record
something else are replaced only with ``overwrite`` (else the input fails,
saying why); a partial set, or a store lacking arrays, is recomputed. One run at a
time writes an input's outputs (:mod:`napari_unet.io.locks`): the holder of their
lock removes the temporaries killed runs left beside them; another run's input fails.
A zarr store whose run was interrupted is kept and resumed by the next run
(:mod:`napari_unet.io._resume`).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import PredictConfig
from ..core.checkpoint import load_model, resolve_checkpoint
from ..core.inference import Progress
from ..core.model import UNet
from ._batch_file import file_plan, kept_tiles_note, predict_input
from ._cluster import NANNY_ENVIRONMENT, client_for, local_cluster  # noqa: F401  (public here)
from .locks import OutputsBusy, lock_path, output_lock
from .outputs import check_outputs, output_paths, output_stem, why_predicted
from .reruns import remove_stale_temporaries

__all__ = [
    "FileResult",
    "PredictOptions",
    "cached_model",
    "check_outputs",
    "clean_up_after",
    "local_cluster",
    "model_loads",
    "output_paths",
    "predict_file",
    "run_batch",
]


@dataclass(frozen=True)
class PredictOptions(PredictConfig):
    """How every file of a batch is predicted (travels to the workers).

    A :class:`~napari_unet.config.PredictConfig` (its fields and defaults: tile size
    "auto", resolved to the model's default tile, and test-time augmentation None, resolved
    to the model's own, before anything is recorded; the
    device resolved on each worker; instance method and minimum instance size) and
    how the files are read and written:

    Attributes
    ----------
    axes : str, optional
        Axes of every input (:mod:`napari_unet.io.axes`); None = the file's metadata,
        else the axes rule.
    output_format : {"auto", "tiff", "zarr"}
        "auto": a zarr store for zarr inputs and for outputs above
        :data:`~napari_unet.io.outofcore.OUT_OF_CORE_THRESHOLD` pixels, else TIFF.
    overwrite : bool
        Recompute inputs whose outputs exist.
    threads : int, optional
        Torch CPU threads while a file is predicted (None: leave the process's).
        CPU convolutions can differ in the last bits between thread counts, so
        give the same count to compare runs bit for bit (dask workers run 1).
    last_masks : str, optional
        An earlier run's output folder: an input's mask there is its last mask after
        a fine-tune (:mod:`napari_unet.io.last_masks`; TIFF outputs only).
    strokes : tuple of (str, str)
        (input stem, strokes file) pairs: the strokes a fine-tune was given for that
        input, with ``last_masks``.
    tile_size_requested : int, "auto" or None, optional
        The tile size the user asked for, when ``tile_size`` holds what it was resolved
        to already (``napari-unet predict`` resolves "auto" once for the whole batch);
        None: ``tile_size`` itself. Recorded with the outputs: a re-run that leaves the
        tile size to napari-unet again is not redone for another figure
        (:mod:`napari_unet.io.reruns`).
    """

    axes: str | None = None
    output_format: str = "auto"
    overwrite: bool = False
    threads: int | None = None
    last_masks: str | None = None
    strokes: tuple[tuple[str, str], ...] = ()
    tile_size_requested: int | str | None = None


@dataclass(frozen=True)
class FileResult:
    """What happened to one input: ``status`` is "done", "skipped" or "failed"."""

    path: str
    status: str
    outputs: tuple[str, ...] = ()
    n_objects: int | None = None
    seconds: float = 0.0
    error: str | None = None
    worker: str | None = None
    note: str | None = None  # which last mask was kept, or why none


# ---- models, once per process -----------------------------------------------------
_MODELS: dict[tuple, UNet] = {}
_MODELS_LOCK = threading.Lock()
_LOADS = {"count": 0}


def cached_model(checkpoint: str | os.PathLike, device: str = "auto") -> UNet:
    """The model of a checkpoint, loaded once per process (per worker).

    The cache key holds the file's modification time and size, so a checkpoint
    rewritten at the same path is loaded again (and the older copy dropped).
    The model is shared: predict with it, do not train it.
    """
    from ..core.devices import resolve_device

    path = resolve_checkpoint(checkpoint).resolve()
    status = path.stat()
    torch_device = resolve_device(device)
    key = (str(path), status.st_mtime_ns, status.st_size, str(torch_device))
    with _MODELS_LOCK:
        if key not in _MODELS:
            for stale in [k for k in _MODELS if k[0] == key[0] and k[3] == key[3]]:
                del _MODELS[stale]
            _MODELS[key] = load_model(path, device=torch_device)
            _LOADS["count"] += 1
        return _MODELS[key]


def model_loads() -> int:
    """How many checkpoints this process has loaded through :func:`cached_model`."""
    return _LOADS["count"]


# ---- one file ----------------------------------------------------------------------
def predict_file(
    path: str | os.PathLike,
    checkpoint: str | os.PathLike,
    output: str | os.PathLike,
    options: PredictOptions | None = None,
    progress: Callable[[Progress], None] | None = None,
) -> FileResult:
    """Predict one input file and write its outputs (the task of a batch).

    Parameters
    ----------
    path : path-like
        Image file (TIFF, PNG, ...) or zarr store.
    checkpoint : path-like
        Checkpoint file or bundled model name.
    output : path-like
        Output folder (must exist).
    options : PredictOptions
    progress : callable, optional
        Called with :class:`~napari_unet.io.volumes.StackProgress` (and instance
        labelling steps) while predicting.

    Returns
    -------
    FileResult
        "done" or "skipped". Errors are raised (the batch driver reports them).
    """
    options = options or PredictOptions()
    start = time.perf_counter()
    model = cached_model(checkpoint, options.device)
    plan = file_plan(path, checkpoint, output, options, model)
    outputs = plan.outputs
    stem = output_stem(path)
    with output_lock(lock_path(output, stem)) as lock:
        # only the holder of the lock may remove what killed runs left beside the outputs
        remove_stale_temporaries(
            [*output_paths(path, output, "tiff"), *output_paths(path, output, "zarr")]
        )
        redo = why_predicted(outputs, plan.record, plan.options.overwrite)
        if redo is None:
            return FileResult(
                str(path),
                "skipped",
                tuple(map(str, outputs)),
                worker=_worker_name(),
                note=kept_tiles_note(path, output, plan.info.output_format, skipped=True),
            )
        count, changes, last_note, contrast = predict_input(path, stem, model, plan, progress, lock)
        kept = kept_tiles_note(path, output, plan.info.output_format, skipped=False)
    notes = [text for text in (redo or None, kept, last_note, changes, contrast) if text]
    return FileResult(
        str(path),
        "done",
        tuple(map(str, outputs)),
        count,
        time.perf_counter() - start,
        worker=_worker_name(),
        note="; ".join(notes) or None,
    )


def _worker_name() -> str | None:
    try:
        from distributed import get_worker

        return str(get_worker().name)
    except (ImportError, ValueError):
        return None


def _failure(path: str, error: BaseException) -> FileResult:
    text = " ".join((str(error).strip() or type(error).__name__).split())
    return FileResult(path, "failed", error=text, worker=None)


# ---- many files --------------------------------------------------------------------
def run_batch(
    paths: Sequence[str | os.PathLike],
    checkpoint: str | os.PathLike,
    output: str | os.PathLike,
    options: PredictOptions | None = None,
    *,
    scheduler: str | None = None,
    workers: int | None = None,
    report: Callable[[FileResult], None] | None = None,
    progress: Callable[[str], Callable[[Progress], None] | None] | None = None,
) -> list[FileResult]:
    """Predict many files; a failing file is reported and the others go on.

    Parameters
    ----------
    paths : sequence of path-like
        Input files or zarr stores (see :func:`napari_unet.io.inputs.expand_inputs`).
    checkpoint : path-like
        Checkpoint file (workers need it at the same path) or bundled model name.
    output : path-like
        Output folder, created if missing.
    options : PredictOptions
    scheduler : str, optional
        Address of a dask.distributed scheduler (e.g. ``tcp://10.0.0.5:8786``).
    workers : int, optional
        Without ``scheduler``: start a local cluster of this many single-threaded
        worker processes. Neither: run here, one file after the other.
    report : callable, optional
        Called with each :class:`FileResult` as it completes.
    progress : callable, optional
        In-process runs only: maps an input path to a progress callback (or None).

    Returns
    -------
    list of FileResult
        In the order of ``paths``.

    Raises
    ------
    ValueError
        Inputs whose outputs would collide or overwrite an input (:func:`check_outputs`).
    """
    options = options or PredictOptions()
    jobs, model_path, folder = _prepared_jobs(paths, checkpoint, output)
    report = report or (lambda result: None)
    if scheduler is None and not workers:
        return _run_here(jobs, model_path, folder, options, report, progress)
    return _run_distributed(jobs, model_path, folder, options, scheduler, workers, report)


def _prepared_jobs(
    paths: Sequence[str | os.PathLike], checkpoint: str | os.PathLike, output: str | os.PathLike
) -> tuple[list[str], str, str]:
    """The inputs as workers find them, the checkpoint as they find it and the output
    folder (created), once the outputs are checked (see :func:`run_batch`)."""
    from ..core.checkpoint import bundled_models

    model_path = str(resolve_checkpoint(checkpoint).resolve())  # fails early when missing
    if str(checkpoint) in bundled_models():
        model_path = str(checkpoint)  # each worker finds its own installed copy
    check_outputs(paths, output)
    # absolute for workers elsewhere, but not resolved: a link names its outputs
    jobs = [str(Path(path).absolute()) for path in paths]
    Path(output).mkdir(parents=True, exist_ok=True)
    return jobs, model_path, str(Path(output).resolve())


def _run_distributed(
    jobs: list[str],
    checkpoint: str,
    output: str,
    options: PredictOptions,
    scheduler: str | None,
    workers: int | None,
    report: Callable[[FileResult], None],
) -> list[FileResult]:
    """Predict the files on a dask scheduler's workers, or a local cluster's; after a
    Ctrl-C, a local cluster's unfinished files are cleaned up (:func:`clean_up_after`)."""
    finished: set[str] = set()

    def note_finished(result: FileResult) -> None:
        finished.add(result.path)
        report(result)

    try:
        with client_for(scheduler, workers) as client:
            return _run_on_cluster(client, jobs, checkpoint, output, options, note_finished)
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM in the CLI
        if scheduler is None:  # the local cluster's workers went with it, mid-file
            clean_up_after([path for path in jobs if path not in finished], output)
        raise


def clean_up_after(paths: Sequence[str], output: str | os.PathLike) -> list[Path]:
    """Remove the locks and unfinished outputs that killed runs left for ``paths``.

    A local cluster closed by Ctrl-C kills its workers in the middle of their files,
    before their own clean-up runs; this takes each input's lock over (its holder is
    gone: :mod:`napari_unet.io.locks`) and removes the temporaries beside its outputs,
    as the next run would. An input without a lock was not started; one whose lock a
    live run holds is left alone. Returns the removed temporaries.
    """
    removed: list[Path] = []
    for path in paths:
        lock = lock_path(output, output_stem(path))
        if not lock.exists():  # never started (or finished): a killed worker holds a lock
            continue
        try:
            with output_lock(lock):
                removed += remove_stale_temporaries(
                    [*output_paths(path, output, "tiff"), *output_paths(path, output, "zarr")]
                )
        except OutputsBusy:
            continue
    return removed


def _run_here(
    jobs: list[str],
    checkpoint: str,
    output: str,
    options: PredictOptions,
    report: Callable[[FileResult], None],
    progress: Callable[[str], Callable[[Progress], None] | None] | None,
) -> list[FileResult]:
    """Predict the files one after the other in this process."""
    results = []
    for path in jobs:
        callback = progress(path) if progress is not None else None
        try:
            result = predict_file(path, checkpoint, output, options, callback)
        except Exception as error:  # one bad file must not stop the others
            result = _failure(path, error)
        report(result)
        results.append(result)
    return results


def _run_on_cluster(
    client: Any,
    jobs: list[str],
    checkpoint: str,
    output: str,
    options: PredictOptions,
    report: Callable[[FileResult], None],
) -> list[FileResult]:
    """Submit one task per file and collect results as they complete."""
    from distributed import as_completed

    futures = [
        client.submit(predict_file, path, checkpoint, output, options, pure=False) for path in jobs
    ]
    position = {future.key: index for index, future in enumerate(futures)}
    results: list[FileResult | None] = [None] * len(jobs)
    for future in as_completed(futures):
        index = position[future.key]
        try:
            result = future.result()
        except Exception as error:  # a failed task, or a worker that died
            result = _failure(jobs[index], error)
        report(result)
        results[index] = result
    return [result for result in results if result is not None]

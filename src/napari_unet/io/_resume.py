"""An interrupted :func:`~napari_unet.io.outofcore.predict_to_zarr` resumed by the next run.

Given a provenance record (:mod:`napari_unet.io.reruns`; ``napari-unet predict`` passes
one), :func:`~napari_unet.io.outofcore.predict_to_zarr` writes its store ``NAME`` as
``.NAME.partial`` beside it, holding a small JSON record, :data:`RECORD_NAME`, of

* the *fingerprint* of what the network's probabilities are computed from: the
  provenance's checkpoint SHA-256, input (name, shape, a file's size and modification
  time or a zarr store's fingerprint) and package version, the options that change the
  network's output (tile size, test-time augmentation, axes), and the store's layout
  (input shape and dtype, classes, tile, chunk and tile grid);
* which tiles of the probabilities (the network's stage, by far the slowest) are
  written, as ranges of tile numbers (slice by slice, tiles row by row);
* whether the post-processing (mask refinement, instances) had started: it changes the
  mask in place.

A tile is recorded only once its probabilities and its mask are written (a tile recorded
done is on disk). The record is rewritten atomically (temporary file, rename) at most every
:data:`RECORD_SECONDS` while tiles are written, when the tiles are all written, and when the
run is interrupted. An *interruption* (:data:`INTERRUPTIONS`: KeyboardInterrupt, which
Ctrl-C and, in the CLI, SIGTERM raise; SystemExit; Cancelled, the stop flag) keeps the
partial store. Any other error removes it, as before resuming existed: a real error may
come from the store itself (another program removed its arrays, the disk filled up, a
chunk is damaged), and a fresh start is the safe answer.

The next run over the same store compares fingerprints: the same, it skips the recorded
tiles, rebuilds the mask of those tiles from their probabilities when the post-processing
had started, and redoes all post-processing; different (another model, option or input),
it removes the partial store and starts afresh. Either is said in one line, a
:class:`Notice` given to the progress callback. A store killed harder (SIGKILL, a crash)
resumes too, from its last record: at most :data:`RECORD_SECONDS` of tiles are lost.

One run at a time uses a partial store: it holds the lock ``.NAME.partial.napari-unet.lock``
(:func:`napari_unet.io.locks.output_lock`) from before it reads the record until the store
is published or kept; another run over the same store fails with
:class:`~napari_unet.io.locks.OutputsBusy`. (``napari-unet predict`` holds the lock of the
input's outputs around it already; this one also guards direct calls.)
"""

from __future__ import annotations

import json
import shutil
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..core._atomic import replace
from ..core.inference import Cancelled, Progress
from ..core.tiling import Tile
from ._zarr_store import missing_store_arrays, tile_mask
from .locks import OutputsBusy, OutputsLock, check_held, lock_path, output_lock
from .reruns import record_difference

__all__ = [
    "INTERRUPTIONS",
    "RECORD_NAME",
    "RECORD_SECONDS",
    "Notice",
    "Recorded",
    "TileRecord",
    "discard_kept_partial",
    "kept_partial",
    "partial_path",
    "resumable_store",
]

#: The record of written tiles, inside the partial store.
RECORD_NAME = "napari_unet_resume.json"
#: While tiles are written, the record is rewritten at most this often (seconds).
RECORD_SECONDS = 5.0
#: What keeps a partial store for the next run; any other exception removes it.
INTERRUPTIONS: tuple[type[BaseException], ...] = (KeyboardInterrupt, SystemExit, Cancelled)
_VERSION = 1


@dataclass(frozen=True)
class Notice(Progress):
    """A line for the user about a partial store (stage ``"notice"``): resumed, with
    ``done`` of ``total`` tiles predicted already, or discarded (``done`` 0)."""

    text: str = ""


def partial_path(store_path: Path) -> Path:
    """Where the unfinished store of ``store_path`` is written and kept: ``.NAME.partial``."""
    return store_path.with_name(f".{store_path.name}.partial")


def kept_partial(store_path: Path) -> Path | None:
    """The partial store an interrupted run kept for ``store_path`` (with its record), or None."""
    partial = partial_path(store_path)
    return partial if (partial / RECORD_NAME).is_file() else None


def discard_kept_partial(store_path: Path) -> Path | None:
    """Remove the partial store kept for ``store_path`` by an interrupted run, for a run that
    does not need it (its outputs are up to date, or it wrote TIFF files instead).

    Returns
    -------
    pathlib.Path or None
        The store removed; None when there was none, another run holds it, or it could
        not be removed.
    """
    partial = partial_path(store_path)
    if not partial.exists():
        return None
    try:
        with output_lock(lock_path(store_path.parent, f"{store_path.name}.partial")):
            shutil.rmtree(partial, ignore_errors=True)
    except OutputsBusy:
        return None
    return None if partial.exists() else partial


class TileRecord:
    """The tiles of a partial store known to be written, and their record file.

    Tiles are numbered slice by slice, row by row: ``(slice * rows + row) * columns +
    column``, a tile's row and column being its first kept pixel over ``block``.
    """

    def __init__(
        self,
        path: Path,
        fingerprint: dict[str, Any],
        block: tuple[int, int],
        grid: tuple[int, int, int],
        done: Iterable[int] = (),
    ) -> None:
        self.path, self.fingerprint, self.block, self.grid = path, fingerprint, block, grid
        self.done = set(done)
        self.resumed = len(self.done)
        self.post_processing = False
        self._saved = time.monotonic()
        self.lock: OutputsLock | None = None  # the partial store's, set while a run holds it

    @property
    def total(self) -> int:
        """All tiles of the store."""
        return self.grid[0] * self.grid[1] * self.grid[2]

    def number(self, index: int, top: int, left: int) -> int:
        """The number of the tile of slice ``index`` that keeps pixel (``top``, ``left``)."""
        _, rows, columns = self.grid
        return (index * rows + top // self.block[0]) * columns + left // self.block[1]

    def skip(self, index: int, tile: Tile) -> bool:
        """Whether ``tile`` of slice ``index`` is written already (``iter_predict_stack``)."""
        return self.number(index, tile.y.keep_start, tile.x.keep_start) in self.done

    def written(self, key: tuple) -> None:
        """Note the tile written at ``key`` ((slice,) channels, rows, columns); rewrite the
        record when the last one is :data:`RECORD_SECONDS` old."""
        index = int(key[0]) if len(key) == 4 else 0
        self.done.add(self.number(index, key[-2].start or 0, key[-1].start or 0))
        if time.monotonic() - self._saved >= RECORD_SECONDS:
            self.save()

    def start_post_processing(self) -> None:
        """Record that the tiles are all written and the mask is about to change (raises
        when the record cannot be written: the next run must know to rebuild the mask)."""
        self.post_processing = True
        self.save(strict=True)

    def save(self, strict: bool = False) -> None:
        """Rewrite the record atomically. A failure is ignored unless ``strict`` (a record
        a few seconds old costs only their tiles), as is a store that is gone.

        Raises
        ------
        OutputsBusy
            Another run took the partial store's lock over (this one was thought dead):
            this run must not write it any more.
        """
        self._saved = time.monotonic()
        if self.lock is not None:  # taken over: the store is another run's, stop writing it
            check_held(self.lock)
        if not self.path.is_dir():
            return
        record = {
            "version": _VERSION,
            "fingerprint": self.fingerprint,
            "done": _ranges(self.done),
            "post_processing": self.post_processing,
        }
        temporary = self.path / f".{RECORD_NAME}.{uuid.uuid4().hex}.tmp"
        try:
            temporary.write_text(json.dumps(record))
            replace(temporary, self.path / RECORD_NAME)
        except OSError:
            temporary.unlink(missing_ok=True)
            if strict:
                raise


class Recorded:
    """A destination of tiles (``iter_predict_stack``'s ``out``) that notes each tile in
    ``record`` once ``out`` has taken it."""

    def __init__(self, out: Any, record: TileRecord) -> None:
        self.out, self.record = out, record
        self.shape = tuple(out.shape)

    def __setitem__(self, key: tuple, value: np.ndarray) -> None:
        self.out[key] = value
        self.record.written(key)  # after the write: a recorded tile is on disk


@contextmanager
def resumable_store(
    store_path: Path,
    fingerprint: dict[str, Any],
    block: tuple[int, int],
    grid: tuple[int, int, int],
    progress: Callable[[Progress], None] | None,
) -> Iterator[TileRecord]:
    """Hold the partial store of ``store_path`` for one run; the :class:`TileRecord` of what
    an earlier run with this ``fingerprint`` wrote there (empty: start afresh, the store
    removed). Within the block, an interruption keeps the store and its record, another
    error removes it (while this run still holds its lock); see the module docstring.

    Raises
    ------
    OutputsBusy
        Another run holds the partial store.
    """
    partial = partial_path(store_path)
    with output_lock(lock_path(store_path.parent, f"{store_path.name}.partial")) as lock:
        try:
            record = _resumed(partial, fingerprint, block, grid, progress)
        except INTERRUPTIONS:
            raise
        except BaseException:  # a damaged store (a chunk that cannot be read): start afresh
            shutil.rmtree(partial, ignore_errors=True)
            raise
        record.lock = lock
        try:
            yield record
        except INTERRUPTIONS:
            if not _held(lock):  # taken over: the store is another run's now
                raise
            if record.done:
                record.save()
            else:  # nothing to resume: nothing kept
                shutil.rmtree(partial, ignore_errors=True)
            raise
        except BaseException:
            if _held(lock):  # else taken over: the store is another run's now
                shutil.rmtree(partial, ignore_errors=True)
            raise
        (store_path / RECORD_NAME).unlink(missing_ok=True)  # published: no longer needed


def _resumed(
    partial: Path,
    fingerprint: dict[str, Any],
    block: tuple[int, int],
    grid: tuple[int, int, int],
    progress: Callable[[Progress], None] | None,
) -> TileRecord:
    """The record of ``partial`` if it resumes (said in a :class:`Notice`), else an empty
    one, the stale store removed (said too, unless it held nothing to resume)."""
    fresh = TileRecord(partial, fingerprint, block, grid)
    if not partial.exists():
        return fresh
    stored, done = _read(partial, fresh.total)
    reason = _why_not_resumed(partial, stored, done, fingerprint)
    if stored is None or reason is not None:
        shutil.rmtree(partial)
        if reason:
            _say(progress, Notice(0, fresh.total, "notice", f"discarded {partial}: {reason}"))
        return fresh
    record = TileRecord(partial, fingerprint, block, grid, done)
    _remove_post_processing(partial)
    if stored.get("post_processing"):
        _rebuild_mask(record)
    text = f"resuming: {len(done)} of {record.total} tiles already predicted in {partial}"
    _say(progress, Notice(len(done), record.total, "notice", text))
    return record


def _why_not_resumed(
    partial: Path, stored: dict[str, Any] | None, done: set[int], fingerprint: dict[str, Any]
) -> str | None:
    """Why the partial store cannot be resumed, in words ("" when it held nothing worth
    saying so: no record, or no tile written); None: it can."""
    if stored is None or not done:
        return ""
    before = stored.get("fingerprint")
    if before != fingerprint:
        words = record_difference(before, fingerprint) if isinstance(before, dict) else None
        return f"its tiles were predicted {words or 'with another tile layout'}"
    if missing_store_arrays(partial, ("prob", "mask")):
        return "it lost its probabilities or mask"
    return None


def _remove_post_processing(partial: Path) -> None:
    """Remove from a resumed store what is neither its tiles nor its record: the arrays of
    the post-processing (instances, a scratch plane), redone anyway, and temporaries."""
    keep = {"prob", "mask", RECORD_NAME, "zarr.json", ".zgroup", ".zattrs"}
    for entry in partial.iterdir():
        if entry.name in keep:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def _read(partial: Path, total: int) -> tuple[dict[str, Any] | None, set[int]]:
    """The record in ``partial`` and its written tiles (None and none: no usable record)."""
    try:
        stored = json.loads((partial / RECORD_NAME).read_text())
        if not isinstance(stored, dict) or stored.get("version") != _VERSION:
            return None, set()
        done = {n for start, stop in stored["done"] for n in range(int(start), int(stop))}
    except (OSError, ValueError, TypeError, KeyError):
        return None, set()
    if any(not 0 <= number < total for number in done):
        return None, set()
    return stored, done


def _rebuild_mask(record: TileRecord) -> None:
    """The mask of every written tile made again from its probabilities (the earlier run's
    post-processing had changed it in place)."""
    import zarr

    probabilities = zarr.open_array(str(record.path / "prob"), mode="r")
    mask = zarr.open_array(str(record.path / "mask"), mode="r+")
    _, rows, columns = record.grid
    height, width = mask.shape[-2:]
    for number in sorted(record.done):
        index, rest = divmod(number, rows * columns)
        row, column = divmod(rest, columns)
        top, left = row * record.block[0], column * record.block[1]
        window = (slice(top, min(top + record.block[0], height)),
                  slice(left, min(left + record.block[1], width)))  # fmt: skip
        leading = (index,) if mask.ndim == 3 else ()
        probabilities_of = np.asarray(probabilities[(*leading, slice(None), *window)])
        mask[(*leading, *window)] = tile_mask(probabilities_of)


def _ranges(numbers: set[int]) -> list[list[int]]:
    """``numbers`` as sorted ``[start, stop)`` ranges (tiles are written in order: few)."""
    ranges: list[list[int]] = []
    for number in sorted(numbers):
        if ranges and ranges[-1][1] == number:
            ranges[-1][1] += 1
        else:
            ranges.append([number, number + 1])
    return ranges


def _say(progress: Callable[[Progress], None] | None, notice: Notice) -> None:
    if progress is not None:
        progress(notice)


def _held(lock: OutputsLock) -> bool:
    """Whether this run still holds ``lock`` (not taken over by another run)."""
    try:
        check_held(lock)
    except OutputsBusy:
        return False
    return True

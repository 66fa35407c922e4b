"""Dropping the rows of a memory-mapped prediction that are finished from the process's
memory (:func:`napari_unet.core.inference.iter_predict`)."""

from __future__ import annotations

import ctypes
import mmap
from typing import Any

import numpy as np

from .tiling import Tile

__all__ = ["release_finished", "release_rows"]


def release_finished(out: Any, tiles: list[Tile], done: int, released_rows: int) -> int:
    """Release (:func:`release_rows`) the rows of ``out`` finished once the first ``done``
    of ``tiles`` are written, from ``released_rows`` on; the rows released up to now.

    A row is finished when no later tile writes it: all rows above the next tile's first
    kept row, all rows after the last tile.
    """
    finished_rows = tiles[done].y.keep_start if done < len(tiles) else out.shape[-2]
    if finished_rows > released_rows:
        release_rows(out, released_rows, finished_rows)
        return finished_rows
    return released_rows


def release_rows(out: Any, start: int, stop: int) -> None:
    """Drop the finished rows ``[start, stop)`` of a writable memory-mapped ``out`` from memory.

    Rows written into a shared file mapping stay resident (and count towards the
    process's memory) until the kernel needs the memory. Unmapping them from the
    process (``MADV_DONTNEED``) keeps their data: it is in the page cache and
    reaches the file as usual, and reading them again maps it back. Anything
    else (plain arrays, copy-on-write maps, zarr, non-contiguous views,
    platforms without ``madvise``) is left alone; this only bounds memory.
    """
    buffer = getattr(out, "_mmap", None)
    if (
        not isinstance(out, np.memmap)
        or not isinstance(buffer, mmap.mmap)
        or out.mode not in ("r+", "w+")
        or not out.flags.c_contiguous
        or not hasattr(mmap, "MADV_DONTNEED")
    ):
        return
    try:
        anchor = ctypes.c_char.from_buffer(buffer)
        base = ctypes.addressof(anchor)
        del anchor
        row_bytes = out.strides[-2]
        page = mmap.PAGESIZE
        for channel in range(int(np.prod(out.shape[:-2], dtype=np.int64))):
            first = out.ctypes.data + channel * out.shape[-2] * row_bytes + start * row_bytes
            begin = (first - base) // page * page
            end = first - base + (stop - start) * row_bytes
            buffer.madvise(mmap.MADV_DONTNEED, begin, min(end, len(buffer)) - begin)
    except (AttributeError, BufferError, OSError, TypeError, ValueError):
        return

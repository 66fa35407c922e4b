"""Filling the holes of objects labelled block by block
(:func:`~napari_unet.io.chunked_labels.label_chunked`).

Each block's background pieces that border one object join it as the block is numbered
(:func:`fill_enclosed_background`); Euler numbers summed over the blocks
(:class:`EulerNumbers`) then mark the objects that still have a hole, and
:func:`fill_marked_holes` fills those within their block or their bounding box
(:class:`Extents`), as :func:`~napari_unet.core.postprocess.fill_object_holes` does in memory.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage

from ..core.postprocess import fill_object_holes

__all__ = ["EulerNumbers", "Extents", "fill_enclosed_background", "fill_marked_holes"]


def fill_enclosed_background(labels: np.ndarray) -> None:
    """Fill, in place, each background component of a block that does not touch the
    block's edge and borders one single object: that object is the innermost one
    enclosing it, so it is what the per-object filling would give it."""
    components, n_components = ndimage.label(labels == 0)
    if not n_components:
        return
    edges = (components[0], components[-1], components[:, 0], components[:, -1])
    component_parts, neighbour_parts = [], []
    for here, there in (
        ((slice(1, None), slice(None)), (slice(None, -1), slice(None))),
        ((slice(None, -1), slice(None)), (slice(1, None), slice(None))),
        ((slice(None), slice(1, None)), (slice(None), slice(None, -1))),
        ((slice(None), slice(None, -1)), (slice(None), slice(1, None))),
    ):
        component, neighbour = components[here], labels[there]
        touching = (component > 0) & (neighbour > 0)
        component_parts.append(component[touching])
        neighbour_parts.append(neighbour[touching])
    component = np.concatenate(component_parts)
    neighbour = np.concatenate(neighbour_parts)
    one = np.zeros(n_components + 1, labels.dtype)
    one[component] = neighbour  # any one of each component's neighbours
    several = np.bincount(
        component, weights=neighbour != one[component], minlength=n_components + 1
    )
    one[several > 0] = 0
    one[np.concatenate(edges)] = 0  # may reach beyond the block
    one[0] = 0
    labels += one[components]


class EulerNumbers:
    """Euler numbers (8-connectivity) of objects 1..n, summed block by block over the
    2x2 windows of the image padded with background (Gray's bit quads).

    An object is 4-connected, hence one 8-connected piece: its Euler number is 1 minus
    its holes (4-connected pieces of other pixels it encloses, as
    :func:`scipy.ndimage.binary_fill_holes` sees them), so it has no hole to fill when
    the number is 1. Blocks must come in raster order: the windows across a block's top
    and left edges use the last row and column of the blocks already seen.
    """

    def __init__(self, n_objects: int, width: int) -> None:
        self.quads = np.zeros(n_objects + 1, np.int64)  # 4 x Euler number
        self.above = np.zeros(width + 1, np.int64)  # row above the block row, from x = -1
        self.next_above = np.zeros(width + 1, np.int64)
        self.left = np.zeros(0, np.int64)

    def add(self, index: np.ndarray, rows: slice, columns: slice, shape: tuple[int, int]) -> None:
        height, width = index.shape
        if columns.start == 0:  # a new block row
            if rows.start > 0:
                self.above, self.next_above = self.next_above, self.above
            self.left = np.zeros(height, np.int64)
        last_row, last_column = rows.stop == shape[0], columns.stop == shape[1]
        window = np.zeros((height + 1 + last_row, width + 1 + last_column), np.int64)
        window[0, : width + 1] = self.above[columns.start : columns.stop + 1]
        window[1 : height + 1, 0] = self.left
        window[1 : height + 1, 1 : width + 1] = index
        self.next_above[columns.start + 1 : columns.stop + 1] = index[-1]
        self.next_above[0] = 0
        self.left = index[:, -1].copy()
        a, b = window[:-1, :-1], window[:-1, 1:]
        c, d = window[1:, :-1], window[1:, 1:]
        mixed = (a != b) | (a != c) | (a != d)  # a window of one label counts 0 for it
        a, b, c, d = a[mixed], b[mixed], c[mixed], d[mixed]
        self._count(a, 1 + (b == a) + (c == a) + (d == a), d == a)
        first = b != a
        self._count(b[first], 1 + (c == b)[first] + (d == b)[first], (c == b)[first])
        first = (c != a) & (c != b)
        self._count(c[first], 1 + (d == c)[first], None)
        first = (d != a) & (d != b) & (d != c)
        self._count(d[first], np.ones(int(first.sum()), np.int64), None)

    def _count(self, index: np.ndarray, count: np.ndarray, diagonal: Any) -> None:
        weight = (count == 1).astype(np.int64) - (count == 3)
        if diagonal is not None:
            weight -= 2 * ((count == 2) & diagonal)
        self.quads += np.bincount(
            index.ravel(), weights=weight.ravel(), minlength=len(self.quads)
        ).astype(np.int64)

    def with_holes(self) -> np.ndarray:
        """Whether each object 0..n may have a hole (Euler number below 1)."""
        holes = self.quads < 4
        holes[0] = False
        return holes


class Extents:
    """Bounding boxes of objects 1..n, grown block by block."""

    def __init__(self, n_objects: int) -> None:
        self.starts = np.full((n_objects + 1, 2), np.iinfo(np.int64).max, np.int64)
        self.stops = np.zeros((n_objects + 1, 2), np.int64)

    def grow(self, numbers: np.ndarray, y0: int, x0: int) -> None:
        present = np.flatnonzero(np.bincount(numbers.ravel(), minlength=len(self.starts)))
        present = present[present > 0]
        # numbered 1..len(present) in the block, so find_objects does not walk every
        # object of the image for every block
        compact = np.zeros(len(self.starts), np.int64)
        compact[present] = np.arange(1, len(present) + 1)
        boxes = ndimage.find_objects(compact[numbers])
        bounds = np.array(
            [(box[0].start, box[1].start, box[0].stop, box[1].stop) for box in boxes], np.int64
        ).reshape(-1, 4) + np.array([y0, x0, y0, x0])
        self.starts[present] = np.minimum(self.starts[present], bounds[:, :2])
        self.stops[present] = np.maximum(self.stops[present], bounds[:, 2:])

    def box(self, index: int) -> tuple[slice, slice]:
        (y0, x0), (y1, x1) = self.starts[index], self.stops[index]
        return slice(int(y0), int(y1)), slice(int(x0), int(x1))


def fill_marked_holes(
    out: Any, block: tuple[int, int], extents: Extents, offset: int, with_holes: np.ndarray
) -> None:
    """Fill the holes of the objects ``with_holes`` marks: block by block for the
    objects one block holds, then each larger object within its bounding box."""
    inside: dict[tuple[int, int], dict[int, tuple[slice, slice]]] = {}
    spanning: dict[int, tuple[slice, slice]] = {}
    for index in np.flatnonzero(with_holes).tolist():
        if extents.stops[index, 0] == 0:  # numbered but never seen (not expected)
            continue
        rows, columns = extents.box(index)
        first = (rows.start // block[0], columns.start // block[1])
        last = ((rows.stop - 1) // block[0], (columns.stop - 1) // block[1])
        if first == last:
            y0, x0 = first[0] * block[0], first[1] * block[1]
            local = (
                slice(rows.start - y0, rows.stop - y0),
                slice(columns.start - x0, columns.stop - x0),
            )
            inside.setdefault(first, {})[index + offset] = local
        else:
            spanning[index + offset] = (rows, columns)
    height, width = (int(size) for size in out.shape)
    for (by, bx), objects in inside.items():
        where = (
            slice(by * block[0], min((by + 1) * block[0], height)),
            slice(bx * block[1], min((bx + 1) * block[1], width)),
        )
        data = np.asarray(out[where]).copy()
        before = np.count_nonzero(data)
        fill_object_holes(data, objects)
        if np.count_nonzero(data) > before:
            out[where] = data
    for label in sorted(spanning, key=lambda i: (_area(spanning[i]), i)):
        data = np.asarray(out[spanning[label]]).copy()
        before = np.count_nonzero(data)
        fill_object_holes(data, {label: (slice(0, data.shape[0]), slice(0, data.shape[1]))})
        if np.count_nonzero(data) > before:
            out[spanning[label]] = data


def _area(box: tuple[slice, slice]) -> int:
    return (box[0].stop - box[0].start) * (box[1].stop - box[1].start)

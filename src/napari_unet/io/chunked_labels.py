"""Connected components of a class mask too large for memory, one block at a time.

:func:`close_gaps_chunked` first closes the gaps in the mask's boundaries as
:func:`~napari_unet.core.postprocess.prediction_mask` does in memory, one block plus a
halo at a time.

:func:`label_chunked` labels each block with :func:`scipy.ndimage.label`, joins the
provisional labels that touch across block borders with a sparse graph's connected
components, drops objects under ``min_size`` pixels (sizes summed over blocks) and
renumbers in the order :func:`~napari_unet.io.volumes.slice_instances` uses, so a zarr
store's instances equal the in-memory ones.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
from scipy import ndimage, sparse
from scipy.sparse import csgraph

from ..core.boundaries import grow_objects, separating_lines
from ..core.postprocess import MIN_INSTANCE_SIZE, fill_object_holes
from .volumes import MAX_INSTANCES

__all__ = ["GAP_HALO", "close_gaps_chunked", "grow_objects_chunked", "label_chunked"]

#: Context (pixels) around each block when gaps are closed block by block: the
#: watershed basins of objects up to about this size come out as on the whole plane.
GAP_HALO = 64


def close_gaps_chunked(
    boundary: Any, mask: Any, block: tuple[int, int], halo: int = GAP_HALO
) -> None:
    """Close the gaps of a (Y, X) class mask's boundaries in place, block by block.

    Each block's lines come from :func:`~napari_unet.core.boundaries.separating_lines`
    on the block plus ``halo`` pixels of the boundary probability on every side. The
    objects come out as on the whole plane wherever they are smaller than the halo; a
    line may lie a pixel off where a basin reaches past the window (its mean
    probability differs), and a halo as wide as every basin makes the two equal.

    Parameters
    ----------
    boundary : array-like, (Y, X) float
        Probability of class 1 (background or membrane); read window by window.
    mask : array-like, (Y, X) uint8
        Class mask, read and written block by block; lines become class 1.
    block : (int, int)
        Block shape (the store's chunks).
    halo : int
        Context in pixels around each block.
    """
    for target, window, centre in _blocks(mask.shape, block, halo):
        lines = separating_lines(np.asarray(boundary[window]))[centre]
        if lines.any():
            closed = np.asarray(mask[target]).copy()
            closed[lines] = 1
            mask[target] = closed


def grow_objects_chunked(
    boundary: Any, mask: Any, block: tuple[int, int], threshold: float, halo: int = GAP_HALO
) -> None:
    """Grow the objects of a (Y, X) class mask in place, block by block.

    :func:`~napari_unet.core.boundaries.grow_objects` on each block plus ``halo``
    pixels of the mask and the boundary probability on every side; only the block is
    written. Objects grow only into the thin band of pixels whose probability lies
    between 0.5 and ``threshold``, so a halo wider than that band gives the block what
    the whole plane gives it, up to the watershed line's pixel where two objects meet
    at a window's edge.

    Parameters
    ----------
    boundary : array-like, (Y, X) float
        Probability of class 1; read window by window.
    mask : array-like, (Y, X) uint8
        Class mask (after its gaps are closed); read and written block by block.
    block : (int, int)
        Block shape (the store's chunks).
    threshold : float
        In [0.5, 1); 0.5 changes nothing.
    halo : int
        Context in pixels around each block.
    """
    if threshold == 0.5:
        return
    for target, window, centre in _blocks(mask.shape, block, halo):
        before = np.asarray(mask[window])
        grown = grow_objects(before, np.asarray(boundary[window]), threshold)[centre]
        if not np.array_equal(grown, before[centre]):
            mask[target] = grown


_Window = tuple[slice, slice]


def _blocks(
    shape: tuple[int, int], block: tuple[int, int], halo: int
) -> Iterator[tuple[_Window, _Window, _Window]]:
    """Each block of a (Y, X) plane: (the block, its window with ``halo`` of context
    clipped to the plane, the block's place inside that window)."""
    height, width = shape
    for top in range(0, height, block[0]):
        for left in range(0, width, block[1]):
            bottom, right = min(top + block[0], height), min(left + block[1], width)
            y0, x0 = max(top - halo, 0), max(left - halo, 0)
            yield (
                (slice(top, bottom), slice(left, right)),
                (slice(y0, min(bottom + halo, height)), slice(x0, min(right + halo, width))),
                (slice(top - y0, bottom - y0), slice(left - x0, right - x0)),
            )


def label_chunked(
    mask: Any,
    out: Any,
    block: tuple[int, int],
    offset: int = 0,
    min_size: int = MIN_INSTANCE_SIZE,
    fill_holes: bool = True,
) -> int:
    """Instance labels of a (Y, X) class mask, one block in memory at a time.

    Parameters
    ----------
    mask : array-like, (Y, X) int
        Class mask (1 = background, 2.. = foreground classes); read block by block.
    out : array-like, (Y, X) uint32
        Destination, also used for provisional labels; written block by block.
    block : (int, int)
        Block shape; best the chunk shape of ``mask`` and ``out``.
    offset : int
        Added to every label (for numbering through a stack).
    min_size : int
        Objects with fewer pixels are background (sizes summed over blocks).
    fill_holes : bool
        Background pixels enclosed by one object join it, as
        :func:`~napari_unet.core.postprocess.fill_instance_holes` does in memory. Each
        block's background pieces that do not reach its edge and border one object
        join that object as the block is numbered; the objects whose Euler number
        (summed over the blocks) still shows a hole are then filled one by one, within
        their block or their bounding box.

    Returns
    -------
    int
        The number of objects; ``out`` holds ``offset + 1 ..`` and 0 for background,
        equal to :func:`~napari_unet.io.volumes.slice_instances`
        ``(mask, offset=offset, min_size=min_size)`` (holes filled the same way)
        (4-connectivity components), the stack numbering it stands in for.
    """
    height, width = (int(size) for size in mask.shape)
    boxes = [
        (slice(y, min(y + block[0], height)), slice(x, min(x + block[1], width)))
        for y in range(0, height, block[0])
        for x in range(0, width, block[1])
    ]
    classes, firsts, count = [np.zeros(1, np.int64)], [np.zeros(1, np.int64)], 0
    sizes = [np.zeros(1, np.int64)]
    for rows, columns in boxes:
        labels, block_classes, block_firsts = _label_block(
            np.asarray(mask[rows, columns]), rows.start, columns.start, width
        )
        if count + len(block_classes) > MAX_INSTANCES:
            raise ValueError("too many objects for uint32 instance labels")
        out[rows, columns] = np.where(labels > 0, labels + count, 0).astype(np.uint32)
        classes.append(block_classes)
        firsts.append(block_firsts)
        sizes.append(np.bincount(labels.ravel(), minlength=len(block_classes) + 1)[1:])
        count += len(block_classes)
    provisional = (np.concatenate(classes), np.concatenate(firsts), np.concatenate(sizes))
    final, n_objects = _renumber(*provisional, _border_pairs(mask, out, boxes), min_size)
    if n_objects + offset > MAX_INSTANCES:
        raise ValueError("too many objects for uint32 instance labels")
    extents, euler = _Extents(n_objects), _EulerNumbers(n_objects, width)
    for rows, columns in boxes:
        numbers = final[np.asarray(out[rows, columns])]  # 1..n_objects, 0 = background
        if fill_holes:
            _fill_enclosed_background(numbers)
            euler.add(numbers, rows, columns, (height, width))
            extents.grow(numbers, rows.start, columns.start)
        out[rows, columns] = np.where(numbers > 0, numbers + offset, 0).astype(np.uint32)
    if fill_holes and n_objects:
        _fill_holes(out, block, extents, offset, euler.with_holes())
    return n_objects


def _fill_enclosed_background(labels: np.ndarray) -> None:
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


class _EulerNumbers:
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


class _Extents:
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


def _fill_holes(
    out: Any, block: tuple[int, int], extents: _Extents, offset: int, with_holes: np.ndarray
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


def _label_block(
    block: np.ndarray, y0: int, x0: int, width: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Components of one block: labels from 1, their class, their first global pixel."""
    labels = np.zeros(block.shape, np.int64)
    classes, firsts, count = [], [], 0
    for value in np.unique(block):
        if value < 2:
            continue
        class_labels, n = ndimage.label(block == value)
        ids, first = np.unique(class_labels.ravel(), return_index=True)
        rows, columns = np.divmod(first[ids > 0], block.shape[1])
        firsts.append((rows + y0) * width + columns + x0)
        classes.append(np.full(n, int(value), np.int64))
        inside = class_labels > 0
        labels[inside] = class_labels[inside] + count
        count += n
    if not classes:
        return labels, np.zeros(0, np.int64), np.zeros(0, np.int64)
    return labels, np.concatenate(classes), np.concatenate(firsts).astype(np.int64)


def _border_pairs(mask: Any, out: Any, boxes: list[tuple[slice, slice]]) -> np.ndarray:
    """(2, N) provisional labels of same-class pixels touching across block borders."""
    pairs = [np.zeros((2, 0), np.int64)]
    for rows, columns in boxes:
        borders = []
        if rows.start > 0:
            borders.append(((rows.start - 1, columns), (rows.start, columns)))
        if columns.start > 0:
            borders.append(((rows, columns.start - 1), (rows, columns.start)))
        for before, after in borders:
            first, second = np.asarray(out[before]), np.asarray(out[after])
            touching = (first > 0) & (second > 0)
            touching &= np.asarray(mask[before]) == np.asarray(mask[after])
            pairs.append(np.stack([first[touching], second[touching]]).astype(np.int64))
    return np.concatenate(pairs, axis=1)


def _renumber(
    classes: np.ndarray, firsts: np.ndarray, sizes: np.ndarray, pairs: np.ndarray, min_size: int
) -> tuple[np.ndarray, int]:
    """Final number of every provisional label (index 0 = background stays 0).

    Objects (connected provisional labels) with fewer than ``min_size`` pixels get 0.
    """
    size = len(classes)
    graph = sparse.coo_matrix((np.ones(pairs.shape[1]), (pairs[0], pairs[1])), (size, size))
    _, component = csgraph.connected_components(graph, directed=False)
    n_components = int(component.max()) + 1
    first = np.full(n_components, np.iinfo(np.int64).max)
    np.minimum.at(first, component[1:], firsts[1:])
    component_class = np.zeros(n_components, np.int64)
    component_class[component[1:]] = classes[1:]
    object_size = np.zeros(n_components, np.int64)
    np.add.at(object_size, component[1:], sizes[1:])
    objects = np.unique(component[1:])
    objects = objects[object_size[objects] >= min_size]
    order = objects[np.lexsort((first[objects], component_class[objects]))]
    number = np.zeros(n_components, np.int64)
    number[order] = np.arange(1, len(order) + 1)
    final = number[component]
    final[0] = 0
    return final, len(order)

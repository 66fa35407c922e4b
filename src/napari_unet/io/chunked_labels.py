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

from ..core.boundaries import fill_enclosed, grow_objects, separating_lines
from ..core.postprocess import MIN_INSTANCE_SIZE, MaskSteps
from ._chunked_holes import EulerNumbers, Extents, fill_enclosed_background, fill_marked_holes
from .volumes import MAX_INSTANCES

__all__ = [
    "GAP_HALO",
    "close_gaps_chunked",
    "fill_enclosed_chunked",
    "grow_objects_chunked",
    "label_chunked",
    "refine_mask_chunked",
]

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
    boundary: Any,
    mask: Any,
    block: tuple[int, int],
    threshold: float,
    halo: int = GAP_HALO,
    snapshot: Any = None,
) -> None:
    """Grow the objects of a (Y, X) class mask in place, block by block.

    :func:`~napari_unet.core.boundaries.grow_objects` on each block plus ``halo``
    pixels of the mask and the boundary probability on every side; only the block is
    written. Every window is read from ``snapshot``, a copy of the mask made before any
    block grows, so no block sees its neighbours' grown pixels (read from the mask,
    they moved the watershed lines along block borders). Objects grow only into the
    thin band of pixels whose probability lies between 0.5 and ``threshold``, so with
    a halo much wider than that band each block gets what the whole plane gives it:
    the result equals ``grow_objects`` on the whole plane (tested at the default halo
    on synthetic membranes and ISBI slice 17, blocks of 48-256). It can differ where
    the flooding of a block's pixels depends on more than the halo shows: two parts of
    one object joined only beyond the halo meet across the band inside the block (the
    window sees two objects and keeps a line between them), or a halo narrower than
    the band.

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
    snapshot : array-like, (Y, X) uint8, optional
        Scratch array of the mask's shape, overwritten with the mask block by block
        and read window by window: for a mask larger than memory a chunked array on
        disk (a zarr array chunked by ``block``). None: a numpy array (the whole plane
        in memory).

    Raises
    ------
    ValueError
        If ``snapshot`` and ``mask`` differ in shape.
    """
    if threshold == 0.5:
        return
    height, width = (int(size) for size in mask.shape)
    shape = (height, width)
    snapshot = _snapshot_of(mask, shape, block, snapshot)
    for target, window, centre in _blocks(shape, block, halo):
        before = np.asarray(snapshot[window])
        grown = grow_objects(before, np.asarray(boundary[window]), threshold)[centre]
        if not np.array_equal(grown, before[centre]):
            mask[target] = grown


def _snapshot_of(mask: Any, shape: tuple[int, int], block: tuple[int, int], snapshot: Any) -> Any:
    """``snapshot`` (None: a new array) filled with the (Y, X) ``mask`` of ``shape``, block
    by block; ValueError if their shapes differ."""
    if snapshot is None:
        snapshot = np.empty(shape, np.uint8)
    if tuple(snapshot.shape) != shape:
        raise ValueError(f"snapshot {tuple(snapshot.shape)} and mask {shape} differ in shape")
    for target, _, _ in _blocks(shape, block, 0):
        snapshot[target] = np.asarray(mask[target])
    return snapshot


def fill_enclosed_chunked(mask: Any, block: tuple[int, int], halo: int = GAP_HALO) -> None:
    """Fill what the objects of a (Y, X) class mask enclose, in place, block by block.

    :func:`~napari_unet.core.boundaries.fill_enclosed` on each block plus ``halo``
    pixels of the mask on every side; only the block is written. A pocket that the
    window cuts open is not filled there, so the result equals the whole plane's
    wherever an object and what it encloses fit in a window (cells and nuclei are far
    smaller than a block and its halo); larger enclosures are left partly or wholly open.

    Parameters
    ----------
    mask : array-like, (Y, X) uint8
        Class mask (after its gaps are closed and its objects grown); read and written
        block by block.
    block : (int, int)
        Block shape (the store's chunks).
    halo : int
        Context in pixels around each block.
    """
    for target, window, centre in _blocks(mask.shape, block, halo):
        before = np.asarray(mask[window])
        filled = fill_enclosed(before)[centre]
        if not np.array_equal(filled, before[centre]):
            mask[target] = filled


def refine_mask_chunked(
    probabilities: Any, mask: Any, block: tuple[int, int], steps: MaskSteps, snapshot: Any = None
) -> None:
    """What Predict adds to the most probable class, on every slice of ``mask`` in place,
    block by block.

    Parameters
    ----------
    probabilities : array-like, (C, Y, X) or (Z, C, Y, X) float
        Class probabilities; class 1's channel is the boundary.
    mask : array-like, (Y, X) or (Z, Y, X) uint8
        Most probable class; refined in place.
    block : (int, int)
        Block shape (the store's chunks).
    steps : MaskSteps
        :func:`~napari_unet.core.postprocess.mask_steps`: (close the gaps, the background
        threshold objects grow to, fill what objects enclose).
    snapshot : array-like, (Y, X) uint8, optional
        Scratch plane the objects grow from (see :func:`grow_objects_chunked`), reused
        for every slice; None: a numpy array.
    """
    closing, threshold, filling = steps
    for boundary, plane in boundary_planes(probabilities, mask):
        if closing:
            close_gaps_chunked(boundary, plane, block)
        if threshold != 0.5:
            grow_objects_chunked(boundary, plane, block, threshold, snapshot=snapshot)
        if filling:
            fill_enclosed_chunked(plane, block)


def boundary_planes(probabilities: Any, mask: Any) -> list[tuple[Any, Any]]:
    """(class 1's probability, the mask) of each (Y, X) slice, as 2-D windows."""
    if mask.ndim == 2:
        return [(Plane(probabilities, 0), mask)]
    return [
        (Plane(Plane(probabilities, index), 0), Plane(mask, index))
        for index in range(mask.shape[0])
    ]


class Plane:
    """2-D window ``array[index]`` of a 3-D array-like, read and written by slices."""

    def __init__(self, array: Any, index: int) -> None:
        self.array, self.index = array, index
        self.shape = tuple(array.shape[1:])

    def __getitem__(self, key: tuple) -> np.ndarray:
        return np.asarray(self.array[(self.index, *key)])

    def __setitem__(self, key: tuple, value: np.ndarray) -> None:
        self.array[(self.index, *key)] = value


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
    boxes = [target for target, _, _ in _blocks((height, width), block, 0)]
    provisional = _provisional_labels(mask, out, boxes, width)
    final, n_objects = _renumber(*provisional, _border_pairs(mask, out, boxes), min_size)
    if n_objects + offset > MAX_INSTANCES:
        raise ValueError("too many objects for uint32 instance labels")
    _write_final_labels(out, (height, width), boxes, block, final, n_objects, offset, fill_holes)
    return n_objects


def _write_final_labels(
    out: Any,
    shape: tuple[int, int],
    boxes: list[_Window],
    block: tuple[int, int],
    final: np.ndarray,
    n_objects: int,
    offset: int,
    fill_holes: bool,
) -> None:
    """Renumber the provisional labels in ``out`` (``shape``) block by block to ``final``
    (their object, 1..``n_objects``) plus ``offset``, filling holes with ``fill_holes``."""
    height, width = shape
    extents, euler = Extents(n_objects), EulerNumbers(n_objects, width)
    for rows, columns in boxes:
        numbers = final[np.asarray(out[rows, columns])]  # 1..n_objects, 0 = background
        if fill_holes:
            fill_enclosed_background(numbers)
            euler.add(numbers, rows, columns, (height, width))
            extents.grow(numbers, rows.start, columns.start)
        out[rows, columns] = np.where(numbers > 0, numbers + offset, 0).astype(np.uint32)
    if fill_holes and n_objects:
        fill_marked_holes(out, block, extents, offset, euler.with_holes())


def _provisional_labels(
    mask: Any, out: Any, boxes: list[_Window], width: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Label each block of ``mask`` on its own into ``out``, numbered on through the blocks:
    the class, first pixel and size of each provisional label (0 first: background)."""
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
    return np.concatenate(classes), np.concatenate(firsts), np.concatenate(sizes)


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

"""Connected components of a class mask too large for memory, one block at a time.

:func:`label_chunked` labels each block with :func:`scipy.ndimage.label`, joins the
provisional labels that touch across block borders with a sparse graph's connected
components, drops objects under ``min_size`` pixels (sizes summed over blocks) and
renumbers in the order :func:`~napari_unet.io.volumes.slice_instances` uses, so a zarr
store's instances equal the in-memory ones. The refinement before it (gaps closed,
objects grown, enclosures filled) is :mod:`~napari_unet.io.chunked_refine`'s.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage, sparse
from scipy.sparse import csgraph

from ..core.postprocess import MIN_INSTANCE_SIZE
from ._chunked_holes import EulerNumbers, Extents, fill_enclosed_background, fill_marked_holes
from .chunked_refine import Window, blocks
from .volumes import MAX_INSTANCES

__all__ = ["label_chunked"]


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
    boxes = [target for target, _, _ in blocks((height, width), block, 0)]
    provisional = _provisional_labels(mask, out, boxes, width)
    final, n_objects = _renumber(*provisional, _border_pairs(mask, out, boxes), min_size)
    if n_objects + offset > MAX_INSTANCES:
        raise ValueError("too many objects for uint32 instance labels")
    _write_final_labels(out, (height, width), boxes, block, final, n_objects, offset, fill_holes)
    return n_objects


def _write_final_labels(
    out: Any,
    shape: tuple[int, int],
    boxes: list[Window],
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
    mask: Any, out: Any, boxes: list[Window], width: int
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

"""What Predict adds to the most probable class, on a mask too large for memory, one
block (plus a halo of context) at a time.

:func:`refine_mask_chunked` runs, on every slice, :func:`close_gaps_chunked` (the gaps in
the boundaries closed as :func:`~napari_unet.core.postprocess.prediction_mask` does in
memory), :func:`grow_objects_chunked` (objects grown up to the background threshold) and
:func:`fill_enclosed_chunked` (what objects enclose joined to them), calling ``on_block``
after each block so that a long refinement can say how far it got.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from ..core.boundaries import fill_enclosed, grow_objects, separating_lines
from ..core.postprocess import MaskSteps

__all__ = [
    "GAP_HALO",
    "boundary_planes",
    "close_gaps_chunked",
    "fill_enclosed_chunked",
    "grow_objects_chunked",
    "refine_blocks",
    "refine_mask_chunked",
]

#: Context (pixels) around each block when gaps are closed block by block: the
#: watershed basins of objects up to about this size come out as on the whole plane.
GAP_HALO = 64


def close_gaps_chunked(
    boundary: Any, mask: Any, block: tuple[int, int], halo: int = GAP_HALO, on_block: OnBlock = None
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
    for target, window, centre in blocks(mask.shape, block, halo, on_block):
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
    on_block: OnBlock = None,
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
    snapshot = _snapshot_of(mask, shape, block, snapshot, on_block)
    for target, window, centre in blocks(shape, block, halo, on_block):
        before = np.asarray(snapshot[window])
        grown = grow_objects(before, np.asarray(boundary[window]), threshold)[centre]
        if not np.array_equal(grown, before[centre]):
            mask[target] = grown


def _snapshot_of(
    mask: Any, shape: tuple[int, int], block: tuple[int, int], snapshot: Any, on_block: OnBlock
) -> Any:
    """``snapshot`` (None: a new array) filled with the (Y, X) ``mask`` of ``shape``, block
    by block; ValueError if their shapes differ."""
    if snapshot is None:
        snapshot = np.empty(shape, np.uint8)
    if tuple(snapshot.shape) != shape:
        raise ValueError(f"snapshot {tuple(snapshot.shape)} and mask {shape} differ in shape")
    for target, _, _ in blocks(shape, block, 0, on_block):
        snapshot[target] = np.asarray(mask[target])
    return snapshot


def fill_enclosed_chunked(
    mask: Any, block: tuple[int, int], halo: int = GAP_HALO, on_block: OnBlock = None
) -> None:
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
    for target, window, centre in blocks(mask.shape, block, halo, on_block):
        before = np.asarray(mask[window])
        filled = fill_enclosed(before)[centre]
        if not np.array_equal(filled, before[centre]):
            mask[target] = filled


def refine_mask_chunked(
    probabilities: Any,
    mask: Any,
    block: tuple[int, int],
    steps: MaskSteps,
    snapshot: Any = None,
    on_block: OnBlock = None,
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
    on_block : callable, optional
        Called after each block of each step: :func:`refine_blocks` times in all.
    """
    closing, threshold, filling = steps
    for boundary, plane in boundary_planes(probabilities, mask):
        if closing:
            close_gaps_chunked(boundary, plane, block, on_block=on_block)
        if threshold != 0.5:
            grow_objects_chunked(
                boundary, plane, block, threshold, snapshot=snapshot, on_block=on_block
            )
        if filling:
            fill_enclosed_chunked(plane, block, on_block=on_block)


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


Window = tuple[slice, slice]

OnBlock = Callable[[], None] | None
"""Called after each block (to report progress); None: nothing."""


def blocks(
    shape: tuple[int, int], block: tuple[int, int], halo: int, on_block: OnBlock = None
) -> Iterator[tuple[Window, Window, Window]]:
    """Each block of a (Y, X) plane: (the block, its window with ``halo`` of context
    clipped to the plane, the block's place inside that window); ``on_block`` is called
    once each block is done."""
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
            if on_block is not None:
                on_block()


def refine_blocks(shape: tuple[int, ...], block: tuple[int, int], steps: MaskSteps) -> int:
    """How many times :func:`refine_mask_chunked` calls ``on_block`` for a mask of
    ``shape`` ((Y, X) or (Z, Y, X)): per slice, once per block and step (twice to grow,
    which first copies the mask)."""
    closing, threshold, filling = steps
    rows, columns = (-(-size // edge) for size, edge in zip(shape[-2:], block))
    passes = int(closing) + 2 * int(threshold != 0.5) + int(filling)
    slices = int(np.prod(shape[:-2], dtype=int))
    return slices * rows * columns * passes

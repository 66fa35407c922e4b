"""Overlap-tile geometry (the paper's Fig. 2), in pure numpy.

An image axis of length ``size`` is covered by tiles whose *kept* output
regions ``[k * stride, min((k + 1) * stride, size))`` partition it, so every
output pixel is written exactly once. Tile ``k`` reads the input window
``[k * stride - halo, k * stride - halo + tile)``; wherever that window leaves
the image, the image is extended by mirroring at its border
(``numpy.pad(mode="reflect")`` semantics, applied repeatedly for windows wider
than the image).

The stride is a multiple of ``2 ** depth`` so that every tile sees the same
max-pool grid as one pass over the whole image would: tiled and untiled
predictions of a valid network are then identical.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class AxisTile:
    """One tile along one axis, in image coordinates.

    Attributes
    ----------
    read_start : int
        First input pixel read (negative or past the end means mirrored).
    keep_start, keep_stop : int
        Output pixels ``[keep_start, keep_stop)`` this tile writes.
    crop_start : int
        Index in the network's output that corresponds to ``keep_start``.
    """

    read_start: int
    keep_start: int
    keep_stop: int
    crop_start: int


@dataclass(frozen=True)
class Tile:
    """A 2D tile: the product of one tile along Y and one along X."""

    y: AxisTile
    x: AxisTile

    @property
    def keep(self) -> tuple[slice, slice]:
        """Slices of the image (and the output) this tile writes."""
        return slice(self.y.keep_start, self.y.keep_stop), slice(
            self.x.keep_start, self.x.keep_stop
        )

    def crop(self) -> tuple[slice, slice]:
        """Slices of the network output that go to :attr:`keep`."""
        ys, xs = self.y, self.x
        return (
            slice(ys.crop_start, ys.crop_start + ys.keep_stop - ys.keep_start),
            slice(xs.crop_start, xs.crop_start + xs.keep_stop - xs.keep_start),
        )


def plan_axis(size: int, stride: int, halo: int, margin: int) -> list[AxisTile]:
    """Tiles along one axis.

    Parameters
    ----------
    size : int
        Image length along the axis.
    stride : int
        Output pixels kept per tile (the last tile keeps what is left).
    halo : int
        Context read before the first kept pixel.
    margin : int
        Offset, in the network's output, of the first kept pixel: 0 for a valid
        network (its output starts ``halo`` pixels into its input), ``halo`` for a
        "same" network.
    """
    if stride < 1:
        raise ValueError(f"tile stride must be positive, got {stride}")
    starts = range(0, size, stride)
    return [AxisTile(start - halo, start, min(start + stride, size), margin) for start in starts]


def plan_tiles(
    image_shape: tuple[int, int], stride: tuple[int, int], halo: int, margin: int
) -> list[Tile]:
    """All tiles covering an image of ``image_shape`` (Y, X), row by row."""
    rows = plan_axis(image_shape[0], stride[0], halo, margin)
    columns = plan_axis(image_shape[1], stride[1], halo, margin)
    return [Tile(y, x) for y in rows for x in columns]


def mirror_indices(start: int, stop: int, size: int) -> np.ndarray:
    """Indices ``start..stop-1`` mapped into ``[0, size)`` by mirroring at the borders.

    Mirroring does not repeat the edge pixel (index -1 reads 1, index ``size``
    reads ``size - 2``), like ``numpy.pad(mode="reflect")``.
    """
    indices = np.arange(start, stop)
    if size == 1:
        return np.zeros_like(indices)
    period = 2 * (size - 1)
    indices = np.mod(indices, period)
    return np.where(indices >= size, period - indices, indices)


def read_mirrored(image: Any, y_start: int, x_start: int, shape: tuple[int, int]) -> np.ndarray:
    """Read a window of ``shape`` at (``y_start``, ``x_start``) from ``image`` (..., Y, X).

    Parts of the window outside the image are mirrored. Only the bounding box of
    the needed pixels is read, so ``image`` may be a memory map, a zarr or a dask
    array as long as it supports basic slicing.

    Returns
    -------
    numpy.ndarray
        Shape ``(..., shape[0], shape[1])``, the image's dtype.
    """
    size_y, size_x = image.shape[-2:]
    rows = mirror_indices(y_start, y_start + shape[0], size_y)
    columns = mirror_indices(x_start, x_start + shape[1], size_x)
    y0, y1 = int(rows.min()), int(rows.max()) + 1
    x0, x1 = int(columns.min()), int(columns.max()) + 1
    block = np.asarray(image[..., y0:y1, x0:x1])
    if y_start == y0 and x_start == x0 and block.shape[-2:] == tuple(shape):
        return block
    return block[..., (rows - y0)[:, None], (columns - x0)[None, :]]

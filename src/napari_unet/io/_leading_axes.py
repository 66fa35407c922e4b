"""Arrays with more than 4 axes read without their leading axes of length 1, lazily
(an OME-Zarr (1, 1, Z, Y, X) store as a (Z, Y, X) stack: :mod:`napari_unet.io.axes`)."""

from __future__ import annotations

from typing import Any

import numpy as np


def drop_leading_singletons(array: Any) -> Any:
    """``array`` without its leading axes of length 1 when it has more than 4 axes.

    The view is lazy: nothing is read until it is indexed, and each read reads
    only the window asked for (e.g. an OME-Zarr (1, 1, Z, Y, X) array becomes a
    (Z, Y, X) view). Arrays of at most 4 axes, and those whose leading axis is
    longer than 1, are returned as they are. Y and X are never dropped.

    Parameters
    ----------
    array : array-like
        Anything with ``shape``, ``dtype`` and basic slicing (zarr, dask, numpy).

    Returns
    -------
    array-like
        ``array``, or a view with ``shape``, ``ndim``, ``dtype`` and basic slicing.
    """
    shape = tuple(int(size) for size in array.shape)
    drop = 0
    if len(shape) > 4:
        while drop < len(shape) - 2 and shape[drop] == 1:
            drop += 1
    return _LeadingAxesDropped(array, drop) if drop else array


class _LeadingAxesDropped:
    """Lazy view of ``array[0, ..., 0, ...]``: its first ``drop`` axes, all of length 1, gone."""

    def __init__(self, array: Any, drop: int) -> None:
        self.array, self._drop = array, drop
        self.shape = tuple(int(size) for size in array.shape[drop:])
        self.ndim = len(self.shape)
        self.dtype = np.dtype(array.dtype)

    def __getitem__(self, key: Any) -> Any:
        key = key if isinstance(key, tuple) else (key,)
        return self.array[(0,) * self._drop + key]

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        block = np.asarray(self[...])
        return block if dtype is None else block.astype(dtype)

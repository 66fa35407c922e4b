"""napari reader for the zarr stores of out-of-core prediction.

A store written by :func:`napari_unet.io.outofcore.predict_to_zarr` (the CLI's
``--output-format zarr``) is a zarr group of ``prob``, ``mask`` and ``instances``
arrays. napari's own zarr reader takes such a group for an image pyramid and fails;
this reader opens it as the Predict widget shows its outputs: the mask and the
instances as Labels, the probabilities as a hidden Image (the foreground's with 2
classes, else one per class along a first axis), all lazy: only what is shown is read.
Planes larger than :data:`PYRAMID_ABOVE` pixels a side are shown as a pyramid of
strided views, so napari reads the part in view at screen resolution, never a whole
array.

A store is recognised by the ``"napari_unet"`` attributes of its group and its
``mask`` array; any other path gets None, so napari's other readers handle it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np

__all__ = ["get_reader", "is_prediction_store", "read_prediction_store"]

LayerData = tuple[Any, dict[str, Any], str]
PathOrPaths = str | list[str]

STORE_KEY = "napari_unet"
"""Attributes key that :func:`~napari_unet.io.outofcore.predict_to_zarr` writes."""

PYRAMID_ABOVE = 2048
"""Planes with a side longer than this (pixels) are shown as a lazy pyramid."""


def get_reader(path: PathOrPaths) -> Callable[[PathOrPaths], list[LayerData]] | None:
    """The npe2 ``get_reader`` command: :func:`read_prediction_store` for one store.

    Parameters
    ----------
    path : str or list of str
        What napari asks about; a list is read only when it holds one path.

    Returns
    -------
    callable or None
        None for anything but one napari-unet prediction store.
    """
    paths = [path] if isinstance(path, str | os.PathLike) else list(path)
    if len(paths) != 1 or not is_prediction_store(paths[0]):
        return None
    return read_prediction_store


def is_prediction_store(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a zarr group written by ``predict_to_zarr`` (no array read).

    Only the group's metadata is read: its ``"napari_unet"`` attributes must be a
    mapping and it must hold a ``mask`` array.
    """
    if not Path(path).is_dir():
        return False
    try:
        import zarr

        group = zarr.open_group(str(path), mode="r")
        return isinstance(group.attrs.get(STORE_KEY), dict) and "mask" in group
    except Exception:  # zarr raises many types for a folder that is no group
        return False


def read_prediction_store(path: PathOrPaths) -> list[LayerData]:
    """Layer data tuples of a prediction store: probabilities, instances, mask.

    Parameters
    ----------
    path : str or list of str
        The store (a list holding it).

    Returns
    -------
    list of (data, metadata, layer type)
        Dask arrays over the store's zarr arrays (nothing is read until shown), named
        ``"<image> <kind>"`` after the store (``cells_prediction.zarr`` gives
        ``"cells mask"``); the mask is shown in the class colours without the
        background, the other layers are hidden.
    """
    from ._widgets._layers import OUTPUT_KEY, class_colormap
    from .io.outofcore import open_outputs

    store = Path(path if isinstance(path, str | os.PathLike) else path[0])
    arrays = {kind: _levels(array) for kind, array in open_outputs(store).items()}
    name = store.name.removesuffix(".zarr").removesuffix("_prediction")
    # outputs, as Predict's: the dock's pickers never take them for an image or a truth
    metadata = {"metadata": {OUTPUT_KEY: True, "napari_unet_store": str(store)}}
    hidden_image = {"colormap": "magma", "contrast_limits": (0.0, 1.0), "blending": "additive"}
    layers: list[LayerData] = []
    n_classes = 2
    if "prob" in arrays:  # (C, Y, X) or (Z, C, Y, X)
        levels = arrays["prob"]
        axis = levels[0].ndim - 3
        n_classes = int(levels[0].shape[axis])
        if n_classes == 2:  # the foreground's, as the Predict widget shows
            levels = [da.take(level, 1, axis=axis) for level in levels]
        else:  # classes first, as the Predict widget shows them
            levels = [da.moveaxis(level, axis, 0) for level in levels]
        options = {"name": f"{name} probabilities", "visible": False, **hidden_image}
        layers.append((_data(levels), {**options, **metadata}, "image"))
    if "instances" in arrays:
        options = {"name": f"{name} instances", "opacity": 0.6, "visible": False}
        layers.append((_data(arrays["instances"]), {**options, **metadata}, "labels"))
    colormap = class_colormap(n_classes, show_background=False)
    options = {"name": f"{name} mask", "opacity": 0.5, "colormap": colormap}
    layers.append((_data(arrays["mask"]), {**options, **metadata}, "labels"))
    return layers


def _data(levels: list[Any]) -> Any:
    """A layer's data: its one array, or the list of levels of a multiscale one."""
    return levels[0] if len(levels) == 1 else levels


def _levels(array: Any) -> list[Any]:
    """Dask views of a zarr ``array``: itself, and for a plane above
    :data:`PYRAMID_ABOVE` a side, its views strided by 2, 4... in Y and X down to half
    that. Each strided chunk is read and strided at once, so napari's dask cache keeps
    only what is shown, at the resolution it is shown."""
    levels = [da.from_zarr(array)]
    if max(array.shape[-2:]) <= PYRAMID_ABOVE:
        return levels
    step = 2
    while max(levels[-1].shape[-2:]) > PYRAMID_ABOVE // 2:
        view = _Strided(array, step)
        chunks = (*array.chunks[:-2], *(max(1, size // step) for size in array.chunks[-2:]))
        empty = np.empty((0,) * view.ndim, view.dtype)
        levels.append(da.from_array(view, chunks=chunks, meta=empty))
        step *= 2
    return levels


class _Strided:
    """Lazy view of a zarr array at every ``step``-th pixel in Y and X (for dask)."""

    def __init__(self, array: Any, step: int) -> None:
        self.array, self.step = array, step
        self.shape = (*array.shape[:-2], *(-(-int(n) // step) for n in array.shape[-2:]))
        self.ndim, self.dtype = len(self.shape), np.dtype(array.dtype)

    def __getitem__(self, key: tuple[Any, ...]) -> np.ndarray:
        """``key``: a slice (step above 0) or an integer for each axis, as dask asks."""
        *leading, y, x = key
        wide = [self._wide(k, n) for k, n in zip((y, x), self.shape[-2:])]
        return np.asarray(self.array[(*leading, *wide)])

    def _wide(self, key: slice | int, size: int) -> slice | int:
        if not isinstance(key, slice):
            return int(key) % size * self.step
        start, stop, step = key.indices(size)
        return slice(start * self.step, max(stop, start) * self.step, step * self.step)

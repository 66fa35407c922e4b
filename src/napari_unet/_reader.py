"""napari reader of prediction outputs: an output folder, or one zarr store.

``napari-unet predict --output DIR`` writes, per input ``<name>``, three TIFFs
(``<name>_prob.tif``, ``<name>_mask.tif``, ``<name>_instances.tif``) or one zarr store
(``<name>_prediction.zarr``, a group of ``prob``, ``mask`` and ``instances`` arrays:
:func:`napari_unet.io.outofcore.predict_to_zarr`). napari's own readers open the TIFFs
as images and take such a store for an image pyramid and fail; this reader opens the
folder (File > Open Folder), or one store, as the Predict widget shows its outputs:
per prediction ``<name> probabilities`` (a hidden Image: the foreground's with 2
classes, else one per class along a first axis), ``<name> instances`` (hidden Labels)
and ``<name> mask`` (Labels in the class colours, background transparent), each with
what its file records of how it was made in ``layer.metadata["napari_unet_provenance"]``.
All are lazy: a TIFF is read a page (one plane) at a time as it is shown, a store's
chunks likewise, and planes larger than :data:`PYRAMID_ABOVE` pixels a side of a store
are shown as a pyramid of strided views, so napari reads the part in view at screen
resolution, never a whole array.

A store is recognised by the ``"napari_unet"`` attributes of its group and its
``mask`` array; a folder by the predictions in it
(:func:`napari_unet.io.outputs.find_predictions`: outputs recording how they were
made). A folder of images only (:data:`~napari_unet.io.inputs.IMAGE_SUFFIXES`) is
handed to napari's own reader (:func:`read_image_folder`): npe2 offers every reader
that accepts folders for any folder, and napari's "Choose reader" dialog (a folder
dropped on the window) may preselect this one. Any other path gets None, so napari's
other readers handle it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dask
import dask.array as da
import numpy as np

__all__ = [
    "get_reader",
    "is_image_folder",
    "is_prediction_folder",
    "is_prediction_store",
    "read_image_folder",
    "read_prediction_folder",
    "read_prediction_store",
]

LayerData = tuple[Any, dict[str, Any], str]
PathOrPaths = str | list[str]

STORE_KEY = "napari_unet"
"""Attributes key that :func:`~napari_unet.io.outofcore.predict_to_zarr` writes."""

PROVENANCE_METADATA = "napari_unet_provenance"
"""Layer metadata key of what an output records of how it was made."""

PYRAMID_ABOVE = 2048
"""Planes with a side longer than this (pixels) are shown as a lazy pyramid."""


def get_reader(path: PathOrPaths) -> Callable[[PathOrPaths], list[LayerData]] | None:
    """The npe2 ``get_reader`` command: a reader for one store or one output folder.

    Parameters
    ----------
    path : str or list of str
        What napari asks about; a list is read only when it holds one path.

    Returns
    -------
    callable or None
        :func:`read_prediction_store` for a prediction store,
        :func:`read_prediction_folder` for a folder holding predictions,
        :func:`read_image_folder` for a folder of images only, None for anything else.
    """
    paths = [path] if isinstance(path, str | os.PathLike) else list(path)
    if len(paths) != 1:
        return None
    if is_prediction_store(paths[0]):
        return read_prediction_store
    if is_prediction_folder(paths[0]):
        return read_prediction_folder
    if is_image_folder(paths[0]):
        return read_image_folder
    return None


def is_image_folder(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a folder whose visible entries are all image files
    (:data:`~napari_unet.io.inputs.IMAGE_SUFFIXES`), at least one."""
    from .io.inputs import IMAGE_SUFFIXES

    if not Path(path).is_dir():
        return False
    entries = [entry for entry in Path(path).iterdir() if not entry.name.startswith(".")]
    return bool(entries) and all(
        entry.is_file() and entry.suffix.lower() in IMAGE_SUFFIXES for entry in entries
    )


def read_image_folder(path: PathOrPaths) -> list[tuple[Any, ...]]:
    """Layer data tuples of a folder of images, read by napari's own reader (a stack
    when the images share a shape), as if it had been chosen in napari's dialog."""
    import npe2

    paths = [path] if isinstance(path, str | os.PathLike) else list(path)
    return [
        tuple(layer)
        for layer in npe2.read([os.fspath(paths[0])], stack=False, plugin_name="napari")
    ]


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


def is_prediction_folder(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a folder holding a prediction of ``napari-unet predict``.

    Reads the names in the folder and the header of the first output that may be one;
    a folder of images, or of files merely named like outputs, holds none.
    """
    from .io.outputs import find_predictions

    return Path(path).is_dir() and next(find_predictions(path), None) is not None


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
    from .io._zarr_store import open_outputs
    from .io.reruns import stored_provenance

    store = Path(path if isinstance(path, str | os.PathLike) else path[0])
    arrays = {kind: _levels(array) for kind, array in open_outputs(store).items()}
    name = store.name.removesuffix(".zarr").removesuffix("_prediction")
    metadata = {"napari_unet_store": str(store), PROVENANCE_METADATA: stored_provenance(store)}
    return _prediction_layers(name, arrays, metadata)


def read_prediction_folder(path: PathOrPaths) -> list[LayerData]:
    """Layer data tuples of every prediction in an output folder, by name.

    Parameters
    ----------
    path : str or list of str
        The folder (a list holding it).

    Returns
    -------
    list of (data, metadata, layer type)
        For each prediction (:func:`~napari_unet.io.outputs.find_predictions`), as
        :func:`read_prediction_store` gives them: ``"<name> probabilities"``,
        ``"<name> instances"`` and ``"<name> mask"``, lazy dask arrays; a TIFF's
        metadata names its file (``"napari_unet_file"``) and what it records. Only the
        first prediction's mask is visible (the masks of several images would overlap).
    """
    from .io.outputs import find_predictions

    folder = Path(path if isinstance(path, str | os.PathLike) else path[0])
    layers: list[LayerData] = []
    for prediction in find_predictions(folder):
        if "store" in prediction.paths:
            found = read_prediction_store(str(prediction.paths["store"]))
        else:
            arrays = {kind: [_tiff_array(file)] for kind, file in prediction.paths.items()}
            metadata = {PROVENANCE_METADATA: prediction.provenance}
            files = {kind: str(file) for kind, file in prediction.paths.items()}
            found = _prediction_layers(prediction.stem, arrays, metadata, files)
        if layers:  # one image's mask at a time: overlaid, the others would cover it
            for _, options, _ in found:
                options["visible"] = False
        layers += found
    return layers


def _prediction_layers(
    name: str,
    arrays: dict[str, list[Any]],
    recorded: dict[str, Any],
    files: dict[str, str] | None = None,
) -> list[LayerData]:
    """The layers of one prediction from the levels of its ``"prob"``, ``"mask"`` and
    ``"instances"`` arrays (those there; the mask always), as the Predict widget shows
    them; ``recorded`` joins each layer's metadata, and the file of each (``files``, by
    kind) its ``"napari_unet_file"``."""
    from ._widgets._layers import OUTPUT_KEY, mask_colormap

    def metadata_of(kind: str) -> dict[str, Any]:
        # outputs, as Predict's: the dock's pickers never take them for an image or a truth
        source = {"napari_unet_file": files[kind]} if files and kind in files else {}
        return {"metadata": {OUTPUT_KEY: True, **recorded, **source}}

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
        layers.append((_data(levels), {**options, **metadata_of("prob")}, "image"))
    if "instances" in arrays:
        options = {"name": f"{name} instances", "opacity": 0.6, "visible": False}
        layers.append(
            (_data(arrays["instances"]), {**options, **metadata_of("instances")}, "labels")
        )
    colormap = mask_colormap(n_classes)
    options = {"name": f"{name} mask", "opacity": 0.5, "colormap": colormap}
    layers.append((_data(arrays["mask"]), {**options, **metadata_of("mask")}, "labels"))
    return layers


def _tiff_array(path: Path) -> Any:
    """A dask array over a TIFF output: one chunk per page (plane), each read when shown.

    No file is held open between reads, and the chunks' names hold the file's
    modification time, so a file predicted again is never shown from napari's cache.
    A file whose pages are not its planes is read whole, once, when first shown.
    """
    import tifffile

    with tifffile.TiffFile(path) as tiff:
        series = tiff.series[0]
        shape, dtype, n_pages = tuple(int(n) for n in series.shape), series.dtype, len(tiff.pages)
    version = path.stat().st_mtime_ns
    read = dask.delayed(_read_pages, pure=True)
    if len(shape) < 2 or n_pages != int(np.prod(shape[:-2], dtype=int)):
        return da.from_delayed(read(str(path), None, version), shape, dtype)
    pages = [
        da.from_delayed(read(str(path), page, version), shape[-2:], dtype)
        for page in range(n_pages)
    ]
    return pages[0] if len(shape) == 2 else da.stack(pages).reshape(shape)


def _read_pages(path: str, page: int | None, version: int) -> np.ndarray:
    """Page ``page`` of a TIFF (None: its first series whole); ``version`` names the
    file's state in the dask graph, read nothing."""
    import tifffile

    return np.asarray(tifffile.imread(path, key=page))


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

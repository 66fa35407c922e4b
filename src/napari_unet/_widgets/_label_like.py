"""Whether an image layer holds a label image: a ground truth opened with File → Open.

napari reads a label TIFF or PNG (a mask, instance labels) as an *Image* layer. The
dock's image pickers should not switch to it by themselves, as they do to a new image
(:class:`._layers.LayerCombo`), or Predict and Fine-tune would run on the ground truth.

The rule (:func:`looks_like_labels`), measured on the project's data
(``../shared/data``) and scikit-image's images:

- an integer (or boolean) array, not multiscale nor RGB; of lazy data (dask, zarr,
  memory-mapped: a folder of label PNGs opened as a stack) only the first plane is read,
  once per layer and array;
- and either at most two distinct values (a mask: the ISBI 2012 labels are 0/255),
- or 0 present as the background, and objects that are flat regions: of the
  horizontally adjacent pairs of non-zero pixels at least :data:`FLAT_SHARE` hold the
  same value (DSB 2018 instance labels 99.8 %, the synthetic nuclei's 99.2 %; images at
  most 59 %: EM 1.6-3.0 %, DSB nuclei 5.5 %, camera 24 %, cell 49 %, moon 59 %), and
  at least :data:`BLOB_SHARE` of non-zero pixels have a non-zero right neighbour (objects,
  not the isolated counts of a photon-limited image: the DSB labels 95 %).

Object ids are not required to be consecutive: the DSB mask's 64 nuclei are numbered up
to 178. A large array is judged on evenly spaced rows, :data:`SAMPLE_PIXELS` pixels at
most (about a millisecond).
"""

from __future__ import annotations

import weakref
from typing import Any

import napari
import numpy as np

__all__ = [
    "BLOB_SHARE",
    "FLAT_SHARE",
    "LABEL_IMAGE_MARK",
    "SAMPLE_PIXELS",
    "first_hint",
    "label_image_hint",
    "label_like_array",
    "looks_like_labels",
]

FLAT_SHARE = 0.9
"""Least share of horizontally adjacent non-zero pixel pairs of equal value in labels."""

BLOB_SHARE = 0.5
"""Least share of non-zero pixels whose right neighbour is non-zero too, in labels."""

SAMPLE_PIXELS = 2**20
"""Most pixels read to judge an array: a larger one is judged on evenly spaced rows."""


def looks_like_labels(layer: napari.layers.Layer) -> bool:
    """Whether ``layer`` is an image layer holding a label image (see the module's rule).

    False for any other layer, for multiscale data and for RGB images. Lazy data (dask,
    zarr, memory-mapped) is judged on its first plane, read once per layer and array.
    """
    if not isinstance(layer, napari.layers.Image) or layer.multiscale or layer.rgb:
        return False
    data = layer.data
    if isinstance(data, np.ndarray) and not isinstance(data, np.memmap):
        return label_like_array(data)
    if not (data.dtype == bool or np.issubdtype(data.dtype, np.integer)):
        return False  # known without reading anything
    judged = _JUDGED_LAZY.get(layer)
    if judged is None or judged[0] is not data:
        judged = (data, label_like_array(_first_plane(data)))
        _JUDGED_LAZY[layer] = judged
    return judged[1]


_JUDGED_LAZY: weakref.WeakKeyDictionary[napari.layers.Layer, tuple[object, bool]] = (
    weakref.WeakKeyDictionary()
)
"""The lazy array of each layer judged so far, and the verdict on it."""


def _first_plane(data: Any) -> np.ndarray:
    """The first plane of a lazy array (one file or chunk to read), every k-th row of it
    when larger than :data:`SAMPLE_PIXELS` pixels."""
    plane = data[(0,) * (data.ndim - 2)] if data.ndim > 2 else data
    step = max(1, -(-int(np.prod(plane.shape)) // SAMPLE_PIXELS))
    return np.asarray(plane[::step])


LABEL_IMAGE_MARK = " (labels?)"
"""What a label image is listed with in the dock's layer combo boxes."""

_HINTED: weakref.WeakSet[napari.layers.Layer] = weakref.WeakSet()
"""The label images whose :func:`label_image_hint` was shown in a notification."""


def first_hint(layer: napari.layers.Layer) -> bool:
    """Whether the notification of :func:`label_image_hint` on ``layer`` is still to be
    shown (once per layer, whichever combo box offers it); notes it as shown."""
    if layer in _HINTED:
        return False
    _HINTED.add(layer)
    return True


def label_image_hint(name: str) -> str:
    """What to do with the image layer ``name`` holding labels, once offered as an image
    to predict on, annotate or fine-tune on."""
    return (
        f"“{name}” looks like a mask or label image, not an image to segment: to use it as "
        "a ground truth or as annotations, right-click it in the layer list and choose "
        "Convert to Labels; to segment, choose the image it labels."
    )


def label_like_array(data: np.ndarray) -> bool:
    """Whether the in-memory array ``data`` holds labels rather than intensities.

    Parameters
    ----------
    data : numpy.ndarray
        Any shape; pixels are compared along its last axis.

    Returns
    -------
    bool
        True for an integer or boolean array with at most two distinct values, or with 0
        and flat non-zero objects (:data:`FLAT_SHARE`, :data:`BLOB_SHARE`).
    """
    if data.size == 0 or not (data.dtype == bool or np.issubdtype(data.dtype, np.integer)):
        return False
    rows = _sampled_rows(data)
    low, high = rows.min(), rows.max()
    if np.count_nonzero((rows == low) | (rows == high)) == rows.size:
        return True  # a mask (or a blank image)
    if low > 0 or rows.shape[1] < 2:
        return False  # no background
    left, right = rows[:, :-1], rows[:, 1:]
    object_left = left != 0
    object_pairs = object_left & (right != 0)
    n_object, n_pairs = np.count_nonzero(object_left), np.count_nonzero(object_pairs)
    if n_pairs == 0 or n_pairs < BLOB_SHARE * n_object:
        return False
    return bool(np.count_nonzero(object_pairs & (left == right)) >= FLAT_SHARE * n_pairs)


def _sampled_rows(data: np.ndarray) -> np.ndarray:
    """``data`` as (rows, last axis), every k-th row: at most :data:`SAMPLE_PIXELS` pixels.

    Indexes the sampled rows themselves, so a non-contiguous array is never copied whole.
    """
    if data.ndim < 2:
        return data.reshape(1, -1)
    leading = data.shape[:-1]
    n_rows = int(np.prod(leading))
    step = -(-data.size // SAMPLE_PIXELS)  # ceiling division
    if step <= 1:
        return data.reshape(n_rows, data.shape[-1])
    return data[np.unravel_index(np.arange(0, n_rows, step), leading)]

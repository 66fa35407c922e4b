"""The instances of each foreground class of a class mask: connected components or a
distance-transform watershed (:func:`napari_unet.core.postprocess.instance_labels`)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage.feature import peak_local_max
from skimage.segmentation import watershed

__all__ = ["components", "distance_watershed", "labelled_by_class"]


def labelled_by_class(
    mask: np.ndarray, classes: list[int], method: str, min_distance: int, connectivity: int
) -> np.ndarray:
    """Instances of each class of ``classes`` in ``mask``, numbered class after class.

    Parameters
    ----------
    mask : numpy.ndarray of int, shape (Y, X)
        Class mask.
    classes : list of int
        The label values to label, in order.
    method : {"components", "watershed"}
        :func:`components` or :func:`distance_watershed` of each class's pixels.
    min_distance, connectivity : int
        As for :func:`~napari_unet.core.postprocess.instance_labels`.

    Returns
    -------
    numpy.ndarray of uint32, shape (Y, X)
        0 = no instance; each class's instances follow the previous class's.
    """
    labels = np.zeros(mask.shape, dtype=np.uint32)
    n_labels = 0
    for label_value in classes:
        region = mask == label_value
        if method == "components":
            class_labels = components(region, connectivity)
        else:
            class_labels = distance_watershed(region, min_distance, connectivity)
        inside = class_labels > 0
        labels[inside] = class_labels[inside] + n_labels
        n_labels = int(labels.max())
    return labels


def _structure(connectivity: int) -> np.ndarray:
    """3x3 structuring element for the given connectivity (1 or 2)."""
    return ndimage.generate_binary_structure(2, connectivity)


def components(region: np.ndarray, connectivity: int) -> np.ndarray:
    """Connected components of a boolean (Y, X) region, labelled from 1."""
    labelled, _ = ndimage.label(region, structure=_structure(connectivity))
    return labelled


def distance_watershed(region: np.ndarray, min_distance: int, connectivity: int) -> np.ndarray:
    """Split a boolean (Y, X) region into objects by a distance-transform watershed."""
    region_components = components(region, connectivity)
    n_components = int(region_components.max())
    if n_components == 0:
        return region_components
    distance = ndimage.distance_transform_edt(region)
    peaks = peak_local_max(
        distance,
        min_distance=max(int(min_distance), 1),
        labels=region_components,
        exclude_border=False,
    )
    peak_mask = np.zeros(region.shape, dtype=bool)
    peak_mask[tuple(peaks.T)] = True
    # every component gets at least one marker: its deepest pixel
    indices = np.arange(1, n_components + 1)
    deepest = ndimage.maximum_position(distance, region_components, indices)
    has_peak = ndimage.maximum(peak_mask, region_components, indices)
    for position, found in zip(deepest, np.atleast_1d(has_peak)):
        if not found:
            peak_mask[position] = True
    markers, _ = ndimage.label(peak_mask, structure=_structure(2))  # a plateau: one marker
    # a marker across two components (touching at a corner only) is one per component;
    # only the peak pixels are renumbered (not a sort of the whole plane)
    pairs = markers[peak_mask].astype(np.int64) * (n_components + 1) + region_components[peak_mask]
    markers = np.zeros(region.shape, np.int64)
    markers[peak_mask] = np.unique(pairs, return_inverse=True)[1].ravel() + 1
    return watershed(-distance, markers, mask=region, connectivity=connectivity)

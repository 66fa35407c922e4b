"""The paper's pixel-wise loss weights and helpers that build annotations.

Ronneberger et al. (2015), eq. 2::

    w(x) = w_c(x) + w0 * exp(-(d1(x) + d2(x))**2 / (2 * sigma**2))

``w_c`` balances the class frequencies and the second (border) term makes the
network learn the thin background gaps that separate touching objects; ``d1``
and ``d2`` are the distances to the nearest and second-nearest object.

Label convention (all functions): a label array (Y, X) of integers where
0 = unlabelled (ignored, weight 0), 1 = background and 2..K = foreground classes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy import ndimage

from ..config import WeightConfig
from ..core._label_checks import warn_if_instance_image
from ..core.metadata import ModelMetadata

_NEGLIGIBLE = 1e-6
"""Border-term values below this are treated as 0 by :func:`border_term`."""

_EIGHT_NEIGHBOURS = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx]


def trained_weight_config(metadata: Mapping[str, Any]) -> WeightConfig:
    """The weight-map settings a model was last trained with.

    Parameters
    ----------
    metadata : mapping
        A model's ``metadata`` (saved in its checkpoint); each run of
        :func:`~napari_unet.training.loop.finetune` records its ``weight_config`` in
        ``training_history``.

    Returns
    -------
    WeightConfig
        That of the latest run whose recorded settings are valid (e.g. not
        sigma = 0, which older versions accepted); the paper's defaults if the
        model has no such run. Same as ``model.info.trained_weight_config``
        (:attr:`~napari_unet.core.metadata.ModelMetadata.trained_weight_config`).
    """
    return ModelMetadata.from_dict(metadata).trained_weight_config


def resolved_weight_config(config: WeightConfig | None, trained: bool) -> WeightConfig:
    """``config`` (default ``WeightConfig()``) with an automatic class balance decided.

    ``class_balance=None`` becomes on for a model's first training (``trained`` False)
    and off for fine-tuning a model that was trained before; True or False stay.
    """
    config = WeightConfig() if config is None else config
    if config.class_balance is None:
        return config.replace(class_balance=not trained)
    return config


def weight_map(
    labels: np.ndarray,
    config: WeightConfig | None = None,
    *,
    instances: np.ndarray | None = None,
    n_classes: int | None = None,
) -> np.ndarray:
    """Pixel-wise loss weights of eq. 2 of the paper.

    Parameters
    ----------
    labels : ndarray of int, shape (Y, X)
        0 = unlabelled, 1 = background, 2..K = foreground classes.
    config : WeightConfig, optional
        ``w0``, ``sigma`` and ``class_balance`` (``None``: on); ``None`` means
        ``WeightConfig()`` (w0 = 10, sigma = 5, class balance on, the paper's values).
    instances : ndarray of int, shape (Y, X), optional
        Object ids (0 = no object) used for ``d1`` and ``d2``. By default the
        4-connected components of each foreground class (``labels == k``, k >= 2),
        which merges touching objects of the same class; pass explicit instances to
        keep them apart.
    n_classes : int, optional
        The model's number of classes, when the labels are for one: a label above it
        raises ``ValueError``. Without it, labels with more than 16 foreground classes
        and some 0 are warned about as a likely instance image (0 = background, 1..N
        objects: :func:`annotation_from_instances` makes labels from one).

    Returns
    -------
    ndarray of float32, shape (Y, X)
        The weights: exactly 0 on unlabelled pixels.

    Notes
    -----
    * ``w_c`` is computed over the labelled pixels only: ``w_c(k)`` is
      proportional to ``1 / count_k`` and normalised so that its mean over the
      labelled pixels is 1, i.e. ``w_c(k) = n_labelled / (n_classes_present *
      count_k)``. With ``class_balance=False`` it is 1 on every labelled pixel.
    * The border term is added on labelled background pixels (label 1) only.
      The paper motivates it by the separation of touching cells; the pixels
      that separate objects are background pixels, which is where it matters,
      and adding it inside objects would only blur the class balance.
    * With fewer than two instances the border term is 0.
    * The border term is computed by :func:`border_term` (accurate to 1e-6).
    """
    config = WeightConfig() if config is None else config
    labels = np.asarray(labels)
    _check_2d(labels, "labels")
    if n_classes is None:
        warn_if_instance_image(labels, stacklevel=2)
    elif labels.size and int(labels.max()) > n_classes:
        raise ValueError(f"labels go up to {int(labels.max())}; the model has {n_classes} classes")
    instances = _objects_of(labels, instances)
    weights = class_weights(labels, config.class_balance is not False)  # None: the paper's
    weights += border_term(instances, config.w0, config.sigma, mask=labels == 1)
    return weights


def _objects_of(labels: np.ndarray, instances: np.ndarray | None) -> np.ndarray:
    """The object ids (Y, X) :func:`weight_map` measures ``d1`` and ``d2`` to:
    ``instances``, checked to have ``labels``' shape, or by default the 4-connected
    components of each foreground class (``labels == k``, k >= 2): touching objects of one
    class are one object, of two classes two, as :func:`~napari_unet.core.postprocess.
    instance_labels` draws them."""
    if instances is None:
        components, found = np.zeros(labels.shape, np.int64), 0
        for value in np.unique(labels[labels >= 2]):
            part, count = ndimage.label(labels == value)
            components[part > 0] = part[part > 0] + found
            found += count
        return components
    instances = np.asarray(instances)
    if instances.shape != labels.shape:
        raise ValueError(f"instances {instances.shape} and labels {labels.shape} differ in shape")
    return instances


def class_weights(labels: np.ndarray, class_balance: bool = True) -> np.ndarray:
    """The class-balancing term ``w_c`` of the weight map.

    Parameters
    ----------
    labels : ndarray of int, shape (Y, X)
        0 = unlabelled, 1 = background, 2..K = foreground classes.
    class_balance : bool
        ``True``: ``w_c(k) = n_labelled / (n_classes_present * count_k)`` (mean 1
        over the labelled pixels, rarer classes weigh more). ``False``: 1.

    Returns
    -------
    ndarray of float32, shape (Y, X)
        ``w_c``, 0 on unlabelled pixels.
    """
    labels = np.asarray(labels)
    if labels.dtype.kind not in "iub":
        raise TypeError(f"labels must be integers, got {labels.dtype}")
    if labels.size and labels.min() < 0:
        raise ValueError("labels must be >= 0 (0 = unlabelled, 1 = background, 2.. = classes)")
    labelled = labels > 0
    if not class_balance:
        return labelled.astype(np.float32)
    counts = np.bincount(labels.ravel()).astype(np.float64)
    counts[0] = 0.0
    n_labelled = counts.sum()
    present = counts > 0
    per_class = np.zeros_like(counts)
    if n_labelled > 0:
        per_class[present] = n_labelled / (present.sum() * counts[present])
    return per_class[labels].astype(np.float32)


def border_term(
    instances: np.ndarray,
    w0: float,
    sigma: float,
    mask: np.ndarray | None = None,
) -> np.ndarray:
    """Border term ``w0 * exp(-(d1 + d2)**2 / (2 sigma**2))``, fast version.

    Each object's Euclidean distance transform is computed only inside its
    bounding box grown by ``R = sigma * sqrt(2 ln(w0 / 1e-6))``; running arrays
    keep the smallest (``d1``) and second smallest (``d2``) distance.

    Parameters
    ----------
    instances : ndarray of int, shape (Y, X)
        Object ids, 0 = no object. Ids need not be consecutive.
    w0 : float
        Amplitude of the term.
    sigma : float
        Width of the term in pixels (> 0).
    mask : ndarray of bool, shape (Y, X), optional
        Where to compute the term; 0 elsewhere. Default: everywhere.

    Returns
    -------
    ndarray of float32, shape (Y, X)
        The term; 0 where fewer than two objects are within reach.

    Notes
    -----
    Differs from :func:`border_term_reference` by at most 1e-6: every object
    closer than ``R`` to a pixel has the pixel in its grown box, so ``d1`` and
    ``d2`` are exact whenever ``d2 <= R``; otherwise both versions are below
    ``w0 * exp(-R**2 / (2 sigma**2)) = 1e-6``. ``d`` is the distance from a pixel
    centre to the nearest pixel centre of the object (1 next to an object).
    """
    instances, mask = _check_instances(instances, mask)
    shape = instances.shape
    if w0 <= 0:
        return np.zeros(shape, np.float32)
    radius = math.ceil(sigma * math.sqrt(2.0 * max(math.log(w0 / _NEGLIGIBLE), 0.0)))
    nearest = np.full(shape, np.inf, np.float32)
    second = np.full(shape, np.inf, np.float32)
    for index, box in enumerate(ndimage.find_objects(instances)):
        if box is None:
            continue
        grown = _grown_box(box, radius, shape)
        distance = ndimage.distance_transform_edt(instances[grown] != index + 1)
        _keep_two_smallest(nearest[grown], second[grown], distance)
    return _gaussian_of_sum(nearest, second, w0, sigma, mask)


def _grown_box(box: tuple[slice, ...], radius: int, shape: tuple[int, ...]) -> tuple[slice, ...]:
    """``box`` grown by ``radius`` on every side, clipped to an array of ``shape``."""
    return tuple(
        slice(max(s.start - radius, 0), min(s.stop + radius, size)) for s, size in zip(box, shape)
    )


def border_term_reference(
    instances: np.ndarray,
    w0: float,
    sigma: float,
    mask: np.ndarray | None = None,
) -> np.ndarray:
    """Border term by one distance transform per object over the whole image.

    Straightforward (slow) version of :func:`border_term`, for tests and benchmarks.
    Same parameters and return value.
    """
    instances, mask = _check_instances(instances, mask)
    nearest = np.full(instances.shape, np.inf, np.float32)
    second = np.full(instances.shape, np.inf, np.float32)
    for object_id in np.unique(instances):
        if object_id == 0:
            continue
        distance = ndimage.distance_transform_edt(instances != object_id)
        _keep_two_smallest(nearest, second, distance)
    return _gaussian_of_sum(nearest, second, w0, sigma, mask)


def separate_touching(instances: np.ndarray) -> np.ndarray:
    """Open a background gap between touching objects.

    Parameters
    ----------
    instances : ndarray of int, shape (Y, X)
        Object ids, 0 = background.

    Returns
    -------
    ndarray, shape (Y, X), same dtype
        A copy where every object pixel that has a *smaller* nonzero id among
        its 8 neighbours is set to 0: of two touching objects only the one with
        the larger id gives up its contact pixels, so objects that share an edge
        end up separated by a 1-pixel background gap (the paper's separation
        borders) and no two different objects stay 8-adjacent. No new ids are
        created; a thin object may lose pixels or be split.
    """
    instances = np.asarray(instances)
    _check_2d(instances, "instances")
    if instances.size == 0 or instances.dtype == bool:
        return instances.copy()  # a boolean mask is one object: nothing touches
    height, width = instances.shape
    padded = np.pad(instances, 1)  # zeros outside: the image edge touches nothing
    touching = np.zeros(instances.shape, bool)
    for dy, dx in _EIGHT_NEIGHBOURS:
        neighbour = padded[1 + dy : 1 + dy + height, 1 + dx : 1 + dx + width]
        touching |= (neighbour != 0) & (neighbour < instances)
    separated = instances.copy()
    separated[touching] = 0
    return separated


def annotation_from_instances(instances: np.ndarray, n_foreground_classes: int = 1) -> np.ndarray:
    """Dense annotation (1 = background, 2 = object) from an instance mask.

    Parameters
    ----------
    instances : ndarray of int, shape (Y, X)
        Object ids, 0 = background; every pixel counts as annotated.
    n_foreground_classes : int
        Must be 1: an instance mask carries no class information.

    Returns
    -------
    ndarray of uint8, shape (Y, X)
        1 on background and on the gaps opened by :func:`separate_touching`,
        2 on the remaining object pixels.
    """
    if n_foreground_classes != 1:
        raise ValueError(
            "an instance mask has no class information: n_foreground_classes must be 1, "
            f"not {n_foreground_classes}"
        )
    separated = separate_touching(instances)
    return np.where(separated != 0, 2, 1).astype(np.uint8)


def annotation_from_binary(
    mask: np.ndarray, foreground_value: int | float | None = None
) -> np.ndarray:
    """Dense annotation from a binary mask (e.g. ISBI 2012: 255 = cell, 0 = membrane).

    Parameters
    ----------
    mask : ndarray, shape (Y, X)
        The binary mask.
    foreground_value : int or float, optional
        Value of the foreground pixels. ``None``: every value > 0.

    Returns
    -------
    ndarray of uint8, shape (Y, X)
        2 on the foreground, 1 elsewhere.
    """
    mask = np.asarray(mask)
    foreground = mask > 0 if foreground_value is None else mask == foreground_value
    return np.where(foreground, 2, 1).astype(np.uint8)


def _keep_two_smallest(nearest: np.ndarray, second: np.ndarray, distance: np.ndarray) -> None:
    """Update the running smallest and second-smallest distances in place."""
    np.minimum(second, np.maximum(nearest, distance), out=second)
    np.minimum(nearest, distance, out=nearest)


def _gaussian_of_sum(
    nearest: np.ndarray, second: np.ndarray, w0: float, sigma: float, mask: np.ndarray | None
) -> np.ndarray:
    """``w0 exp(-(d1 + d2)**2 / (2 sigma**2))`` where ``d2`` is finite (and in mask), else 0."""
    valid = np.isfinite(second)
    if mask is not None:
        valid &= mask
    term = np.zeros(nearest.shape, np.float32)
    total = nearest[valid].astype(np.float64) + second[valid]
    term[valid] = w0 * np.exp(-(total**2) / (2.0 * sigma**2))
    return term


def _check_2d(array: np.ndarray, name: str) -> None:
    if array.ndim != 2:
        raise ValueError(f"{name} must be 2D (Y, X), got shape {array.shape}")


def _check_instances(
    instances: np.ndarray, mask: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Validate and convert the inputs of the border-term functions."""
    instances = np.asarray(instances)
    _check_2d(instances, "instances")
    if instances.dtype.kind not in "iub":
        raise TypeError(f"instances must be integers, got {instances.dtype}")
    if instances.size and instances.min() < 0:
        raise ValueError("instances must be >= 0 (0 = no object)")
    instances = instances.astype(np.intp, copy=False)
    if instances.size and instances.max() > instances.size:
        # sparse huge ids: make them consecutive so find_objects stays small
        ids, consecutive = np.unique(instances, return_inverse=True)
        instances = consecutive.reshape(instances.shape) + (1 if ids[0] != 0 else 0)
    if mask is not None:
        mask = np.asarray(mask, bool)
        if mask.shape != instances.shape:
            raise ValueError(f"mask {mask.shape} and instances {instances.shape} differ in shape")
    return instances, mask

"""Turn class probabilities into class masks and instance label images.

Label convention (everywhere in napari-unet): mask arrays (Y, X) hold
0 = unlabelled, 1 = background, 2..K = foreground classes; the model outputs
probabilities (C, Y, X) where class index ``c`` is label value ``c + 1``.

Only numpy, scipy and scikit-image are used (no napari, no Qt).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Literal, NamedTuple

import numpy as np
from scipy import ndimage
from skimage.morphology import remove_small_objects
from skimage.segmentation import relabel_sequential

from ._class_instances import labelled_by_class
from ._label_checks import warn_if_instance_image
from .boundaries import fill_enclosed, grow_objects
from .cancellation import check_stopped
from .continuity import closing_lines

if TYPE_CHECKING:
    from ..config import PredictConfig
    from .model import UNet

__all__ = [
    "MIN_INSTANCE_SIZE",
    "InstanceMethod",
    "class_mask",
    "instance_labels",
    "prediction_mask",
    "remove_small_instances",
]

#: How :func:`instance_labels` separates objects.
InstanceMethod = Literal["components", "watershed"]

#: Objects smaller than this many pixels are not instances by default: specks of a few
#: pixels at a nucleus's edge are what fine-tuning most often adds, and each one counts
#: as a false object (issue 14: on the DSB 2018 right half the bundled model's F1 at IoU
#: 0.5 is 0.879 with every speck, 0.906 from 10 to 30 px). Cellpose's default is also 15.
MIN_INSTANCE_SIZE = 15


def class_mask(probabilities: np.ndarray) -> np.ndarray:
    """Most probable class of each pixel, in the annotation label convention.

    Parameters
    ----------
    probabilities : numpy.ndarray, shape (C, Y, X)
        Class probabilities (or scores/logits: only their order matters). Class
        index ``c`` corresponds to label value ``c + 1``. A CPU ``torch.Tensor``
        is accepted too (converted with :func:`numpy.asarray`).

    Returns
    -------
    numpy.ndarray of uint8, shape (Y, X)
        ``argmax over C + 1``: 1 = background, 2..C = foreground classes. Ties go
        to the lowest class index. Never contains 0 (unlabelled).

    Raises
    ------
    ValueError
        If the array is not 3-D or has more than 255 classes.
    """
    probabilities = np.asarray(probabilities)
    if probabilities.ndim != 3:
        raise ValueError(
            f"expected class probabilities with axes (C, Y, X), got shape {probabilities.shape}"
        )
    n_classes = probabilities.shape[0]
    if not 1 <= n_classes <= 255:
        raise ValueError(f"expected 1 to 255 classes along axis 0, got {n_classes}")
    return (np.argmax(probabilities, axis=0) + 1).astype(np.uint8)


def prediction_mask(
    probabilities: np.ndarray,
    *,
    close_boundaries: bool = True,
    background_threshold: float = 0.5,
    fill_holes: bool = True,
    previous: np.ndarray | None = None,
    annotation: np.ndarray | None = None,
) -> np.ndarray:
    """The class mask Predict shows: :func:`class_mask`, gaps in boundaries closed.

    With ``close_boundaries``, the one-pixel lines of
    :func:`~napari_unet.core.boundaries.separating_lines` on the probability of class 1
    (background, or membrane) are set to class 1, so that objects joined through a
    faint spot of their boundary become separate instances. Elsewhere the lines lie on
    background already, so only the gaps change.

    Parameters
    ----------
    probabilities : numpy.ndarray, shape (C, Y, X)
        Class probabilities, as from :func:`napari_unet.predict`.
    close_boundaries : bool
        Close the gaps (:attr:`~napari_unet.config.PredictConfig.close_boundaries`).
    background_threshold : float
        In [0.5, 1): then objects grow into the background pixels whose probability
        is at most this, never joining (:func:`~napari_unet.core.boundaries.grow_objects`);
        a model's own value is ``model.info.background_threshold``. 0.5: no growth.
    fill_holes : bool
        Then what an object encloses joins it (background and objects of its class,
        :func:`~napari_unet.core.boundaries.fill_enclosed`;
        :attr:`~napari_unet.config.PredictConfig.fill_holes`).
    previous : numpy.ndarray, shape (Y, X), optional
        The class mask shown before for this image by this model or the one it was
        fine-tuned from (:func:`~napari_unet.core.continuity.continues`): with
        ``close_boundaries``, the separations it made are kept where the new
        boundary still stands out by half the usual contrast
        (:func:`~napari_unet.core.continuity.kept_separations`).
    annotation : numpy.ndarray, shape (Y, X), optional
        The strokes (0 = unpainted): a kept separation with an object stroke on it is
        dropped. Used only with ``previous``.

    Returns
    -------
    numpy.ndarray of uint8, shape (Y, X)
        1 = background, 2..C = classes.
    """
    mask = class_mask(probabilities)
    if close_boundaries and mask.size:
        check_stopped()  # a caller's stop flag, between the long steps (core.cancellation)
        mask[closing_lines(probabilities[0], previous, annotation)] = 1
    if background_threshold != 0.5 and mask.size:
        check_stopped()
        mask = grow_objects(mask, probabilities[0], background_threshold)
    if fill_holes and mask.size:
        check_stopped()
        return fill_enclosed(mask)
    return mask


class MaskSteps(NamedTuple):
    """What Predict adds to the most probable class for a model under a config: the
    keyword arguments of :func:`prediction_mask` (``prediction_mask(p, **steps._asdict())``),
    also taken by :func:`~napari_unet.io.chunked_refine.refine_mask_chunked`."""

    close_boundaries: bool
    background_threshold: float
    fill_holes: bool


def mask_steps(model: UNet, config: PredictConfig | None = None) -> MaskSteps:
    """The steps of Predict's mask for ``model`` under ``config``.

    Parameters
    ----------
    model : UNet
        Its metadata says whether its gaps are closed and its background threshold.
    config : PredictConfig, optional
        The prediction options; None: the defaults, as Predict's.

    Returns
    -------
    MaskSteps
        Gaps closed (:func:`closes_gaps`), objects grown (:func:`mask_threshold`),
        holes filled (``config.fill_holes``): ``prediction_mask(p, **steps._asdict())``
        is Predict's mask. Every path that predicts asks here.
    """
    if config is None:
        from ..config import PredictConfig

        config = PredictConfig()
    return MaskSteps(closes_gaps(model, config), mask_threshold(model, config), config.fill_holes)


def closes_gaps(model: UNet, config: PredictConfig) -> bool:
    """Whether Predict closes the gaps in ``model``'s boundaries under ``config``.

    Only when ``config.close_boundaries`` asks for it and the model does not say
    otherwise (``model.info.close_gaps``: false for a model trained from strokes alone
    that draws its boundaries too thick, whose objects the closing would split).
    """
    return bool(config.close_boundaries and model.info.close_gaps)


def mask_threshold(model: UNet, config: PredictConfig) -> float:
    """The background threshold Predict grows objects to for ``model`` under ``config``.

    0.5 (no growth) when ``config.close_boundaries`` is off; the config's
    ``background_threshold`` when set; else the model's own
    (``model.info.background_threshold``, 0.5 if it has none).
    """
    if not config.close_boundaries:
        return 0.5
    if config.background_threshold is not None:
        return float(config.background_threshold)
    return float(model.info.background_threshold)


def instance_labels(
    mask_or_probabilities: np.ndarray,
    *,
    foreground_classes: Iterable[int] | None = None,
    method: InstanceMethod = "components",
    min_size: int = MIN_INSTANCE_SIZE,
    min_distance: int = 5,
    connectivity: int = 1,
    fill_holes: bool = True,
) -> np.ndarray:
    """Label individual objects (instances) of the foreground classes.

    Each foreground class is labelled separately, so touching objects of different
    classes always become different instances.

    ``method="components"``
        Every connected component of a class is one instance.
    ``method="watershed"``
        Touching objects of the same class are split: the Euclidean distance
        transform ``D`` of the class's pixels (distance to the nearest pixel
        outside the class) is computed; its local maxima that are at least
        ``min_distance`` pixels apart (:func:`skimage.feature.peak_local_max`,
        searched within each connected component; adjacent maxima on a plateau are
        merged into one marker) seed a marker-based watershed
        (:func:`skimage.segmentation.watershed`) of ``-D`` restricted to the
        class's pixels. A component without any maximum keeps one marker at its
        deepest pixel, so no object is lost. Larger ``min_distance`` splits less;
        a good value is a bit below the typical object radius.

    Parameters
    ----------
    mask_or_probabilities : numpy.ndarray, shape (Y, X) or (C, Y, X)
        A class mask in the annotation convention (1 = background, 2..K =
        foreground), a boolean foreground mask (True = foreground), or class
        probabilities (C, Y, X), which are first turned into a mask with
        :func:`class_mask`.
    foreground_classes : iterable of int, optional
        Label values to treat as foreground. Default: every value >= 2 (for a
        boolean mask: True).
    method : {"components", "watershed"}
        See above.
    min_size : int
        Objects with fewer pixels than this are removed (set to 0); default
        :data:`MIN_INSTANCE_SIZE`, 0 keeps every object.
    min_distance : int
        Minimum distance in pixels between two watershed markers (``"watershed"``
        only).
    connectivity : {1, 2}
        Pixel connectivity of components: 1 = 4-neighbourhood, 2 = 8-neighbourhood.
    fill_holes : bool
        Background pixels enclosed by one instance join it
        (:func:`fill_instance_holes`; after ``min_size``), as cellpose does: a nucleus
        or a cell has no holes, a few dark pixels inside it are not background.

    Returns
    -------
    numpy.ndarray of uint32, shape (Y, X)
        0 = background, instances numbered consecutively from 1 (class by class,
        in raster order of their first pixel within a class for ``"components"``).

    Raises
    ------
    ValueError
        For an unknown ``method``, bad ``connectivity`` or an input of wrong shape.
    """
    mask, classes = _instance_mask(mask_or_probabilities, foreground_classes, method, connectivity)
    labels = labelled_by_class(mask, classes, method, min_distance, connectivity)
    labels = remove_small_instances(labels, min_size)
    return fill_instance_holes(labels) if fill_holes else labels


def _instance_mask(
    mask_or_probabilities: np.ndarray,
    foreground_classes: Iterable[int] | None,
    method: str,
    connectivity: int,
) -> tuple[np.ndarray, list[int]]:
    """:func:`instance_labels`' input as a (Y, X) class mask, with the sorted foreground
    label values to label in it (a boolean mask: 2 = True, its only class).

    Raises
    ------
    ValueError
        For an unknown ``method``, bad ``connectivity`` or an input of wrong shape.
    """
    if method not in ("components", "watershed"):
        raise ValueError(f"method must be 'components' or 'watershed', got {method!r}")
    if connectivity not in (1, 2):
        raise ValueError(f"connectivity must be 1 or 2, got {connectivity}")
    mask = np.asarray(mask_or_probabilities)
    if mask.ndim == 3:
        mask = class_mask(mask)
    if mask.ndim != 2:
        raise ValueError(f"expected a (Y, X) mask or (C, Y, X) probabilities, got {mask.shape}")
    if mask.dtype == bool:
        mask = mask.astype(np.uint8) + 1  # False -> 1 (background), True -> 2
        foreground_classes = None
    elif foreground_classes is None:
        warn_if_instance_image(mask, stacklevel=3)  # instance_labels' caller
    return mask, _foreground_classes(mask, foreground_classes)


def fill_object_holes(labels: np.ndarray, boxes: dict[int, tuple[slice, slice]]) -> None:
    """Fill the holes of the objects ``boxes`` names, in place.

    Objects go smallest bounding box first (then by id), so a pixel enclosed by two
    nested objects joins the inner one whatever order the caller found them in.
    Only background pixels (0) change.

    Parameters
    ----------
    labels : numpy.ndarray of int, shape (Y, X)
        Instance labels; changed in place.
    boxes : dict of int to (slice, slice)
        Object id to its bounding box in ``labels``.
    """
    order = sorted(
        boxes,
        key=lambda i: (
            (boxes[i][0].stop - boxes[i][0].start) * (boxes[i][1].stop - boxes[i][1].start),
            i,
        ),
    )
    for index in order:
        region = labels[boxes[index]]
        filled = ndimage.binary_fill_holes(region == index)
        region[filled & (region == 0)] = index


def fill_instance_holes(labels: np.ndarray) -> np.ndarray:
    """Instances with their holes filled: background pixels enclosed by one instance
    (not connected to anything else through background) join it.

    Parameters
    ----------
    labels : numpy.ndarray of int, shape (Y, X)
        Instance labels, 0 = background.

    Returns
    -------
    numpy.ndarray, same shape and dtype
        A copy; the instances' numbers are unchanged.
    """
    filled = np.array(labels, copy=True)
    boxes = {
        index: box
        for index, box in enumerate(ndimage.find_objects(filled), start=1)
        if box is not None
    }
    fill_object_holes(filled, boxes)
    return filled


def remove_small_instances(labels: np.ndarray, min_size: int) -> np.ndarray:
    """Remove instances smaller than ``min_size`` pixels and renumber from 1.

    scikit-image's ``remove_small_objects`` on the labels (each label value is
    one instance, whatever its connectivity) and ``relabel_sequential``.

    Parameters
    ----------
    labels : numpy.ndarray of int, shape (Y, X)
        Instance labels, 0 = background.
    min_size : int
        Minimum number of pixels an instance keeps.

    Returns
    -------
    numpy.ndarray of uint32, shape (Y, X)
        Remaining instances numbered 1..N consecutively, preserving their order.
    """
    labels = np.asarray(labels)
    if labels.size == 0:
        return labels.astype(np.uint32)
    if labels.dtype.kind not in "iu":  # bool (one instance) or whole floats, as integers
        labels = labels.astype(np.int64)
    if min_size > 1:
        if labels.max() > 1:
            try:  # scikit-image >= 0.26: max_size removes sizes <= max_size
                labels = remove_small_objects(labels, max_size=min_size - 1)
            except TypeError:  # older: min_size removes sizes < min_size
                labels = remove_small_objects(labels, min_size=min_size)
        elif np.count_nonzero(labels) < min_size:  # one instance (which skimage warns about)
            labels = np.zeros_like(labels)
    return relabel_sequential(labels)[0].astype(np.uint32, copy=False)


def _foreground_classes(mask: np.ndarray, foreground_classes: Iterable[int] | None) -> list[int]:
    """Sorted foreground label values to label (default: values >= 2 present)."""
    if foreground_classes is None:
        return [int(v) for v in np.unique(mask) if v >= 2]
    return sorted({int(v) for v in foreground_classes})

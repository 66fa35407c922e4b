"""Segmentation metrics: IoU/Dice, class error, and :func:`evaluate` for all kinds.

The ISBI membrane metrics (pixel, Rand and information errors) live in
:mod:`napari_unet.evaluation.membrane_metrics`, instance matching in
:mod:`napari_unet.evaluation.matching`; both are re-exported here.

Inputs are 2-D label images (Y, X); ``kind="instances"`` and ``kind="semantic"`` also
take stacks (Z, Y, X), instances matched slice by slice. Everything is computed from
contingency tables (``numpy.unique``/``numpy.bincount``), never by Python loops over
pixels; numpy and scipy only. Class masks follow the annotation convention (0 = unlabelled,
1 = background, 2..K = classes); segmentations use 0 for background/boundary and
any other value for one segment, instance images labels <= 0 for background.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from typing import Any, Literal

import numpy as np

from .matching import instance_scores, match_instances, same_shape
from .membrane_metrics import (
    information_theoretic_score,
    interior_mask,
    pixel_error,
    rand_error,
    rand_score,
    segmentation_from_interior,
    thin_borders,
)
from .regions import restrict_instances, restrict_truth
from .truth import instance_truth

__all__ = [
    "check_class_mask",
    "class_error",
    "class_mask_share",
    "dice_per_class",
    "evaluate",
    "information_theoretic_score",
    "instance_scores",
    "interior_mask",
    "iou_per_class",
    "match_instances",
    "nothing_scored",
    "pixel_error",
    "rand_error",
    "rand_score",
    "segmentation_from_interior",
    "thin_borders",
]


# ----------------------------------------------------------------------------- classes
def _class_counts(
    pred_mask: np.ndarray, truth_mask: np.ndarray, classes: Iterable[int] | None
) -> tuple[list[int], np.ndarray, np.ndarray, np.ndarray]:
    """Classes and their hits, predicted and true pixel counts where truth != 0."""
    pred, truth = same_shape(pred_mask, truth_mask)
    labelled = truth.ravel() != 0
    pred_values = pred.ravel()[labelled].astype(np.int64)
    true_values = truth.ravel()[labelled].astype(np.int64)
    if classes is None:
        present = np.union1d(pred_values, true_values)
        classes = [int(v) for v in present if v >= 1]
    classes = [int(c) for c in classes]
    index = np.asarray(classes, np.int64)
    values = np.concatenate([index, pred_values, true_values])
    if values.size and not 0 <= values.min() <= values.max() < MAX_BINCOUNT_LABEL:
        # a label of 2**40 would size bincount's counts at 8 TiB: count ranks instead
        values = np.unique(values, return_inverse=True)[1].ravel()
        index, pred_values, true_values = np.split(
            values, np.cumsum([index.size, pred_values.size])
        )
    length = int(values.max(initial=-1)) + 1
    hits = np.bincount(true_values[pred_values == true_values], minlength=length)
    pred_counts = np.bincount(pred_values, minlength=length)
    true_counts = np.bincount(true_values, minlength=length)
    return classes, hits[index], pred_counts[index], true_counts[index]


#: Labels up to this are counted with ``numpy.bincount`` (its counts take 8 bytes per
#: value up to the largest label); larger or negative ones are ranked first.
MAX_BINCOUNT_LABEL = 2**16


def check_class_mask(mask: np.ndarray, name: str = "kind='semantic'") -> None:
    """Refuse a mask that is not a class mask of whole labels 0..:data:`MAX_CLASS_LABEL`.

    Parameters
    ----------
    mask : numpy.ndarray
    name : str
        How the message names what takes class masks (e.g. the command-line option).

    Raises
    ------
    ValueError
        Saying which labels the mask holds (e.g. instance labels or a label of 2**40).
    """
    mask = np.asarray(mask)
    if not mask.size:
        return
    whole = mask.dtype.kind in "biu" or bool(np.all(np.isfinite(mask) & (mask == np.round(mask))))
    if whole and 0 <= mask.min() <= mask.max() <= MAX_CLASS_LABEL:
        return
    held = f"{mask.min()} to {mask.max()}" if whole else "values that are not whole numbers"
    raise ValueError(
        f"{name} takes class masks with labels 0 to {MAX_CLASS_LABEL} "
        f"(0 = unlabelled, 1 = background, 2.. = classes); it holds {held}"
    )


#: Largest label of a class mask (masks are uint8).
MAX_CLASS_LABEL = 255


def class_mask_share(labels: np.ndarray) -> float | None:
    """Whether an image given as instance labels looks like a class mask instead.

    A class mask (1 = background, 2.. = classes, e.g. predict's ``<stem>_mask.tif``)
    read as instances makes its background one huge instance. The image is taken for
    one when it has no background pixel (none <= 0), as an instance image has, and
    label 1 covers at least half of its pixels.

    Parameters
    ----------
    labels : numpy.ndarray
        The image given as instance labels.

    Returns
    -------
    float or None
        The share of pixels labelled 1 if the image looks like a class mask, else None.
    """
    labels = np.asarray(labels)
    if not labels.size or bool(np.any(labels <= 0)):
        return None
    share = float(np.count_nonzero(labels == 1) / labels.size)
    return share if share >= 0.5 else None


def iou_per_class(
    pred_mask: np.ndarray, truth_mask: np.ndarray, classes: Iterable[int] | None = None
) -> dict[int, float]:
    """Intersection over union ``|P_c ∩ T_c| / |P_c ∪ T_c|`` of each class.

    Parameters
    ----------
    pred_mask, truth_mask : numpy.ndarray of int, shape (Y, X)
        Class masks in the annotation convention; pixels with ``truth == 0``
        (unlabelled) are ignored.
    classes : iterable of int, optional
        Label values to score. Default: every value >= 1 present in either mask.

    Returns
    -------
    dict[int, float]
        Label value -> IoU; NaN for a requested class absent from both masks.
    """
    classes, hits, pred_counts, true_counts = _class_counts(pred_mask, truth_mask, classes)
    union = pred_counts + true_counts - hits
    return {c: float(h / u) if u else float("nan") for c, h, u in zip(classes, hits, union)}


def dice_per_class(
    pred_mask: np.ndarray, truth_mask: np.ndarray, classes: Iterable[int] | None = None
) -> dict[int, float]:
    """Dice coefficient ``2 |P_c ∩ T_c| / (|P_c| + |T_c|)`` of each class.

    Parameters and conventions as :func:`iou_per_class`.

    Returns
    -------
    dict[int, float]
        Label value -> Dice; NaN for a requested class absent from both masks.
    """
    classes, hits, pred_counts, true_counts = _class_counts(pred_mask, truth_mask, classes)
    sizes = pred_counts + true_counts
    return {c: float(2 * h / n) if n else float("nan") for c, h, n in zip(classes, hits, sizes)}


def class_error(pred_mask: np.ndarray, truth_mask: np.ndarray) -> float:
    """Multi-class pixel error: fraction of labelled pixels with the wrong class.

    Parameters
    ----------
    pred_mask, truth_mask : numpy.ndarray of int, shape (Y, X)
        Class masks in the annotation convention; ``truth == 0`` is ignored.

    Returns
    -------
    float
        In [0, 1]; 0.0 when the truth has no labelled pixel.
    """
    pred, truth = same_shape(pred_mask, truth_mask)
    labelled = truth != 0
    n_labelled = int(np.count_nonzero(labelled))
    return float(np.count_nonzero(pred[labelled] != truth[labelled]) / max(n_labelled, 1))


# ----------------------------------------------------------------------------- evaluate
def evaluate(
    pred: np.ndarray,
    truth: np.ndarray,
    kind: Literal["membranes", "instances", "semantic"],
    ignore: np.ndarray | None = None,
) -> dict[str, Any]:
    """The metrics relevant to one kind of task, as a JSON-serialisable dict.

    ``kind="membranes"`` (ISBI 2012 style)
        ``pred`` and ``truth`` are membrane maps binarised by :func:`interior_mask`:
        ISBI labels (255 = interior, 0 = membrane), 0/1 or boolean maps, or class
        masks in the annotation convention (1 = membrane, 2 = interior). Keys:
        ``pixel_error``; ``rand_error`` = 1 - V_Rand and ``info_error`` = 1 - V_Info
        (:func:`rand_score`, :func:`information_theoretic_score`) of the
        4-connected components of the interiors, after :func:`thin_borders` on the
        prediction as in the challenge's final scoring (but for one binary map, not
        maximised over thresholds), with their ``*_split``/``*_merge`` scores.
    ``kind="instances"``
        ``pred`` and ``truth`` are instance label images (labels <= 0 = background;
        turn a class mask into one with
        :func:`napari_unet.core.postprocess.instance_labels`; one that looks like a
        class mask (:func:`class_mask_share`) gives a UserWarning; a binary mask, one
        label value, is read as its connected components,
        :func:`~napari_unet.evaluation.truth.instance_truth`). Stacks (Z, Y, X)
        are matched slice by slice, as the 2-D model predicts them: ``tp``/``fp``/``fn``/``n_pred``/
        ``n_true`` are sums over the slices, the rates are computed from those sums
        and ``mean_matched_iou`` is the mean over all matches.
        Keys: ``instances`` (:func:`instance_scores` at IoU 0.5..0.9),
        ``foreground_iou``/``foreground_dice`` of ``pred > 0`` vs ``truth > 0``
        (1.0 if both are empty), ``n_pred``, ``n_true``.
    ``kind="semantic"``
        Class masks in the annotation convention (whole labels 0 to 255, else
        ValueError; truth labels above the prediction's and 2 give a UserWarning);
        pixels with ``truth == 0`` (unlabelled) are ignored. Keys:
        ``iou``/``dice`` (label value as a string -> score, so the dict survives a
        JSON round trip), ``mean_foreground_iou``/
        ``mean_foreground_dice`` (mean over labels >= 2 present; None if none) and
        ``pixel_error`` (:func:`class_error`).

    Parameters
    ----------
    pred, truth : numpy.ndarray, shape (Y, X) or, but for membranes, (Z, Y, X)
        Prediction and ground truth as described above.
    kind : {"membranes", "instances", "semantic"}
        Which metrics to compute.
    ignore : numpy.ndarray of bool, shape of ``truth``, optional
        Pixels not to score, e.g. those near the strokes a model was trained on
        (:func:`~napari_unet.evaluation.regions.near_strokes`). Membranes: the pixel
        error counts the other pixels, the Rand and information scores leave these out
        as they do true membrane; semantic: they count as unlabelled; instances: true
        objects touching them are left out, and predicted objects lying mostly on them
        or on those objects (:func:`~napari_unet.evaluation.regions.restrict_instances`).
        The result then also holds ``ignored_fraction`` (and, for instances,
        ``left_out_true``).

    Returns
    -------
    dict
        ``{"kind": kind, ...}`` with Python ints, floats, lists and dicts only.

    Raises
    ------
    ValueError
        For an unknown ``kind``, or membrane maps that are not 2-D.
    """
    if kind == "membranes" and (np.ndim(pred) != 2 or np.ndim(truth) != 2):
        raise ValueError(
            f"kind='membranes' takes 2-D (Y, X) maps, got shapes {np.shape(pred)} and "
            f"{np.shape(truth)}: score a stack slice by slice (the ISBI errors are per slice)"
        )
    compute = {
        "membranes": _membrane_metrics,
        "instances": _instance_metrics,
        "semantic": _semantic_metrics,
    }
    if kind not in compute:
        raise ValueError(f"kind must be one of {sorted(compute)}, got {kind!r}")
    if kind == "instances":  # a binary mask's objects are its components
        pred, truth = instance_truth(pred, "pred")[0], instance_truth(truth, "truth")[0]
    if ignore is None:
        return {"kind": kind, **compute[kind](pred, truth)}
    return {"kind": kind, **_scores_ignoring(pred, truth, kind, ignore)}


def _scores_ignoring(pred: np.ndarray, truth: np.ndarray, kind: str, ignore: Any) -> dict[str, Any]:
    """The metrics of :func:`evaluate` for ``kind`` without the pixels of ``ignore``
    (bool, shape of ``truth``), then ``ignored_fraction`` (and, for instances,
    ``left_out_true``)."""
    ignore = np.asarray(ignore, bool)
    if ignore.shape != np.shape(truth):
        raise ValueError(f"ignore has shape {ignore.shape}, the truth {np.shape(truth)}")
    extra: dict[str, Any] = {"ignored_fraction": float(ignore.mean()) if ignore.size else 0.0}
    if kind == "membranes":
        scores = _membrane_metrics(pred, truth, ignore)
    elif kind == "semantic":
        scores = _semantic_metrics(pred, restrict_truth(truth, ignore))
    else:
        pred, truth, extra["left_out_true"] = restrict_instances(pred, truth, ignore)
        scores = _instance_metrics(pred, truth)
    return {**scores, **extra}


def _membrane_metrics(
    pred: np.ndarray, truth: np.ndarray, ignore: np.ndarray | None = None
) -> dict[str, float]:
    """Pixel, Rand and information errors of two membrane maps (outside ``ignore``)."""
    pred_segments = thin_borders(segmentation_from_interior(pred))
    true_segments = segmentation_from_interior(truth)
    if ignore is not None:  # left out of Rand and information scores as true membrane is
        true_segments[ignore] = 0
    rand = rand_score(pred_segments, true_segments)
    info = information_theoretic_score(pred_segments, true_segments)
    return {
        "pixel_error": pixel_error(pred, truth, ignore),
        "rand_error": 1.0 - rand["f_score"],
        "rand_split": rand["split"],
        "rand_merge": rand["merge"],
        "info_error": 1.0 - info["f_score"],
        "info_split": info["split"],
        "info_merge": info["merge"],
    }


def _instance_metrics(pred: np.ndarray, truth: np.ndarray) -> dict[str, Any]:
    """Instance matching scores plus foreground IoU/Dice of two instance images."""
    pred, truth = same_shape(pred, truth)
    for name, labels in (("pred", pred), ("truth", truth)):
        share = class_mask_share(labels)
        if share is not None:
            warnings.warn(
                f"{name} looks like a class mask, not instance labels: no pixel is <= 0 and "
                f"label 1 covers {share:.0%} of it, so its background counts as one object "
                "(napari_unet.core.postprocess.instance_labels turns a class mask into "
                "instances)",
                UserWarning,
                stacklevel=3,
            )
    scores = instance_scores(pred, truth)
    pred_fg, true_fg = pred > 0, truth > 0
    intersection = int(np.count_nonzero(pred_fg & true_fg))
    union = int(np.count_nonzero(pred_fg | true_fg))
    sizes = int(np.count_nonzero(pred_fg)) + int(np.count_nonzero(true_fg))
    return {
        "instances": scores,
        "foreground_iou": intersection / union if union else 1.0,
        "foreground_dice": 2 * intersection / sizes if sizes else 1.0,
        "n_pred": scores[0]["n_pred"],
        "n_true": scores[0]["n_true"],
    }


def _semantic_metrics(pred: np.ndarray, truth: np.ndarray) -> dict[str, Any]:
    """Per-class IoU/Dice and multi-class pixel error of two class masks."""
    for name, mask in (("pred", pred), ("truth", truth)):
        check_class_mask(mask, f"{name}: kind='semantic'")
    top_true, top_pred = int(np.max(truth, initial=0)), int(np.max(pred, initial=0))
    if top_true > max(top_pred, 2):
        warnings.warn(
            f"truth holds labels up to {top_true}, pred up to {top_pred}: instance labels "
            "(kind='instances') or a membrane map such as ISBI's 0/255 (kind='membranes')?",
            UserWarning,
            stacklevel=3,
        )
    iou = iou_per_class(pred, truth)
    dice = dice_per_class(pred, truth)

    def foreground_mean(scores: dict[int, float]) -> float | None:
        values = [v for c, v in scores.items() if c >= 2 and not np.isnan(v)]
        return float(np.mean(values)) if values else None

    return {
        "iou": {str(c): v for c, v in iou.items()},
        "dice": {str(c): v for c, v in dice.items()},
        "mean_foreground_iou": foreground_mean(iou),
        "mean_foreground_dice": foreground_mean(dice),
        "pixel_error": class_error(pred, truth),
    }


def nothing_scored(scores: dict[str, Any]) -> bool:
    """Whether ``ignore`` left :func:`evaluate` nothing to score (its numbers then mean
    nothing): every pixel left out, no labelled truth pixel left (semantic), or every
    true object left out while there were some (instances)."""
    if "ignored_fraction" not in scores:
        return False
    if scores["ignored_fraction"] >= 1.0:
        return True
    if scores["kind"] == "semantic":
        return not scores["iou"]
    return scores["kind"] == "instances" and scores["n_true"] == 0 < scores["left_out_true"]

"""Instance matching: one-to-one by IoU, with precision, recall, F1 and mean matched IoU.

Inputs are instance label images (Y, X) with labels <= 0 = background. Stacks
(Z, Y, X) are matched slice by slice, as napari-unet's 2-D model predicts them (its
instance images number objects through the stack, tracked ground truth keeps one label
per object across slices): the counts add up over the slices. Overlaps come from a
contingency table, never from Python loops over pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

__all__ = ["DEFAULT_IOU_THRESHOLDS", "instance_scores", "match_instances"]

DEFAULT_IOU_THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9)


def same_shape(*arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    """The arrays as numpy arrays, checking that their shapes agree."""
    arrays = tuple(np.asarray(a) for a in arrays)
    if len({a.shape for a in arrays}) != 1:
        raise ValueError(f"arrays must have the same shape, got {[a.shape for a in arrays]}")
    return arrays


def _instance_overlaps(
    pred_instances: np.ndarray, truth_instances: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, int]:
    """0-based indices (sorted label order) and IoU of all overlapping instance pairs.

    Also returns the numbers of predicted and true instances (non-zero labels).
    """
    pred, truth = same_shape(pred_instances, truth_instances)
    pred_ids, n_pred = _consecutive_ids(pred)
    true_ids, n_true = _consecutive_ids(truth)
    pred_areas = np.bincount(pred_ids, minlength=n_pred + 1)
    true_areas = np.bincount(true_ids, minlength=n_true + 1)
    both = (pred_ids > 0) & (true_ids > 0)
    codes, intersections = np.unique(
        pred_ids[both] * (n_true + 1) + true_ids[both], return_counts=True
    )
    pred_index, true_index = np.divmod(codes, n_true + 1)
    union = pred_areas[pred_index] + true_areas[true_index] - intersections
    return pred_index - 1, true_index - 1, intersections / union, n_pred, n_true


def _consecutive_ids(labels: np.ndarray) -> tuple[np.ndarray, int]:
    """Flat int64 ids: 0 for labels <= 0 (background), 1..N for the others in sorted order."""
    values, inverse = np.unique(labels.ravel(), return_inverse=True)
    n_background = int(np.count_nonzero(values <= 0))
    ids = np.maximum(inverse.astype(np.int64).ravel() + 1 - n_background, 0)
    return ids, values.size - n_background


def _matched_ious(
    pred_index: np.ndarray, true_index: np.ndarray, iou: np.ndarray, threshold: float
) -> np.ndarray:
    """IoUs of a one-to-one matching of pairs with ``IoU >= threshold`` (and > 0).

    Above 0.5 each instance can overlap at most one partner that much, so all
    candidate pairs are matches; otherwise the matching maximising the summed IoU is
    found with :func:`scipy.optimize.linear_sum_assignment`.
    """
    candidates = (iou >= threshold) & (iou > 0)
    if threshold > 0.5 or not candidates.any():
        return iou[candidates]
    rows, row_index = np.unique(pred_index[candidates], return_inverse=True)
    cols, col_index = np.unique(true_index[candidates], return_inverse=True)
    matrix = np.zeros((rows.size, cols.size))
    matrix[row_index, col_index] = iou[candidates]
    matched_rows, matched_cols = linear_sum_assignment(matrix, maximize=True)
    matched = matrix[matched_rows, matched_cols]
    return matched[matched > 0]


def _instance_summary(matched: np.ndarray, n_pred: int, n_true: int, threshold: float) -> dict:
    """Counts and rates of one matching (see :func:`match_instances`)."""
    tp = int(matched.size)
    fp, fn = n_pred - tp, n_true - tp
    empty = 1.0 if n_pred == n_true == 0 else 0.0  # rate when a denominator is zero
    summary = {"threshold": float(threshold), "tp": tp, "fp": fp, "fn": fn}
    summary |= {"n_pred": n_pred, "n_true": n_true}
    for key, numerator, denominator in (
        ("precision", tp, n_pred),
        ("recall", tp, n_true),
        ("f1", 2 * tp, n_pred + n_true),
        ("accuracy", tp, tp + fp + fn),
    ):
        summary[key] = numerator / denominator if denominator else empty
    summary["mean_matched_iou"] = float(matched.mean()) if tp else 0.0
    return summary


def match_instances(
    pred_instances: np.ndarray, truth_instances: np.ndarray, threshold: float = 0.5
) -> dict[str, Any]:
    """Match predicted to true instances one-to-one by IoU and count hits.

    A predicted and a true instance match when their IoU is ``>= threshold``; each
    instance is matched at most once (for thresholds <= 0.5 the matching maximises
    the summed IoU). Unmatched predictions are false positives, unmatched truths
    false negatives.

    Parameters
    ----------
    pred_instances, truth_instances : numpy.ndarray of int, shape (Y, X) or (Z, Y, X)
        Instance label images, labels <= 0 = background (labels need not be
        consecutive). Stacks are matched slice by slice; the counts are summed over
        the slices and ``mean_matched_iou`` is the mean over all their matches.
    threshold : float
        IoU threshold in (0, 1].

    Returns
    -------
    dict
        ``threshold, tp, fp, fn, n_pred, n_true`` and ``precision = tp / n_pred``,
        ``recall = tp / n_true``, ``f1 = 2 tp / (n_pred + n_true)``,
        ``accuracy = tp / (tp + fp + fn)`` (the Data Science Bowl 2018 score),
        ``mean_matched_iou`` (0.0 without matches). With no instance on either
        side all rates are 1.0.
    """
    return instance_scores(pred_instances, truth_instances, thresholds=(threshold,))[0]


def instance_scores(
    pred_instances: np.ndarray,
    truth_instances: np.ndarray,
    thresholds: Sequence[float] = DEFAULT_IOU_THRESHOLDS,
) -> list[dict[str, Any]]:
    """:func:`match_instances` at several IoU thresholds (overlaps computed once).

    Parameters
    ----------
    pred_instances, truth_instances : numpy.ndarray of int, shape (Y, X) or (Z, Y, X)
        Instance label images, labels <= 0 = background; stacks are matched slice by
        slice (as :func:`match_instances`).
    thresholds : sequence of float
        IoU thresholds.

    Returns
    -------
    list of dict
        One :func:`match_instances` result per threshold, in the given order.
    """
    pred, truth = same_shape(pred_instances, truth_instances)
    if pred.ndim >= 3:  # slice by slice: an object's label may change from slice to slice
        planes = int(np.prod(pred.shape[:-2]))
        pairs = zip(
            pred.reshape(planes, *pred.shape[-2:]), truth.reshape(planes, *truth.shape[-2:])
        )
    else:
        pairs = zip([pred], [truth])
    overlaps = [_instance_overlaps(p, t) for p, t in pairs]
    n_pred = sum(overlap[3] for overlap in overlaps)
    n_true = sum(overlap[4] for overlap in overlaps)
    return [
        _instance_summary(
            np.concatenate([np.zeros(0), *(_matched_ious(*o[:3], t) for o in overlaps)]),
            n_pred,
            n_true,
            t,
        )
        for t in thresholds
    ]

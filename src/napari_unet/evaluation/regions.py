"""Scoring only the part of an image that was not painted.

A model fine-tuned on strokes is right where it was painted almost by construction: the
strokes are its training data. Whether a run made it *better* shows where nobody painted
(issue 14: "judge on a part that was never painted"). :func:`near_strokes` marks the pixels
close to the strokes; :func:`~napari_unet.evaluation.metrics.evaluate` leaves them out
(its ``ignore``), for each kind of metric as :func:`restrict_instances` and
:func:`restrict_truth` describe.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = ["STROKE_MARGIN", "near_strokes", "restrict_instances", "restrict_truth"]

#: Pixels this close to a stroke (in pixels, within a plane) are not scored "away from the
#: strokes": about the radius of a DSB 2018 nucleus, so the object a stroke was painted in
#: is left out with its surroundings.
STROKE_MARGIN: int = 16


def near_strokes(annotation: np.ndarray, margin: int = STROKE_MARGIN) -> np.ndarray:
    """Pixels within ``margin`` of a painted pixel (label > 0), plane by plane.

    Parameters
    ----------
    annotation : numpy.ndarray of int, shape (Y, X) or (..., Y, X)
        Strokes, 0 = unlabelled.
    margin : int
        Euclidean distance in pixels, >= 0 (0: the painted pixels alone).

    Returns
    -------
    numpy.ndarray of bool, same shape
        True near a stroke; all False for an annotation without strokes.
    """
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    painted = np.asarray(annotation) > 0
    if painted.ndim < 2:
        raise ValueError(f"annotation must have 2 or more axes (…, Y, X), got {painted.shape}")
    near = np.zeros(painted.shape, bool)
    for index in np.ndindex(painted.shape[:-2]):
        plane = painted[index]
        if plane.any():
            near[index] = ndimage.distance_transform_edt(~plane) <= margin
    return near


def restrict_truth(truth: np.ndarray, ignore: np.ndarray) -> np.ndarray:
    """A class-mask ground truth whose pixels in ``ignore`` are 0: unlabelled, which the
    semantic metrics leave out."""
    restricted = np.array(truth, copy=True)
    restricted[np.asarray(ignore, bool)] = 0
    return restricted


def restrict_instances(
    pred: np.ndarray, truth: np.ndarray, ignore: np.ndarray
) -> tuple[np.ndarray, np.ndarray, int]:
    """Instance images without the objects near the strokes.

    A true object is left out when it touches ``ignore``; a predicted object when more
    than half of it lies in ``ignore`` or on true objects left out (it answers those).
    Stacks are handled plane by plane, as they are matched (a label tracked through the
    stack is left out only in the planes where it touches ``ignore``).

    Parameters
    ----------
    pred, truth : numpy.ndarray of int, same shape (Y, X) or (..., Y, X)
        Instance labels, <= 0 = background.
    ignore : numpy.ndarray of bool, same shape

    Returns
    -------
    pred, truth : numpy.ndarray
        Copies with the left-out objects set to 0.
    n_left_out : int
        True objects left out (summed over the planes).
    """
    if np.ndim(truth) > 2:
        planes = [restrict_instances(*arrays) for arrays in zip(pred, truth, ignore)]
        total = sum(count for _, _, count in planes)
        return np.stack([p for p, _, _ in planes]), np.stack([t for _, t, _ in planes]), total
    ignore = np.asarray(ignore, bool)
    truth = np.array(truth, copy=True)
    pred = np.array(pred, copy=True)
    touched = np.unique(truth[ignore & (truth > 0)])
    left_out = np.isin(truth, touched) & (truth > 0)
    truth[left_out] = 0
    answered = ignore | left_out
    foreground = pred > 0
    ids, index = np.unique(pred[foreground], return_inverse=True)  # any label values
    sizes = np.bincount(index, minlength=ids.size)
    inside = np.bincount(index[answered[foreground]], minlength=ids.size)
    pred[np.isin(pred, ids[inside * 2 > sizes]) & foreground] = 0
    return pred, truth, int(touched.size)

"""ISBI 2012 membrane metrics: pixel error, Rand and information scores, on thinned borders.

Inputs are 2-D label images (Y, X): membrane maps (ISBI labels, 255 = cell
interior, 0 = membrane, or class masks with 2 = interior) and segmentations (0 =
boundary, any other value = one segment). Everything is computed from
contingency tables (``numpy.unique``/``numpy.bincount``), never by Python loops
over pixels. :func:`napari_unet.evaluation.metrics.evaluate` with ``kind="membranes"`` uses them.

References: Arganda-Carreras I. et al. (2015) Crowdsourcing the creation of image
segmentation algorithms for connectomics. Front. Neuroanat. 9:142 (V_Rand, V_Info).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .matching import same_shape

__all__ = [
    "information_theoretic_score",
    "interior_mask",
    "pixel_error",
    "rand_error",
    "rand_score",
    "segmentation_from_interior",
    "thin_borders",
]


def interior_mask(mask: np.ndarray) -> np.ndarray:
    """Binarise a membrane map (Y, X) into cell interior (True) vs membrane (False).

    Rule, so that ISBI labels and predicted class masks both work: boolean arrays
    are used as they are; arrays containing 0 (ISBI labels 0/255, 0/1 maps) give
    interior = value > 0; arrays without 0, i.e. class masks in the annotation
    convention (1 = membrane, 2 = interior, as from
    :func:`napari_unet.core.postprocess.class_mask`) give interior = value >= 2. Hence an
    all-255 image is all interior and an all-1 class mask all membrane. Floating
    point arrays must hold whole numbers: threshold probabilities first.

    Parameters
    ----------
    mask : numpy.ndarray, shape (Y, X)
        Membrane map as described above.

    Returns
    -------
    numpy.ndarray of bool, shape (Y, X)
        True for cell interior.
    """
    mask = np.asarray(mask)
    if mask.dtype == bool:
        return mask
    if np.issubdtype(mask.dtype, np.floating) and not np.array_equal(mask, np.round(mask)):
        raise ValueError(
            "membrane maps must be binary maps or class masks, got fractional values; "
            "threshold probabilities first (e.g. postprocess.class_mask)"
        )
    if mask.size and mask.min() <= 0:
        return mask > 0
    return mask >= 2


def segmentation_from_interior(membranes: np.ndarray, connectivity: int = 1) -> np.ndarray:
    """Segment a membrane map: connected components of its interior.

    Parameters
    ----------
    membranes : numpy.ndarray, shape (Y, X)
        Membrane map, binarised with :func:`interior_mask`.
    connectivity : {1, 2}
        1 = 4-neighbourhood (a one-pixel diagonal membrane separates two cells),
        2 = 8-neighbourhood.

    Returns
    -------
    numpy.ndarray of int32, shape (Y, X)
        0 = membrane, 1..N = cells.
    """
    structure = ndimage.generate_binary_structure(2, connectivity)
    segments, _ = ndimage.label(interior_mask(membranes), structure=structure)
    return segments.astype(np.int32, copy=False)


def thin_borders(segmentation: np.ndarray) -> np.ndarray:
    """Thin the borders (label 0) between segments to about one pixel.

    The ISBI 2012 challenge's final Rand and information scores are computed after
    thinning the proposal's borders, so that border width is not penalised. Here
    every border pixel first takes the label of its nearest segment pixel
    (Euclidean distance transform); then, for every pair of 4-adjacent pixels with
    different labels, the one farther from its segment (the first on a tie) is
    set back to 0. Segments grow into the borders and stay separated by a line
    along the middle of the old border.

    Parameters
    ----------
    segmentation : numpy.ndarray of int, shape (Y, X)
        Label image, 0 = border.

    Returns
    -------
    numpy.ndarray, shape (Y, X)
        Label image of the same dtype with thin borders.
    """
    labels = np.asarray(segmentation)
    border = labels == 0
    if border.all() or not border.any():
        return labels.copy()
    distance, (rows, cols) = ndimage.distance_transform_edt(border, return_indices=True)
    grown = labels[rows, cols]
    thinned = grown.copy()
    for first, second in (
        ((slice(None, -1), slice(None)), (slice(1, None), slice(None))),
        ((slice(None), slice(None, -1)), (slice(None), slice(1, None))),
    ):
        differ = grown[first] != grown[second]
        first_farther = distance[first] >= distance[second]
        thinned[first][differ & first_farther] = 0
        thinned[second][differ & ~first_farther] = 0
    return thinned


def pixel_error(pred: np.ndarray, truth: np.ndarray, ignore: np.ndarray | None = None) -> float:
    """Fraction of pixels where two membrane maps disagree (ISBI pixel error).

    ``mean(interior_mask(pred) != interior_mask(truth))``, see :func:`interior_mask`
    (ISBI labels: 255 = cell interior, 0 = membrane; class masks: 2 = interior).

    Parameters
    ----------
    pred, truth : numpy.ndarray, shape (Y, X)
        Membrane maps of equal shape.
    ignore : numpy.ndarray of bool, shape (Y, X), optional
        Pixels left out (the fraction is of the others).

    Returns
    -------
    float
        In [0, 1]; 0 for identical maps or no pixel counted.
    """
    pred_interior, true_interior = same_shape(interior_mask(pred), interior_mask(truth))
    wrong = pred_interior != true_interior
    if ignore is not None:
        wrong = wrong[~np.asarray(ignore, bool)]
    if wrong.size == 0:
        return 0.0
    return float(np.count_nonzero(wrong) / wrong.size)


def _restricted_contingency(
    pred_segmentation: np.ndarray, truth_segmentation: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Non-zero contingency counts ``n_ij`` and marginals over truth-foreground pixels.

    Pixels with true label 0 are dropped; predicted label-0 pixels left are
    singletons (each its own segment). Returns float64 arrays (joint, pred, truth).
    """
    pred, truth = same_shape(pred_segmentation, truth_segmentation)
    keep = truth.ravel() != 0
    pred_labels = pred.ravel()[keep].astype(np.int64)
    _, true_ids = np.unique(truth.ravel()[keep], return_inverse=True)
    singletons = pred_labels == 0
    first_free = int(pred_labels.max(initial=0)) + 1
    pred_labels[singletons] = first_free + np.arange(int(singletons.sum()))
    _, pred_ids = np.unique(pred_labels, return_inverse=True)
    n_true = int(true_ids.max()) + 1 if true_ids.size else 0
    _, joint = np.unique(pred_ids.astype(np.int64) * n_true + true_ids, return_counts=True)
    pred_sizes, true_sizes = np.bincount(pred_ids), np.bincount(true_ids)
    return joint.astype(float), pred_sizes.astype(float), true_sizes.astype(float)


def rand_score(pred_segmentation: np.ndarray, truth_segmentation: np.ndarray) -> dict[str, float]:
    """Foreground-restricted Rand scores of the ISBI 2012 challenge.

    With ``p_ij`` the fraction of pixels in predicted segment ``i`` and true segment
    ``j``, ``s_i = sum_j p_ij`` and ``t_j = sum_i p_ij``::

        V_split = sum_ij p_ij^2 / sum_j t_j^2    (1 = no true segment split)
        V_merge = sum_ij p_ij^2 / sum_i s_i^2    (1 = no true segments merged)
        V_Rand  = 2 V_split V_merge / (V_split + V_merge)

    Only pixels whose *true* label is non-zero count (true membrane/background is
    ignored); predicted label-0 pixels inside the true foreground are each a segment
    of their own (singletons), so unassigned pixels are penalised. (Sums include
    each pixel paired with itself, as in the paper; ``skimage.metrics.
    adapted_rand_error`` excludes those pairs, which differs slightly on tiny images.)

    Parameters
    ----------
    pred_segmentation, truth_segmentation : numpy.ndarray of int, shape (Y, X)
        Label images (0 = boundary), e.g. from :func:`segmentation_from_interior`.

    Returns
    -------
    dict
        ``{"split", "merge", "f_score"}``; all 1.0 when the truth has no foreground.
    """
    joint, pred_sizes, true_sizes = _restricted_contingency(pred_segmentation, truth_segmentation)
    if joint.size == 0:
        return {"split": 1.0, "merge": 1.0, "f_score": 1.0}
    sum_joint = float(np.sum(joint**2))
    split = sum_joint / float(np.sum(true_sizes**2))
    merge = sum_joint / float(np.sum(pred_sizes**2))
    return {"split": split, "merge": merge, "f_score": 2 * split * merge / (split + merge)}


def rand_error(pred_segmentation: np.ndarray, truth_segmentation: np.ndarray) -> float:
    """ISBI 2012 Rand error ``1 - V_Rand`` of two label images (Y, X), see :func:`rand_score`.

    Returns
    -------
    float
        In [0, 1]; 0 for identical segmentations (up to renumbering).
    """
    return 1.0 - rand_score(pred_segmentation, truth_segmentation)["f_score"]


def information_theoretic_score(
    pred_segmentation: np.ndarray, truth_segmentation: np.ndarray
) -> dict[str, float]:
    """Foreground-restricted information-theoretic scores (ISBI 2012 ``V_Info``).

    With ``S`` the predicted and ``T`` the true segmentation, restricted to the true
    foreground as in :func:`rand_score`, entropies ``H`` and mutual information
    ``I(S; T) = H(S) + H(T) - H(S, T)``::

        V_Info_split = I(S; T) / H(S)    (1 = no true segment split)
        V_Info_merge = I(S; T) / H(T)    (1 = no true segments merged)
        V_Info       = 2 I(S; T) / (H(S) + H(T))

    A zero denominator (a single segment) gives 1. The information error is
    ``1 - V_Info``. Parameters and return value as for :func:`rand_score`.
    """
    joint, pred_sizes, true_sizes = _restricted_contingency(pred_segmentation, truth_segmentation)
    if joint.size == 0:
        return {"split": 1.0, "merge": 1.0, "f_score": 1.0}
    n_pixels = joint.sum()
    h_pred, h_true, h_joint = (_entropy(c / n_pixels) for c in (pred_sizes, true_sizes, joint))
    mutual = max(h_pred + h_true - h_joint, 0.0)
    split = min(mutual / h_pred, 1.0) if h_pred > 0 else 1.0
    merge = min(mutual / h_true, 1.0) if h_true > 0 else 1.0
    total = h_pred + h_true
    f_score = min(2 * mutual / total, 1.0) if total > 0 else 1.0
    return {"split": split, "merge": merge, "f_score": f_score}


def _entropy(probabilities: np.ndarray) -> float:
    """Shannon entropy (nats) of a probability vector."""
    probabilities = probabilities[probabilities > 0]
    return float(-np.sum(probabilities * np.log(probabilities)))

"""The ISBI Rand and information scores checked against scikit-image's.

``membrane_metrics`` computes the scores of Arganda-Carreras et al. (2015) itself;
``skimage.metrics.adapted_rand_error`` and ``variation_of_information`` compute
the same quantities with three differences of convention, which these tests
undo explicitly before comparing:

1. Pixel pairs: our Rand sums ``sum n_ij^2`` count each pixel paired with
   itself (the paper's probability form); skimage subtracts those N self-pairs
   from every sum (``sum n_ij^2 - N`` etc.). With T = sum of squared true segment
   sizes, P = the same for predicted segments and S = sum n_ij^2, ours is
   split = S / T, merge = S / P; skimage's is (S - N) / (T - N) and
   (S - N) / (P - N). (skimage names the first "precision" and the second
   "recall", although its docstring describes them the other way round.)
2. Predicted border pixels (label 0) inside the true foreground: ours makes each
   a segment of its own (so unassigned pixels are penalised); skimage treats
   label 0 of the *test* image as one ordinary segment. Giving each such pixel a
   label of its own before calling skimage makes the two agree.
3. Information scores: skimage returns the conditional entropies
   (H(pred | truth), H(truth | pred)) in bits; ours are the normalised scores
   split = I / H(pred), merge = I / H(truth), f = 2 I / (H(pred) + H(truth)),
   with I = H(pred) - H(pred | truth). Ratios do not depend on the log base.

Both ignore pixels whose *true* label is 0 (skimage's ``ignore_labels=(0,)``).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from skimage.metrics import adapted_rand_error, variation_of_information
from skimage.segmentation import find_boundaries

from napari_unet.evaluation.membrane_metrics import (
    information_theoretic_score,
    rand_error,
    rand_score,
    segmentation_from_interior,
    thin_borders,
)
from napari_unet.evaluation.metrics import evaluate


def voronoi(shape, seeds, *, borders):
    """Cells around ``seeds``; with ``borders``, 0 on a membrane between cells."""
    markers = np.zeros(shape, np.int64)
    markers[tuple(seeds.T)] = np.arange(1, len(seeds) + 1)
    _, (rows, cols) = ndimage.distance_transform_edt(markers == 0, return_indices=True)
    labels = markers[rows, cols]
    if borders:
        labels[find_boundaries(labels, mode="inner")] = 0
    return labels


def example(seed, size=96, cells=12, *, pred_borders=False):
    """A true segmentation with membranes and an imperfect prediction of it."""
    rng = np.random.default_rng(seed)
    seeds = rng.integers(0, size, size=(cells, 2))
    truth = voronoi((size, size), seeds, borders=True)
    moved = np.clip(seeds + rng.integers(-6, 7, size=seeds.shape), 0, size - 1)
    extra = rng.integers(0, size, size=(3, 2))  # three false splits
    pred = voronoi((size, size), np.unique(np.vstack([moved, extra]), axis=0), borders=pred_borders)
    pred[pred == 2] = 1  # and a false merge
    return pred, truth


def unique_zeros(pred, truth):
    """Each predicted 0 inside the true foreground as a label of its own (our convention)."""
    pred = pred.copy()
    zeros = (pred == 0) & (truth > 0)
    pred[zeros] = pred.max() + 1 + np.arange(np.count_nonzero(zeros))
    return pred


def squared_sizes(labels, foreground):
    return float(np.sum(np.bincount(labels[foreground].ravel()).astype(float) ** 2))


def expected_skimage_rand(ours, pred, truth):
    """skimage's (error, precision, recall) from our split and merge (difference 1)."""
    foreground = truth > 0
    n = float(np.count_nonzero(foreground))
    t = squared_sizes(truth, foreground)
    p = squared_sizes(unique_zeros(pred, truth), foreground)
    s = ours["split"] * t
    assert ours["merge"] * p == pytest.approx(s, rel=1e-12)  # one S behind both scores
    return 1 - 2 * (s - n) / ((t - n) + (p - n)), (s - n) / (t - n), (s - n) / (p - n)


HALVES = np.array([[1, 1, 2, 2]] * 4)
SMALL = [
    (HALVES, HALVES),
    (np.ones((4, 4), int), HALVES),  # merge
    (HALVES, np.ones((4, 4), int)),  # split
    (np.array([[1, 1, 2, 2], [1, 1, 2, 2], [1, 2, 2, 2], [3, 3, 3, 3]]), HALVES),
]


@pytest.mark.parametrize(
    ("pred", "truth"),
    SMALL + [example(seed) for seed in range(4)] + [example(9, pred_borders=True)],
)
def test_rand_scores_equal_skimage_adapted_rand_error_without_self_pairs(pred, truth):
    ours = rand_score(pred, truth)
    error, precision, recall = adapted_rand_error(truth, unique_zeros(pred, truth))
    expected = expected_skimage_rand(ours, pred, truth)
    np.testing.assert_allclose((error, precision, recall), expected, rtol=1e-10, atol=1e-12)


def test_rand_error_is_skimage_s_on_a_realistic_image_up_to_the_self_pairs():
    pred, truth = example(5, size=512, cells=60, pred_borders=True)
    ours = rand_error(pred, truth)
    theirs = adapted_rand_error(truth, unique_zeros(pred, truth))[0]
    assert 0.05 < ours < 0.95  # an imperfect prediction, not a trivial case
    assert ours == pytest.approx(theirs, abs=1e-4)  # N self-pairs among ~N^2/60 pairs


def test_predicted_borders_count_as_singletons_not_as_one_segment():
    pred, truth = example(7, pred_borders=True)
    assert np.count_nonzero((pred == 0) & (truth > 0)) > 100
    ours = rand_score(pred, truth)
    expected = expected_skimage_rand(ours, pred, truth)[0]
    as_singletons = adapted_rand_error(truth, unique_zeros(pred, truth))[0]
    as_one_segment = adapted_rand_error(truth, pred)[0]
    assert as_singletons == pytest.approx(expected, rel=1e-10)
    assert abs(as_one_segment - expected) > 0.01  # skimage's plain call is another metric here


def skimage_information_scores(pred, truth):
    """Our normalised scores from skimage's conditional entropies (difference 3)."""
    pred = unique_zeros(pred, truth)
    pred_given_truth, truth_given_pred = variation_of_information(truth, pred, ignore_labels=(0,))
    foreground = (truth > 0).astype(np.int64)  # one true segment: H(pred | it) = H(pred)
    h_pred = variation_of_information(foreground, pred, ignore_labels=(0,))[0]
    h_truth = variation_of_information(foreground, truth, ignore_labels=(0,))[0]
    mutual = h_pred - pred_given_truth
    assert mutual == pytest.approx(h_truth - truth_given_pred, abs=1e-9)
    return {
        "split": mutual / h_pred if h_pred > 0 else 1.0,
        "merge": mutual / h_truth if h_truth > 0 else 1.0,
        "f_score": 2 * mutual / (h_pred + h_truth) if h_pred + h_truth > 0 else 1.0,
    }


@pytest.mark.parametrize(
    ("pred", "truth"),
    SMALL[1:] + [example(seed) for seed in range(4)] + [example(9, pred_borders=True)],
)
def test_information_scores_equal_skimage_variation_of_information(pred, truth):
    ours = information_theoretic_score(pred, truth)
    theirs = skimage_information_scores(pred, truth)
    assert ours == pytest.approx(theirs, rel=1e-9, abs=1e-12)
    assert min(ours.values()) < 1  # every example has errors of some kind


def to_map(labels):
    """An ISBI-style membrane map: 255 = cell interior, 0 = membrane."""
    return np.where(labels > 0, 255, 0).astype(np.uint8)


def test_evaluate_membranes_agrees_with_skimage_on_the_thinned_segmentations():
    pred, truth = example(11, size=256, cells=30, pred_borders=True)
    result = evaluate(to_map(pred), to_map(truth), kind="membranes")
    # evaluate labels the interiors (4-connected) and thins the predicted borders first
    pred_segments = thin_borders(segmentation_from_interior(to_map(pred)))
    true_segments = segmentation_from_interior(to_map(truth))
    theirs = adapted_rand_error(true_segments, unique_zeros(pred_segments, true_segments))[0]
    info = skimage_information_scores(pred_segments, true_segments)
    assert result["rand_error"] > 0.05
    assert result["rand_error"] == pytest.approx(theirs, abs=1e-4)
    assert result["info_error"] == pytest.approx(1 - info["f_score"], rel=1e-9)

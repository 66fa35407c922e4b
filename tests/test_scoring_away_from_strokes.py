"""Evaluate leaves out the pixels near the strokes (``evaluate(..., ignore=...)``)."""

import numpy as np
import pytest

from napari_unet.evaluation.metrics import evaluate
from napari_unet.evaluation.regions import near_strokes, restrict_instances


def test_near_strokes_marks_the_pixels_within_the_margin_of_each_plane():
    strokes = np.zeros((2, 40, 40), np.uint8)
    strokes[0, 20, 20] = 2
    near = near_strokes(strokes, margin=3)
    assert near[0, 20, 23] and near[0, 17, 20] and not near[0, 20, 24]
    assert near[0, 22, 22] and not near[0, 23, 23]  # Euclidean: 2.8 in, 4.2 out
    assert not near[1].any()  # the other plane has no stroke
    assert near_strokes(strokes, margin=0).sum() == 1
    with pytest.raises(ValueError, match="margin"):
        near_strokes(strokes, margin=-1)


def _discs():
    """Three true discs; the prediction finds the first two and merges nothing."""
    yy, xx = np.mgrid[:60, :90]
    truth = np.zeros((60, 90), np.int32)
    for label, cx in ((1, 15), (2, 45), (3, 75)):
        truth[(yy - 30) ** 2 + (xx - cx) ** 2 <= 64] = label
    pred = np.where(truth == 3, 0, truth * 10)  # the third disc missed
    pred[5:9, 70:80] = 99  # an extra object above the third disc
    return pred, truth


def test_instances_near_the_strokes_are_left_out():
    pred, truth = _discs()
    whole = evaluate(pred, truth, "instances")
    row = whole["instances"][0]
    assert (row["tp"], row["fp"], row["fn"]) == (2, 1, 1)
    ignore = np.zeros(truth.shape, bool)
    ignore[:, 60:] = True  # strokes over the right third: disc 3 and the extra object
    away = evaluate(pred, truth, "instances", ignore=ignore)
    row = away["instances"][0]
    assert (row["tp"], row["fp"], row["fn"], row["f1"]) == (2, 0, 0, 1.0)
    assert away["left_out_true"] == 1
    assert away["ignored_fraction"] == pytest.approx(1 / 3)


def test_a_predicted_object_mostly_on_a_left_out_true_one_is_left_out_too():
    pred, truth = _discs()
    ignore = np.zeros(truth.shape, bool)
    ignore[30, 8] = True  # one pixel of disc 1 (painted there)
    kept_pred, kept_truth, left_out = restrict_instances(pred, truth, ignore)
    assert left_out == 1 and not (kept_truth == 1).any()
    assert not (kept_pred == 10).any()  # it answered disc 1
    assert (kept_pred == 20).any() and (kept_pred == 99).any()


def test_membrane_scores_count_only_the_pixels_away_from_the_strokes():
    truth = np.full((40, 40), 255, np.uint8)
    truth[:, 20] = 0  # one membrane: two cells
    pred = truth.copy()
    pred[:, 30] = 0  # a false membrane cuts the right cell in two
    whole = evaluate(pred, truth, "membranes")
    assert whole["pixel_error"] == pytest.approx(40 / 1600)
    ignore = np.zeros(truth.shape, bool)
    ignore[:, 25:] = True
    away = evaluate(pred, truth, "membranes", ignore=ignore)
    assert away["pixel_error"] == 0.0 and away["rand_error"] == pytest.approx(0.0)
    assert whole["rand_error"] > 0


def test_semantic_pixels_near_the_strokes_count_as_unlabelled():
    truth = np.ones((20, 20), np.uint8)
    truth[:, 10:] = 2
    pred = truth.copy()
    pred[:, :5] = 2  # wrong on the left quarter
    ignore = np.zeros(truth.shape, bool)
    ignore[:, :5] = True
    assert evaluate(pred, truth, "semantic")["pixel_error"] == pytest.approx(0.25)
    away = evaluate(pred, truth, "semantic", ignore=ignore)
    assert away["pixel_error"] == 0.0 and away["iou"]["2"] == 1.0


def test_the_ignored_pixels_must_match_the_truth():
    pred, truth = _discs()
    with pytest.raises(ValueError, match="ignore has shape"):
        evaluate(pred, truth, "instances", ignore=np.zeros((3, 3), bool))


def test_a_tracked_object_is_left_out_only_in_the_planes_where_it_was_painted():
    pred, truth = _discs()
    stack_pred, stack_truth = np.stack([pred, pred]), np.stack([truth, truth])
    ignore = np.zeros(stack_truth.shape, bool)
    ignore[0, 30, 8] = True  # disc 1 painted in the first plane only
    kept_pred, kept_truth, left_out = restrict_instances(stack_pred, stack_truth, ignore)
    assert left_out == 1
    assert not (kept_truth[0] == 1).any() and (kept_truth[1] == 1).any()
    assert not (kept_pred[0] == 10).any() and (kept_pred[1] == 10).any()

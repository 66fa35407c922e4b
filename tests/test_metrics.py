"""Tests for napari_unet.evaluation.metrics against values computed by hand on tiny arrays."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from helpers import warnings_as_errors
from napari_unet.evaluation.metrics import (
    class_error,
    dice_per_class,
    evaluate,
    information_theoretic_score,
    instance_scores,
    interior_mask,
    iou_per_class,
    match_instances,
    pixel_error,
    rand_error,
    rand_score,
    segmentation_from_interior,
    thin_borders,
)

HALVES = np.array([[1, 1, 2, 2]] * 4)  # two true segments of 8 pixels


def test_interior_mask_conventions():
    np.testing.assert_array_equal(interior_mask(np.array([[0, 255]])), [[False, True]])
    np.testing.assert_array_equal(interior_mask(np.array([[1, 2]])), [[False, True]])
    assert interior_mask(np.full((2, 2), 255, np.uint8)).all()
    assert not interior_mask(np.ones((2, 2), np.uint8)).any()
    with pytest.raises(ValueError, match="threshold"):
        interior_mask(np.array([[0.2, 0.7]]))


def test_pixel_error_counts_disagreeing_pixels():
    truth = np.full((4, 4), 255, np.uint8)
    truth[:, 1] = 0  # a vertical membrane
    pred = np.full((4, 4), 2, np.uint8)  # class mask: 2 = interior, 1 = membrane
    pred[:3, 1] = 1  # misses the membrane at (3, 1) ...
    pred[0, 3] = 1  # ... and adds one at (0, 3): 2 of 16 pixels wrong
    assert pixel_error(pred, truth) == pytest.approx(2 / 16)
    assert pixel_error(truth, truth) == 0.0


def test_rand_error_of_identical_and_renumbered_segmentations_is_zero():
    assert rand_error(HALVES, HALVES) == pytest.approx(0.0)
    assert rand_error(np.where(HALVES == 1, 7, 3), HALVES) == pytest.approx(0.0)


def test_rand_scores_of_merge_and_split():
    # merge: one predicted segment over both halves. n_ij = (8, 8):
    # sum n_ij^2 = 128, sum t_j^2 = 128, sum s_i^2 = 256 -> split 1, merge 1/2,
    # F = 2 * 1 * 0.5 / 1.5 = 2/3, error 1/3.
    merged = rand_score(np.ones((4, 4), int), HALVES)
    assert merged["split"] == pytest.approx(1.0) and merged["merge"] == pytest.approx(0.5)
    assert rand_error(np.ones((4, 4), int), HALVES) == pytest.approx(1 / 3)
    # split: the reverse roles give split 1/2, merge 1, the same error.
    split = rand_score(HALVES, np.ones((4, 4), int))
    assert split["split"] == pytest.approx(0.5) and split["merge"] == pytest.approx(1.0)
    # mixed: segment A = left half + 4 right pixels, B = other 4 right pixels:
    # n_ij = (8, 4, 4): sum n^2 = 96, sum t^2 = 128, sum s^2 = 12^2 + 4^2 = 160
    # -> split 0.75, merge 0.6, F = 0.9 / 1.35 = 2/3.
    pred = np.ones((4, 4), int)
    pred[2:, 2:] = 2
    scores = rand_score(pred, HALVES)
    assert scores["split"] == pytest.approx(0.75) and scores["merge"] == pytest.approx(0.6)
    assert scores["f_score"] == pytest.approx(2 / 3)


def test_rand_ignores_true_background_and_penalises_predicted_zeros():
    truth = np.zeros((4, 4), int)
    truth[0, :] = 5  # one true segment of 4 pixels, the rest ignored
    pred = np.arange(16).reshape(4, 4) + 1
    pred[0, :] = 1
    assert rand_error(pred, truth) == pytest.approx(0.0)
    pred[0, 2:] = 0  # two unassigned pixels become singletons: s = (2, 1, 1)
    # sum n^2 = 6, sum t^2 = 16, sum s^2 = 6 -> split 3/8, merge 1, F = 0.75/1.375
    assert rand_error(pred, truth) == pytest.approx(1 - 0.75 / 1.375)


def test_information_theoretic_scores():
    assert information_theoretic_score(HALVES, HALVES)["f_score"] == pytest.approx(1.0)
    merged = information_theoretic_score(np.ones((4, 4), int), HALVES)
    assert merged["f_score"] == pytest.approx(0.0)  # I(S;T) = 0
    pred = np.ones((4, 4), int)
    pred[2:, 2:] = 2  # p(S) = (3/4, 1/4), p(T) = (1/2, 1/2), p(S,T) = (1/2, 1/4, 1/4)
    h_pred = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    h_true = math.log(2)
    h_joint = 1.5 * math.log(2)
    mutual = h_pred + h_true - h_joint
    scores = information_theoretic_score(pred, HALVES)
    assert scores["split"] == pytest.approx(mutual / h_pred)
    assert scores["merge"] == pytest.approx(mutual / h_true)
    assert scores["f_score"] == pytest.approx(2 * mutual / (h_pred + h_true))


def test_segmentation_from_interior_uses_4_connectivity():
    membranes = np.array([[255, 0], [0, 255]], np.uint8)
    assert segmentation_from_interior(membranes).max() == 2
    assert segmentation_from_interior(membranes, connectivity=2).max() == 1


def test_thin_borders_leaves_a_one_pixel_line_in_the_middle():
    segmentation = np.array([[1, 1, 0, 0, 0, 2, 2]] * 4)
    np.testing.assert_array_equal(thin_borders(segmentation), [[1, 1, 1, 0, 2, 2, 2]] * 4)
    np.testing.assert_array_equal(thin_borders(HALVES), HALVES)


def test_evaluate_membranes_ignores_border_width_for_rand_but_not_pixel_error():
    truth = np.full((4, 7), 255, np.uint8)
    truth[:, 3] = 0
    pred = np.full((4, 7), 2, np.uint8)
    pred[:, 2:5] = 1  # a 3-pixel-wide membrane around the true one
    result = evaluate(pred, truth, kind="membranes")
    assert result["pixel_error"] == pytest.approx(8 / 28)
    assert result["rand_error"] == pytest.approx(0.0)
    assert result["info_error"] == pytest.approx(0.0)


# rows 0-2 labelled (1 = background, 2 = class), row 3 unlabelled (ignored)
SEMANTIC_TRUTH = np.array([[1, 1, 2, 2], [1, 1, 2, 2], [1, 1, 2, 2], [0, 0, 0, 0]])
SEMANTIC_PRED = np.array([[1, 2, 2, 2], [1, 1, 2, 2], [1, 1, 1, 1], [2, 2, 2, 2]])


def test_iou_and_dice_per_class():
    # class 2: |P| = 5, |T| = 6, |P ∩ T| = 4; class 1: |P| = 7, |T| = 6, |P ∩ T| = 5
    iou = iou_per_class(SEMANTIC_PRED, SEMANTIC_TRUTH)
    dice = dice_per_class(SEMANTIC_PRED, SEMANTIC_TRUTH)
    assert iou == pytest.approx({1: 5 / 8, 2: 4 / 7})
    assert dice == pytest.approx({1: 10 / 13, 2: 8 / 11})
    assert math.isnan(iou_per_class(SEMANTIC_PRED, SEMANTIC_TRUTH, classes=[3])[3])
    assert class_error(SEMANTIC_PRED, SEMANTIC_TRUTH) == pytest.approx(3 / 12)


@pytest.mark.parametrize("huge", [2**40, 2**62, -(2**40)])
def test_iou_and_dice_of_huge_or_negative_labels_count_without_a_table_that_large(huge):
    """bincount over labels up to 2**40 would allocate 8 TiB; the scores equal those of
    the same masks with that label renamed to a small one."""
    pred, truth = SEMANTIC_PRED.astype(np.int64), SEMANTIC_TRUTH.astype(np.int64)
    pred[pred == 2], truth[truth == 2] = huge, huge
    for score in (iou_per_class, dice_per_class):
        expected = score(SEMANTIC_PRED, SEMANTIC_TRUTH, classes=[1, 2, 3])
        result = score(pred, truth, classes=[1, huge, 3])
        assert list(result) == [1, huge, 3]
        np.testing.assert_equal(list(result.values()), list(expected.values()))
    iou = iou_per_class(pred, truth)
    assert iou == pytest.approx({1: 5 / 8, huge: 4 / 7} if huge > 0 else {1: 5 / 8})


@pytest.mark.parametrize(
    "pred, held",
    [
        (np.full((4, 4), 2**40, np.int64), "it holds 1099511627776 to 1099511627776"),
        (np.full((4, 4), 256, np.uint16), "it holds 256 to 256"),
        (np.full((4, 4), -1, np.int8), "it holds -1 to -1"),
        (np.full((4, 4), np.nan), "it holds values that are not whole numbers"),
        (np.full((4, 4), 1.5), "it holds values that are not whole numbers"),
    ],
)
def test_evaluate_semantic_refuses_what_is_not_a_class_mask(pred, held):
    truth = np.ones((4, 4), np.uint8)
    message = rf"pred: kind='semantic' takes class masks with labels 0 to 255 .*; {held}$"
    with pytest.raises(ValueError, match=message):
        evaluate(pred, truth, kind="semantic")
    with pytest.raises(ValueError, match=message.replace("pred", "truth")):
        evaluate(truth, pred, kind="semantic")


def test_evaluate_semantic_takes_whole_float_and_bool_class_masks():
    as_float = evaluate(SEMANTIC_PRED.astype(float), SEMANTIC_TRUTH.astype(float), "semantic")
    assert as_float == evaluate(SEMANTIC_PRED, SEMANTIC_TRUTH, kind="semantic")
    assert evaluate(np.ones((2, 2), bool), np.ones((2, 2), bool), "semantic")["iou"] == {"1": 1.0}


def _instance_example() -> tuple[np.ndarray, np.ndarray]:
    truth = np.zeros((6, 6), int)
    truth[0:2, 0:2] = 1  # found exactly
    truth[0:2, 3:6] = 2  # found partially: IoU 4 / 6
    truth[4:6, 0:2] = 3  # missed
    pred = np.zeros((6, 6), int)
    pred[0:2, 0:2] = 7
    pred[0:2, 4:6] = 3
    pred[4:6, 4:6] = 9  # false positive
    return pred, truth


def test_match_instances_counts():
    pred, truth = _instance_example()
    result = match_instances(pred, truth, threshold=0.5)
    assert (result["tp"], result["fp"], result["fn"]) == (2, 1, 1)
    assert result["precision"] == pytest.approx(2 / 3)
    assert result["recall"] == pytest.approx(2 / 3)
    assert result["f1"] == pytest.approx(2 / 3)
    assert result["mean_matched_iou"] == pytest.approx((1 + 4 / 6) / 2)
    strict = instance_scores(pred, truth, thresholds=(0.5, 0.7))[1]
    assert (strict["tp"], strict["fp"], strict["fn"]) == (1, 2, 2)
    assert strict["mean_matched_iou"] == pytest.approx(1.0)


def test_low_threshold_matching_is_optimal_not_greedy():
    truth = np.zeros((1, 20), int)
    truth[0, :10], truth[0, 10:] = 1, 2
    pred = np.zeros((1, 20), int)
    pred[0, 3:15] = 1  # IoU 7/15 with truth 1, 5/17 with truth 2
    pred[0, 0:3] = 2  # IoU 3/10 with truth 1 only
    # greedy would pair pred 1 with truth 1 (tp = 1); the optimum pairs both (tp = 2)
    result = match_instances(pred, truth, threshold=0.25)
    assert result["tp"] == 2
    assert result["mean_matched_iou"] == pytest.approx((5 / 17 + 3 / 10) / 2)


def test_match_instances_empty_images():
    empty = np.zeros((3, 3), int)
    assert match_instances(empty, empty)["f1"] == 1.0
    one = empty.copy()
    one[1, 1] = 1
    result = match_instances(empty, one)
    assert (result["tp"], result["fn"], result["recall"], result["f1"]) == (0, 1, 0.0, 0.0)


def test_evaluate_membranes():
    truth = np.full((4, 4), 255, np.uint8)
    truth[:, 1] = 0
    pred = np.where(truth > 0, 2, 1).astype(np.uint8)
    result = evaluate(pred, truth, kind="membranes")
    assert {"pixel_error", "rand_error", "info_error"} <= set(result)
    assert result["pixel_error"] == result["rand_error"] == 0.0
    assert result["info_error"] == pytest.approx(0.0)
    pred[:, 1] = 2  # membrane missed: the two cells merge
    result = evaluate(pred, truth, kind="membranes")
    assert result["pixel_error"] == pytest.approx(4 / 16)
    # truth segments 4 and 8 pixels, one predicted segment: split 1, merge 80/144
    merge = 80 / 144
    assert result["rand_error"] == pytest.approx(1 - 2 * merge / (1 + merge))
    assert result["info_error"] == pytest.approx(1.0)
    json.dumps(result)
    with pytest.raises(ValueError, match=r"takes 2-D .* slice by slice"):  # not scipy's error
        evaluate(pred[None], truth[None], kind="membranes")


def test_evaluate_instances_and_semantic():
    pred, truth = _instance_example()
    result = evaluate(pred, truth, kind="instances")
    assert [s["threshold"] for s in result["instances"]] == [0.5, 0.6, 0.7, 0.8, 0.9]
    # foreground: |P| = 12, |T| = 14, |P ∩ T| = 8
    assert result["foreground_iou"] == pytest.approx(8 / 18)
    assert result["foreground_dice"] == pytest.approx(16 / 26)
    assert (result["n_pred"], result["n_true"]) == (3, 3)
    semantic = evaluate(SEMANTIC_PRED, SEMANTIC_TRUTH, kind="semantic")
    assert semantic["iou"] == pytest.approx({"1": 5 / 8, "2": 4 / 7})
    assert semantic["mean_foreground_iou"] == pytest.approx(4 / 7)
    assert semantic["pixel_error"] == pytest.approx(3 / 12)
    for value in (result, semantic):
        assert json.loads(json.dumps(value)) == value
    with pytest.raises(ValueError, match="kind"):
        evaluate(pred, truth, kind="boxes")


def _tracked_stack(frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Truth with labels 1, 2 in every frame; a perfect prediction numbered through it."""
    frame = np.zeros((8, 8), np.uint16)
    frame[1:4, 1:4], frame[5:8, 4:8] = 1, 2
    truth = np.stack([frame] * frames)
    pred = np.stack([np.where(frame > 0, frame + 2 * z, 0) for z in range(frames)])
    return pred, truth


@pytest.mark.parametrize("frames", [2, 3])
def test_evaluate_instances_matches_a_stack_slice_by_slice(frames):
    pred, truth = _tracked_stack(frames)
    result = evaluate(pred, truth, kind="instances")
    for row in result["instances"]:
        assert (row["tp"], row["fp"], row["fn"]) == (2 * frames, 0, 0)
        assert row["f1"] == row["precision"] == row["recall"] == 1.0
    assert (result["n_pred"], result["n_true"]) == (2 * frames, 2 * frames)
    assert result["foreground_iou"] == 1.0
    json.dumps(result)


def test_stack_scores_are_sums_over_slices_and_2d_scores_unchanged():
    pred, truth = _instance_example()
    stack = match_instances(np.stack([pred, truth, pred]), np.stack([truth, truth, truth]))
    one = match_instances(pred, truth)
    assert (one["tp"], one["fp"], one["fn"]) == (2, 1, 1)  # 2-D as before
    assert (stack["tp"], stack["fp"], stack["fn"]) == (2 + 3 + 2, 1 + 0 + 1, 1 + 0 + 1)
    assert (stack["n_pred"], stack["n_true"]) == (9, 9)
    assert stack["f1"] == pytest.approx(2 * 7 / 18)
    # the mean over all 7 matches, not a mean of the slices' means
    assert stack["mean_matched_iou"] == pytest.approx((2 * (1 + 4 / 6) + 3) / 7)


def test_negative_labels_are_background():
    pred, truth = _instance_example()
    negative = np.where(pred == 0, -1, pred)
    assert match_instances(negative, truth) == match_instances(pred, truth)
    assert evaluate(negative, truth, kind="instances") == evaluate(pred, truth, kind="instances")


def test_class_mask_share_tells_a_class_mask_from_instances():
    from napari_unet.evaluation.metrics import class_mask_share

    mask = np.ones((10, 10), np.uint8)
    mask[2:5, 2:5] = 2
    assert class_mask_share(mask) == pytest.approx(91 / 100)
    assert class_mask_share(np.where(mask == 1, 0, 1)) is None  # instances: 0 = background
    tiled = np.arange(1, 101).reshape(10, 10)  # instances without background, 1 is small
    assert class_mask_share(tiled) is None
    assert class_mask_share(np.zeros((0, 4), np.uint8)) is None


def test_metrics_reject_mismatched_shapes():
    with pytest.raises(ValueError, match="same shape"):
        rand_error(np.zeros((2, 2)), np.zeros((3, 3)))


def test_evaluate_warns_when_instances_look_like_a_class_mask():
    """A class mask (1 = background, 2 = nucleus) scored as instances is one huge object."""
    from napari_unet.core.postprocess import instance_labels

    truth = np.zeros((40, 40), np.int32)
    truth[5:15, 5:15], truth[25:35, 25:35] = 1, 2
    class_mask = np.where(truth > 0, 2, 1).astype(np.uint8)
    with pytest.warns(UserWarning, match="pred looks like a class mask"):
        scored = evaluate(class_mask, truth, kind="instances")
    assert scored["n_pred"] == 2 and scored["instances"][0]["f1"] < 1.0
    with warnings_as_errors():
        fixed = evaluate(instance_labels(class_mask), truth, kind="instances")
    assert fixed["instances"][0]["f1"] == 1.0


def test_instance_truth_reads_a_binary_mask_plane_by_plane_and_leaves_labels_alone():
    from napari_unet.evaluation.truth import instance_truth

    stack = np.zeros((2, 12, 12), np.uint8)
    stack[0, 1:4, 1:4] = stack[0, 6:9, 6:9] = stack[1, 1:4, 1:4] = 7  # one value: binary
    labels, note = instance_truth(stack)
    assert labels.shape == stack.shape and "connected components" in note
    assert [len(np.unique(plane)) - 1 for plane in labels] == [2, 1]
    assert ((labels > 0) == (stack > 0)).all()
    tracked = np.where(stack > 0, np.arange(1, 13)[None, :, None], 0)  # several labels
    same, note = instance_truth(tracked)
    assert same is tracked or np.array_equal(same, tracked)
    assert note == ""
    cells, note = instance_truth(np.where(stack > 0, 0, 255).astype(np.uint8))
    assert [plane.max() for plane in cells] == [1, 1] and "membrane metrics" in note


def test_nothing_scored_when_the_strokes_leave_nothing():
    from napari_unet.evaluation.metrics import nothing_scored

    classes = np.zeros((8, 8), np.uint8)
    classes[:2], classes[5:] = 1, 2  # a sparse truth: rows 2-4 unlabelled
    near = np.zeros((8, 8), bool)
    near[:2] = near[5:] = True  # every labelled pixel near the strokes
    assert nothing_scored(evaluate(classes, classes, "semantic", ignore=near))
    assert not nothing_scored(evaluate(classes, classes, "semantic", ignore=near & False))
    assert not nothing_scored(evaluate(classes, classes, "semantic"))
    everything = np.ones((8, 8), bool)
    assert nothing_scored(evaluate(classes, classes, "membranes", ignore=everything))
    objects = np.zeros((8, 8), np.int32)
    objects[1:3, 1:3] = 1
    assert nothing_scored(evaluate(objects, objects, "instances", ignore=objects > 0))
    empty = np.zeros((8, 8), np.int32)  # no object at all: not "left out", just none
    assert not nothing_scored(evaluate(empty, empty, "instances", ignore=near))


def test_evaluate_reads_binary_instances_as_components_and_warns_of_labels_above_the_classes():
    truth = np.zeros((20, 20), np.uint8)
    truth[2:8, 2:8] = truth[10:18, 10:18] = 255  # a binary mask of two objects
    labels = truth.astype(np.int32)
    labels[10:18, 10:18] = 7
    scores = evaluate(labels, truth, "instances")
    assert scores["n_true"] == 2 and scores["instances"][0]["f1"] == 1.0  # was 0: one object
    classes = np.where(truth > 0, 2, 1).astype(np.uint8)
    with pytest.warns(UserWarning, match="kind='membranes'"):
        evaluate(classes, truth, "semantic")

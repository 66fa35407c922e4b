import warnings

import numpy as np
import pytest

from napari_unet.evaluation.review import (
    StrokeAgreement,
    class_changes,
    object_changes,
    stroke_agreement,
    uncertainty,
    with_strokes,
)


def test_uncertainty_is_zero_when_certain_and_one_when_uniform():
    probabilities = np.zeros((3, 2, 2), np.float32)
    probabilities[0, 0, 0] = 1.0
    probabilities[1, 0, 1] = 1.0
    probabilities[:, 1, :] = 1 / 3
    result = uncertainty(probabilities)
    assert result.shape == (2, 2) and result.dtype == np.float32
    np.testing.assert_allclose(result, [[0, 0], [1, 1]], atol=1e-6)


def test_uncertainty_of_two_classes_matches_binary_entropy():
    p = np.array([0.9, 0.1], np.float32).reshape(2, 1, 1)
    expected = -(0.9 * np.log(0.9) + 0.1 * np.log(0.1)) / np.log(2)
    assert uncertainty(p)[0, 0] == pytest.approx(expected, rel=1e-5)


def test_uncertainty_refuses_a_single_class():
    with pytest.raises(ValueError, match="C >= 2"):
        uncertainty(np.ones((1, 4, 4)))


def test_uncertainty_of_a_stack_takes_its_class_axis():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(4, 3, 5, 6)).astype(np.float32)  # (Z, C, Y, X)
    stack = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    per_slice = np.stack([uncertainty(plane) for plane in stack])
    np.testing.assert_allclose(uncertainty(stack, class_axis=1), per_slice, rtol=1e-6)
    with pytest.raises(ValueError, match="class_axis=1"):  # slices taken for classes
        uncertainty(stack)
    with pytest.raises(ValueError, match=r"axis 1 \(sums [^)]*\)$"):  # no stack hint here
        uncertainty(stack * 2, class_axis=1)


def test_class_changes_counts_pixels_gained_per_class():
    before = np.array([[1, 1, 2], [2, 2, 1]], np.uint8)
    after = np.array([[1, 2, 2], [1, 2, 3]], np.uint8)
    changes = class_changes(before, after)
    assert (changes.total, changes.changed) == (6, 3)
    assert changes.gained == {1: 1, 2: 1, 3: 1}
    text = changes.describe({1: "background", 2: "nucleus"})
    assert text.startswith("3 pixels (50 %) changed class")
    assert "1 to nucleus" in text and "1 to class 3" in text


def test_every_pixel_changed_reads_100_percent():
    before = np.ones((128, 128), np.uint8)
    assert class_changes(before, before + 1).describe().startswith("16,384 pixels (100 %) changed")
    after = before.copy()
    after[:2, :2] = 2
    assert "(0.024 %)" in class_changes(before, after).describe()
    after = np.full_like(before, 2)
    after[0, 0] = 1
    assert "(>99 %)" in class_changes(before, after).describe()
    large = np.ones((200, 600), np.uint8)
    one_more = large.copy()
    one_more[5, 5] = 2
    assert "1 pixel (<0.01 %) changed" in class_changes(large, one_more).describe()


def test_class_changes_without_change_and_with_wrong_shapes():
    mask = np.ones((4, 4), np.uint8)
    assert class_changes(mask, mask).describe() == "no pixel changed class (of 16)"
    with pytest.raises(ValueError, match="differ in shape"):
        class_changes(mask, mask[:2])


def test_stroke_agreement_counts_painted_pixels_called_as_painted():
    strokes = np.array([[0, 1, 1, 0], [2, 2, 0, 3], [0, 0, 0, 0]], np.uint8)
    before = np.array([[2, 2, 1, 2], [1, 2, 2, 1], [1, 1, 1, 1]], np.uint8)
    after = np.array([[1, 1, 1, 1], [2, 2, 2, 3], [2, 2, 2, 2]], np.uint8)
    agreement = stroke_agreement(strokes, before, after)
    assert (agreement.painted, agreement.right_before, agreement.right_after) == (5, 2, 5)
    text = agreement.describe()
    assert text == (
        "the model's most probable class now matches 100 % (before: 40 %) of your 5 painted "
        "pixels, which it trained on"
    )
    first = agreement.describe(first_run=True, pixels="labelled")
    assert first == (
        "the model's most probable class matches 100 % of your 5 labelled pixels, "
        "which it trained on"
    )
    assert with_strokes("said", agreement, first_run=False) == f"{text}; said"
    assert with_strokes("said", agreement, first_run=True, pixels="labelled") == f"{first}; said"
    assert with_strokes("said", None, first_run=False) == "said"
    assert class_changes(before, after, strokes).strokes == agreement
    assert class_changes(before, after).strokes is None  # not asked for


def test_stroke_agreement_says_what_predict_s_threshold_leaves_of_the_strokes():
    strokes = np.array([[1, 1, 1, 1], [2, 2, 0, 0]], np.uint8)
    after = np.array([[1, 1, 1, 1], [2, 2, 2, 2]], np.uint8)  # every stroke right
    shown = np.array([[2, 2, 2, 1], [2, 2, 2, 2]], np.uint8)  # grown over 3 membrane pixels
    agreement = class_changes(after, after, strokes, (shown, None)).strokes
    assert (agreement.right_after, agreement.right_shown) == (6, 3)
    assert class_changes(after, after, strokes, shown=shown).strokes == agreement  # one mask
    membrane = ("membrane", 0.87)
    assert agreement.describe(first_run=True, threshold=membrane) == (
        "the model's most probable class matches 100 % of your 6 painted pixels, which it "
        "trained on; Predict's mask, which draws membrane only where the model is at least "
        "87 % sure, matches 50 % of them"
    )
    assert "Predict's mask" not in agreement.describe()  # no threshold given: not said
    before = np.full_like(shown, 2)  # the mask before drew no membrane there
    tuned = class_changes(after, after, strokes, (shown, before)).strokes
    assert tuned.right_shown_before == 2
    assert tuned.describe(threshold=membrane).endswith(
        "which it trained on; Predict's mask, which draws membrane only where the model is "
        "at least 87 % sure, matches 50 % of them (before: 33 %)"
    )
    same = stroke_agreement(strokes, after, after, after)
    assert same.right_shown == 6 and "Predict's mask" not in same.describe(threshold=membrane)
    with pytest.raises(ValueError, match="painted"):
        StrokeAgreement(6, 0, 6, right_shown=7)
    with pytest.raises(ValueError, match="painted"):
        StrokeAgreement(6, 0, 6, right_shown=3, right_shown_before=-1)


def test_stroke_agreement_never_rounds_to_all_or_none_and_refuses_impossible_counts():
    assert "matches >99 % (before: <1 %) of your 200" in StrokeAgreement(200, 1, 199).describe()
    assert "matches 100 % (before: 0 %)" in StrokeAgreement(200, 0, 200).describe()
    for counts in ((0, 0, 0), (5, 6, 0), (5, 0, -1)):
        with pytest.raises(ValueError, match="painted"):
            StrokeAgreement(*counts)


def test_stroke_agreement_of_an_unpainted_plane_and_of_wrong_shapes():
    mask = np.ones((4, 4), np.uint8)
    assert stroke_agreement(np.zeros_like(mask), mask, mask) is None
    assert class_changes(mask, mask, np.zeros_like(mask)).strokes is None
    with pytest.raises(ValueError, match="strokes of shape"):
        stroke_agreement(np.zeros((2, 2), np.uint8), mask, mask)
    with pytest.raises(ValueError, match="differ in shape"):
        stroke_agreement(mask, mask, mask[:2])


def _block() -> np.ndarray:
    """A (40, 60) class mask with one 20 x 40 object."""
    mask = np.ones((40, 60), np.uint8)
    mask[10:30, 10:50] = 2
    return mask


def test_object_changes_marks_a_cut_on_its_line_and_a_join_on_the_closed_gap():
    whole = _block()
    cut = whole.copy()
    cut[10:30, 30] = 1  # a one-pixel line across the object
    cut[10, 10:50] = 1  # and its top row lost: a rim, not a second change
    split = object_changes(whole, cut)
    assert split.split.shape == (1, 2) and split.merged.shape == (0, 2)
    assert abs(split.split[0, 1] - 30) < 0.5 and 10 <= split.split[0, 0] <= 30
    assert split.describe() == "since the last mask 1 object split, 0 joined"
    joined = object_changes(cut, whole)
    assert joined.split.shape == (0, 2) and joined.merged.shape == (1, 2)
    assert abs(joined.merged[0, 1] - 30) < 0.5
    np.testing.assert_array_equal(joined.points, joined.merged)


def test_object_changes_ignores_small_parts_and_unchanged_masks():
    whole = _block()
    assert len(object_changes(whole, whole).points) == 0
    nicked = whole.copy()
    nicked[10:15, 14] = 1
    nicked[14, 10:15] = 1  # cut off: a 4 x 4 corner, under min_part pixels
    assert len(object_changes(whole, nicked).points) == 0
    assert len(object_changes(whole, nicked, min_part=10, min_share=0.0).points) == 1


def _cells() -> np.ndarray:
    """A (100, 260) class mask: a 60 x 60 cell (3,600 px) and 12 cells of 20 x 20 (400 px),
    the first 2 px right of the large one."""
    mask = np.ones((100, 260), np.uint8)
    mask[20:80, 20:80] = 2
    for index in range(12):
        row, column = divmod(index, 6)
        mask[20 + 40 * row : 40 + 40 * row, 82 + 30 * column : 102 + 30 * column] = 2
    return mask


def test_a_small_part_cut_off_a_large_cell_is_a_split_a_grown_neighbour_is_not():
    before = _cells()
    cut = before.copy()
    cut[20:80, 25] = 1  # 300 px cut off the 3,600 px cell: 8 %, a part all the same
    changes = object_changes(before, cut)
    assert len(changes.split) == 1 and len(changes.merged) == 0
    assert abs(changes.split[0, 1] - 25) < 0.5
    grown = before.copy()
    grown[20:40, 79:82] = 2  # the neighbour takes 20 px of the large cell's rim,
    grown[20:41, 78] = grown[40, 79] = 1  # apart from what is left of it
    assert len(object_changes(before, grown).points) == 0


def test_a_fragment_taken_into_a_cell_is_no_join():
    before = _cells()
    before[10:15, 30:36] = 2  # a 30 px fragment 5 px above the large cell
    after = before.copy()
    after[15:20, 32:34] = 2  # taken into it by a bridge
    assert len(object_changes(before, after).merged) == 0  # under a tenth of the median cell
    assert len(object_changes(before, after, min_share=0.05).merged) == 1


def test_object_changes_plane_by_plane_and_shapes_checked():
    whole = _block()
    cut = whole.copy()
    cut[10:30, 30] = 1
    changes = object_changes(np.stack([whole, whole, cut]), np.stack([cut, whole, cut]))
    assert changes.split.shape == (1, 3) and changes.split[0, 0] == 0  # the first plane only
    assert len(changes.merged) == 0
    with pytest.raises(ValueError, match="differ in shape"):
        object_changes(whole, whole[:, :30])


def test_object_changes_marks_a_wide_cut_and_a_wide_bridge_never_nan():
    """No pixel lies within 2 px of both parts: the band's or bridge's centroid instead."""
    whole = _block()
    cut = whole.copy()
    cut[10:30, 27:34] = 1  # a 7-pixel band across the object
    apart = _block()
    apart[10:30, 27:33] = 1  # two objects 6 px apart
    bridged = apart.copy()
    bridged[15:25, 27:33] = 2  # joined by a 10 x 6 bridge
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # center_of_mass of nothing warns
        split = object_changes(whole, cut)
        joined = object_changes(apart, bridged)
    np.testing.assert_allclose(split.split, [[19.5, 30.0]])
    np.testing.assert_allclose(joined.merged, [[19.5, 29.5]])
    assert len(split.merged) == len(joined.split) == 0
    for points in (
        split.points,
        joined.points,
        object_changes(np.stack([whole]), np.stack([cut])).points,
    ):
        assert np.isfinite(points).all()


def test_object_changes_counts_the_objects_that_appeared_and_vanished():
    whole = _block()
    more = whole.copy()
    more[2:8, 2:8] = 2  # a new 36-pixel object where there was background
    more[2:5, 55:58] = 2  # 9 pixels: under min_part, not counted
    changes = object_changes(whole, more)
    assert (changes.appeared, changes.vanished) == (1, 0)
    assert changes.describe() == "since the last mask 0 objects split, 0 joined, 1 new, 0 gone"
    back = object_changes(more, whole)
    assert (back.appeared, back.vanished) == (0, 1)
    assert (
        object_changes(whole, whole).describe() == "since the last mask no object split or joined"
    )


def test_a_first_runs_shares_name_the_share_then_the_class():
    before = np.ones((10, 10), np.uint8)
    after = before.copy()
    after[:2] = 2
    names = {1: "background", 2: "nucleus"}
    said = class_changes(before, after).describe_shares(names)
    assert said == "the model now calls 80 % of the pixels background, 20 % nucleus"
    assert class_changes(after, before).describe_shares(names) == (
        "the model now calls every pixel background"
    )

import numpy as np

from napari_unet.evaluation.annotator import (
    StrokeBudget,
    corrective_strokes,
    instance_error_priority,
)


def _scene():
    truth = np.ones((64, 64), np.uint8)
    truth[10:40, 10:40] = 2  # one large object
    prediction = truth.copy()
    prediction[10:40, 10:25] = 1  # its left half is missed
    prediction[50:60, 45:60] = 2  # a false object
    region = np.ones(truth.shape, bool)
    return prediction, truth, region


def test_strokes_hold_the_true_class_and_lie_on_the_errors():
    prediction, truth, region = _scene()
    annotation = np.zeros(truth.shape, np.uint8)
    result = corrective_strokes(prediction, truth, region, annotation, np.random.default_rng(0))
    painted = result > 0
    assert painted.any() and not annotation.any()  # the input is not modified
    assert np.array_equal(result[painted], truth[painted])
    assert set(np.unique(result[painted])) == {1, 2}  # both classes corrected
    assert painted[10:40, 10:25].any() and painted[50:60, 45:60].any()
    assert not painted[10:40, 27:40].any()  # at most a brush width into the correct half


def test_budget_limits_pixels_and_strokes():
    prediction, truth, region = _scene()
    budget = StrokeBudget(fraction=0.01, max_strokes=1, widths=(3,))
    annotation = np.zeros(truth.shape, np.uint8)
    result = corrective_strokes(
        prediction, truth, region, annotation, np.random.default_rng(0), budget
    )
    # one stroke, plus one of the class the round left out so fine-tuning can start
    assert 0 < np.count_nonzero(result == 2) <= int(0.01 * truth.size)
    assert np.count_nonzero(result == 1) > 0


def test_nothing_is_painted_outside_the_region_and_old_strokes_are_kept():
    prediction, truth, _ = _scene()
    region = np.zeros(truth.shape, bool)
    region[:, :32] = True
    annotation = np.zeros(truth.shape, np.uint8)
    annotation[0, 0] = 1
    result = corrective_strokes(prediction, truth, region, annotation, np.random.default_rng(1))
    assert result[0, 0] == 1
    assert not result[:, 32:].any()
    assert (result[:, :32] == 2).any()


def test_priority_picks_which_error_is_painted_first():
    prediction, truth, region = _scene()
    priority = np.zeros(truth.shape)
    priority[50:60, 45:60] = 100.0  # the small false object is the most uncertain
    budget = StrokeBudget(max_strokes=1, widths=(1,))
    result = corrective_strokes(
        prediction, truth, region, np.zeros_like(truth), np.random.default_rng(0), budget,
        priority=priority,
    )  # fmt: skip
    assert (result[50:60, 45:60] == 1).any()


def _merge_and_split_scene():
    """Truth: two cells side by side (a 2-px boundary between them) and one more cell.
    Prediction: the first two merged through a gap, the third cut in two."""
    truth = np.ones((60, 90), np.uint8)
    truth[5:25, 5:25] = 2
    truth[5:25, 27:47] = 2
    truth[35:55, 5:45] = 2
    prediction = truth.copy()
    prediction[12:18, 25:27] = 2  # the gap that merges the first two
    prediction[35:55, 24:26] = 1  # the cut through the third
    prediction[40:50, 60:80] = 2  # a false object: wrong, but joins nothing
    return prediction, truth


def test_instance_error_priority_marks_the_gap_and_the_cut():
    prediction, truth = _merge_and_split_scene()
    priority = instance_error_priority(prediction, truth, weight=100.0)
    assert priority.dtype == np.float32 and priority.shape == truth.shape
    marked = priority > 1
    gap = np.zeros(truth.shape, bool)
    gap[12:18, 25:27] = True
    cut = np.zeros(truth.shape, bool)
    cut[35:55, 24:26] = True
    assert np.array_equal(marked, gap | cut)
    assert np.all(priority[marked] == 101.0) and np.all(priority[~marked] == 1.0)


def test_instance_error_priority_ignores_small_overlaps():
    prediction, truth = _merge_and_split_scene()
    prediction[5:25, 25:29] = 1  # the second cell predicted 2 px narrower, apart
    prediction[10:16, 25:28] = 2  # the first reaches 1 px into the second's truth: 6 px
    marked = instance_error_priority(prediction, truth, min_overlap=20) > 1
    assert not marked[:30].any()  # an overlap under min_overlap joins nothing
    assert marked[35:55, 24:26].all()
    assert (instance_error_priority(prediction, truth, min_overlap=5)[10:16, 25:27] > 1).all()


def test_instance_priority_puts_the_merge_first():
    prediction, truth = _merge_and_split_scene()
    budget = StrokeBudget(fraction=0.05, max_strokes=1, widths=(1,))
    region = np.ones(truth.shape, bool)
    plain = corrective_strokes(
        prediction, truth, region, np.zeros_like(truth), np.random.default_rng(0), budget
    )
    ranked = corrective_strokes(
        prediction, truth, region, np.zeros_like(truth), np.random.default_rng(0), budget,
        priority=instance_error_priority(prediction, truth),
    )  # fmt: skip
    gap = np.zeros(truth.shape, bool)
    gap[12:18, 25:27] = True
    false_object = np.zeros(truth.shape, bool)
    false_object[40:50, 60:80] = True
    assert (plain[false_object] == 1).any() and not plain[gap].any()  # by size
    assert (ranked[gap] == 1).any() and not ranked[false_object].any()  # by cause


def test_a_sloppy_wide_stroke_spills_over_the_edge_of_a_thin_structure():
    truth = np.full((40, 40), 2, np.uint8)
    truth[:, 19:22] = 1  # a 3-px membrane, all of it predicted as cell
    prediction = np.full(truth.shape, 2, np.uint8)
    region = np.ones(truth.shape, bool)
    painted = {}
    for exact in (True, False):
        budget = StrokeBudget(fraction=0.5, max_strokes=1, widths=(9,), exact=exact)
        painted[exact] = corrective_strokes(
            prediction, truth, region, np.zeros_like(truth), np.random.default_rng(0), budget
        )  # fmt: skip
    membrane_strokes = {exact: result == 1 for exact, result in painted.items()}
    assert membrane_strokes[True].any() and np.all(truth[membrane_strokes[True]] == 1)
    spilt = membrane_strokes[False] & (truth == 2)  # membrane painted on cell pixels
    assert np.count_nonzero(spilt) > np.count_nonzero(membrane_strokes[False] & (truth == 1))
    assert not spilt[:, :15].any() and not spilt[:, 26:].any()  # within the brush's reach

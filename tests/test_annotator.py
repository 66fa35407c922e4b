import numpy as np

from napari_unet.evaluation.annotator import StrokeBudget, corrective_strokes


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

"""The Evaluate panel of the Predict section: metrics of the prediction against a truth layer."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import as_trained, tiny_model
from napari_unet._widgets import PredictWidget, model_state
from napari_unet.evaluation.matching import match_instances
from napari_unet.evaluation.metrics import evaluate

pytestmark = pytest.mark.gui


def _predict_widget(viewer, image: str) -> PredictWidget:
    """Predict on ``image`` with a tiny model on the CPU, scored against "truth"."""
    widget = PredictWidget(viewer)
    model_state(viewer).set_model(tiny_model(), "tiny")
    widget.image_picker.combo.value = viewer.layers[image]
    widget.device.value = "cpu"
    widget.evaluation.truth_picker.combo.value = viewer.layers["truth"]
    return widget


def _blobs(viewer) -> np.ndarray:
    """Add two blobs as the image "blobs" and their labels (1, 2) as "truth"; returns these."""
    truth = np.zeros((64, 64), np.uint32)
    truth[8:24, 8:24], truth[40:56, 30:50] = 1, 2
    viewer.add_image(truth.astype(np.float32) > 0, name="blobs")
    viewer.add_labels(truth, name="truth")
    return truth


def test_metrics_of_the_prediction_against_a_truth_layer(make_napari_viewer, qtbot, notifications):
    viewer = make_napari_viewer()
    truth = _blobs(viewer)
    widget = _predict_widget(viewer, "blobs")
    assert widget.evaluation.run() is None  # nothing predicted yet: a notification, no crash
    assert any("Run Predict" in str(n.message) for n in notifications)

    with qtbot.waitSignal(widget.finished, timeout=30_000):
        widget.run_prediction()
    scores = widget.evaluation.run()
    predicted = viewer.layers["blobs instances"].data
    expected = match_instances(predicted, truth, threshold=0.5)
    at_half = next(row for row in scores["instances"] if row["threshold"] == 0.5)
    assert at_half["f1"] == pytest.approx(expected["f1"])
    assert "F1" in widget.evaluation.result.text()

    # a prediction of known quality: object 1 found, object 2 missed, one object extra
    partial = np.zeros_like(truth)
    partial[8:24, 8:24], partial[0:6, 58:64] = 5, 9
    viewer.layers["blobs instances"].data = partial
    at_half = next(r for r in widget.evaluation.run()["instances"] if r["threshold"] == 0.5)
    assert (at_half["tp"], at_half["fp"], at_half["fn"]) == (1, 1, 1)
    assert at_half["f1"] == pytest.approx(0.5) and at_half["mean_matched_iou"] == 1.0
    assert "F1 0.500" in widget.evaluation.result.text()

    widget.evaluation.kind.value = "semantic"  # truth read as 0 not scored, 1 and 2 classes
    mask = viewer.layers["blobs mask"].data
    assert widget.evaluation.run() == evaluate(mask, truth, "semantic")
    known = np.ones_like(mask)
    known[40:56, 30:40] = 2  # class 2 on half of its region, class 1 everywhere else
    viewer.layers["blobs mask"].data = known
    semantic = widget.evaluation.run()
    scored = 16 * 16 + 16 * 20
    assert semantic["pixel_error"] == pytest.approx(160 / scored)  # the other half is wrong
    assert semantic["iou"]["2"] == pytest.approx(0.5)
    assert semantic["iou"]["1"] == pytest.approx(256 / (256 + 160))
    assert np.array_equal(viewer.layers["truth"].data, truth)  # the user's layer is untouched


def test_evaluates_the_stack_slice_in_view_beside_a_deeper_stack(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    truth = np.zeros((3, 48, 48), np.uint32)
    truth[:, 8:24, 8:24] = 1
    truth[2, 30:44, 30:44] = 2  # only the last slice has a second object
    viewer.add_image((truth > 0).astype(np.float32), name="stack")
    viewer.add_labels(truth, name="truth")
    viewer.add_image(np.zeros((10, 48, 48), np.float32), name="deeper")
    widget = _predict_widget(viewer, "stack")
    with qtbot.waitSignal(widget.finished, timeout=30_000):
        widget.run_prediction()
    viewer.dims.set_current_step(0, 7)  # beyond the 3 slices of the stack: its last slice
    scores = widget.evaluation.run()
    predicted = viewer.layers["stack instances"].data[2]
    expected = match_instances(predicted, truth[2], threshold=0.5)
    at_half = next(row for row in scores["instances"] if row["threshold"] == 0.5)
    assert (at_half["tp"] + at_half["fn"], at_half["f1"]) == (2, pytest.approx(expected["f1"]))


def test_only_away_from_the_strokes_leaves_out_the_objects_painted_on(make_napari_viewer, qtbot):
    from napari_unet._widgets._annotation_combo import IMAGE_KEY
    from napari_unet._widgets._layers import ANNOTATION_KEY

    viewer = make_napari_viewer()
    truth = _blobs(viewer)
    strokes = viewer.add_labels(np.zeros((64, 64), np.uint8), name="blobs annotations")
    strokes.metadata.update({ANNOTATION_KEY: True, IMAGE_KEY: viewer.layers["blobs"].unique_id})
    widget = _predict_widget(viewer, "blobs")
    with qtbot.waitSignal(widget.finished, timeout=30_000):
        widget.run_prediction()
    partial = np.zeros_like(truth)  # object 1 found, object 2 missed, one object extra
    partial[8:24, 8:24], partial[0:6, 58:64] = 5, 9
    viewer.layers["blobs instances"].data = partial
    evaluation = widget.evaluation
    evaluation.away.value = True
    assert evaluation.run()["instances"][0]["fn"] == 1  # nothing painted: all scored
    assert "no strokes here: all of it scored" in evaluation.result.text()
    strokes.data[47:49, 36:44] = 2  # painted on the missed object
    strokes.refresh()
    at_half = next(r for r in evaluation.run()["instances"] if r["threshold"] == 0.5)
    assert (at_half["tp"], at_half["fp"], at_half["fn"]) == (1, 1, 0)
    said = evaluation.result.text()
    assert "F1 0.667" in said and "away from the strokes: 1 true object near them left out" in said
    strokes.data = strokes.data  # painted on again: the part left out may differ
    assert evaluation.result.text() == ""
    evaluation.run()
    evaluation.away.value = False  # the whole image again: the scores shown go
    assert evaluation.result.text() == ""
    at_half = next(r for r in evaluation.run()["instances"] if r["threshold"] == 0.5)
    assert (at_half["tp"], at_half["fp"], at_half["fn"]) == (1, 1, 1)


def test_a_mask_of_another_model_is_scored_beside_the_last_ones(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    _blobs(viewer)
    widget = _predict_widget(viewer, "blobs")
    evaluation, state = widget.evaluation, model_state(viewer)
    state.set_model(as_trained(tiny_model(seed=1)), "first")
    with qtbot.waitSignal(widget.finished, timeout=30_000):
        widget.run_prediction()
    first = next(r for r in evaluation.run()["instances"] if r["threshold"] == 0.5)
    assert "Before" not in evaluation.result.text()  # nothing scored before
    state.set_model(as_trained(tiny_model(seed=2)), "second")
    state.model.metadata["training_history"].append({"iterations": 100})  # another lineage
    with qtbot.waitSignal(widget.finished, timeout=30_000):
        widget.run_prediction()
    assert evaluation.result.text() == ""  # a new mask: the old scores went
    evaluation.run()
    before = (
        f"Before, with “first”: F1 {first['f1']:.3f}, "
        f"mean matched IoU {first['mean_matched_iou']:.3f}."
    )
    assert evaluation.result.text().endswith(f"\n{before}")
    assert "This is" not in evaluation.result.text()  # the current model's own mask
    state.set_model(state.history[-1].model, "first")  # back to the first (as Go back does)
    evaluation.run()  # the second's mask is still shown: said, with what to do
    assert "\nThis is “second”'s mask, not the current model “first”'s: Predict again" in (
        evaluation.result.text()
    )
    evaluation.kind.value = "membranes"  # another scoring: nothing to compare with yet
    evaluation.run()
    assert "Before" not in evaluation.result.text()

"""Evaluate scores every slice of a stack when asked, in a worker thread that can be
cancelled; the core's evaluate_stack averages the ISBI errors over the slices."""

from __future__ import annotations

import numpy as np
import pytest
from napari.layers import Image, Labels

from napari_unet._widgets import _evaluate_job
from napari_unet._widgets._evaluate import EvaluatePanel
from napari_unet._widgets._evaluate_job import EVALUATE
from napari_unet._widgets._evaluate_text import format_scores
from napari_unet._widgets._last_mask import remember_model
from napari_unet._widgets._layers import LayerCombo, show_output
from napari_unet.core.cancellation import Cancelled
from napari_unet.evaluation.metrics import evaluate
from napari_unet.evaluation.stack import evaluate_stack
from test_evaluate_slices import stack_panel


def drive(steps):
    """The updates of a generator and what it returned."""
    updates = []
    try:
        while True:
            updates.append(next(steps))
    except StopIteration as end:
        return updates, end.value


def membrane_stack(slices: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """ISBI-style truth (255 interior, 0 membrane) and a prediction off by one slice's shift."""
    truth = np.full((slices, 24, 24), 255, np.uint8)
    truth[:, :, 11] = 0
    truth[:, 11, :] = 0
    pred = truth.copy()
    pred[1, 11, :] = 255  # slice 1 merges two pairs of cells
    return pred, truth


def test_membranes_of_a_stack_are_the_means_of_each_slices_errors():
    pred, truth = membrane_stack()
    updates, scores = drive(evaluate_stack(pred, truth, "membranes"))
    assert updates == [(0, 3), (1, 3), (2, 3), (3, 3)]
    per_slice = [evaluate(p, t, kind="membranes") for p, t in zip(pred, truth)]
    for key in ("pixel_error", "rand_error", "info_error"):
        assert scores[key] == pytest.approx(np.mean([s[key] for s in per_slice]))
    assert scores["rand_error"] > 0 and scores["slices"] == 3 and scores["kind"] == "membranes"
    ignore = np.zeros(truth.shape, bool)
    ignore[1] = True  # slice 1 left out: no error is left
    _, away = drive(evaluate_stack(pred, truth, "membranes", ignore))
    assert away["pixel_error"] == 0 and away["rand_error"] == pytest.approx(0, abs=1e-12)


def test_instances_of_a_stack_are_evaluate_of_the_whole_stack_and_leading_axes_flatten():
    truth = np.zeros((2, 2, 16, 16), np.uint32)
    truth[..., 2:6, 2:6], truth[..., 9:14, 9:14] = 1, 2
    pred = truth.copy()
    pred[0, 1] = 0  # one slice of four predicts nothing
    updates, scores = drive(evaluate_stack(pred, truth, "instances"))
    assert updates[0] == (0, 4) and updates[-1] == (4, 4) and scores["slices"] == 4
    expected = evaluate(pred.reshape(4, 16, 16), truth.reshape(4, 16, 16), kind="instances")
    assert scores["instances"] == expected["instances"]
    row = next(r for r in scores["instances"] if r["threshold"] == 0.5)
    assert (row["tp"], row["fn"]) == (6, 2)


def test_a_stop_ends_it_between_slices_and_shapes_are_checked():
    pred, truth = membrane_stack()
    polled = []

    def stop() -> bool:
        polled.append(True)
        return len(polled) > 1

    steps = evaluate_stack(pred, truth, "membranes", stop=stop)
    with pytest.raises(Cancelled, match="after 1 of 3 slices"):
        drive(steps)
    with pytest.raises(ValueError, match="of one shape"):
        drive(evaluate_stack(pred, truth[:2], "membranes"))


@pytest.mark.gui
def test_all_slices_of_a_stack_are_scored_in_a_worker(make_napari_viewer, qtbot):
    viewer, panel = stack_panel(make_napari_viewer)
    assert not panel.all_slices.native.isHidden() and not panel.all_slices.value  # in view first
    panel.all_slices.value = True
    with qtbot.waitSignal(panel.finished, timeout=10_000):
        assert panel.run() is None  # the scores come from the worker
        assert panel.evaluate_button.text == "Cancel" and not panel.stack.bar.isHidden()
    predicted = viewer.layers["stack instances"].data
    expected = format_scores(evaluate(predicted, viewer.layers["truth"].data, kind="instances"))
    assert panel.result.text() == f"All 3 slices, a{expected[1:]}"
    assert "F1 0.500" in panel.result.text()  # slice 1 of 3 predicted: 2 matched, 4 missed
    assert panel.evaluate_button.text == EVALUATE and panel.stack.bar.isHidden()
    viewer.dims.set_current_step(0, 2)
    assert panel.result.text().startswith("All 3 slices")  # not "another slice in view"
    panel.all_slices.value = False  # back to the slice in view: at once
    assert panel.run() is not None and panel.result.text().startswith("Slice 2, at IoU 0.5")


def _cancelled_while_scoring(make_napari_viewer, qtbot, monkeypatch, ends):
    """The panel of a stack, All slices pressed and then Cancel while the (stubbed) scoring
    waits for the stop flag; ``ends(pred, truth, kind)`` is what the scoring does then."""

    def waits_for_cancel(pred, truth, kind, ignore=None, stop=None):
        yield 0, len(pred)
        stop.__self__.wait(10)  # the panel's stop flag (its is_set method's event)
        return ends(pred, truth, kind)

    monkeypatch.setattr(_evaluate_job, "evaluate_stack", waits_for_cancel)
    _, panel = stack_panel(make_napari_viewer)
    panel.all_slices.value = True
    with qtbot.waitSignal(panel.finished, timeout=10_000):
        panel.run()
        panel.evaluate_button.changed.emit(True)  # the button reads Cancel: pressed
        assert panel.result.text() == "Cancelling…"
        assert not panel.evaluate_button.enabled  # a second press would do nothing
    assert panel.result.text() == "Scoring cancelled: no scores shown."
    assert panel.evaluate_button.enabled and panel.evaluate_button.text == EVALUATE
    return panel


@pytest.mark.gui
def test_scoring_all_slices_can_be_cancelled(make_napari_viewer, qtbot, monkeypatch):
    def raises(*_):
        raise Cancelled("cancelled")

    _cancelled_while_scoring(make_napari_viewer, qtbot, monkeypatch, raises)


@pytest.mark.gui
def test_scores_that_come_after_a_cancel_are_not_shown(make_napari_viewer, qtbot, monkeypatch):
    """Objects and classes are scored in one call: a cancel (or a new prediction, another
    kind: the panel cleared) cannot stop it, and its scores came after, as if current."""
    panel = _cancelled_while_scoring(make_napari_viewer, qtbot, monkeypatch, evaluate)
    with qtbot.waitSignal(panel.finished, timeout=10_000):
        panel.run()
        panel.kind.value = "semantic" if panel.kind.value != "semantic" else "instances"
    assert "F1" not in panel.result.text() and "IoU" not in panel.result.text()


@pytest.mark.gui
def test_all_slices_is_offered_for_stacks_only(make_napari_viewer):
    viewer = make_napari_viewer()
    truth = np.zeros((32, 32), np.uint32)
    image = viewer.add_image(truth.astype(np.float32), name="single")
    placement = {"scale": [1.0, 1.0], "translate": [0.0, 0.0]}
    show_output(viewer, image, "instances", truth.copy(), Labels, placement=placement)
    panel = EvaluatePanel(viewer, LayerCombo(viewer, Image, "Image"))
    panel.image_picker.combo.value = image
    assert panel.all_slices.native.isHidden()


@pytest.mark.gui
def test_all_slices_of_membranes_say_they_are_means(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    pred, truth = membrane_stack()
    image = viewer.add_image(truth.astype(np.float32), name="em")
    viewer.add_labels(truth.astype(np.uint8), name="truth")
    mask = np.where(pred > 0, 2, 1).astype(np.uint8)  # as Predict's mask: 1 membrane, 2 cell
    placement = {"scale": [1.0] * 3, "translate": [0.0] * 3}
    layer = show_output(viewer, image, "mask", mask, Labels, placement=placement)
    remember_model(layer, ["first"], model_name="first")
    panel = EvaluatePanel(viewer, LayerCombo(viewer, Image, "Image"))
    panel.image_picker.combo.value = image
    panel.truth_picker.combo.value = viewer.layers["truth"]
    panel.kind.value, panel.all_slices.value = "membranes", True
    with qtbot.waitSignal(panel.finished, timeout=10_000):
        panel.run()
    _, scores = drive(evaluate_stack(mask, truth, "membranes"))
    expected = format_scores({**scores, "note": "the means of the slices' errors"})
    assert panel.result.text() == f"All 3 slices: {expected}"
    assert panel.result.text().count("(") == 1
    assert scores["rand_errors"] == [evaluate(p, t, kind="membranes")["rand_error"]
                                     for p, t in zip(mask, truth)]  # fmt: skip
    worse = mask.copy()
    worse[2, :, 11] = 2  # another model's mask merges the cells of slice 2 too
    layer.data = worse
    remember_model(layer, ["first", "second"], model_name="second")
    with qtbot.waitSignal(panel.finished, timeout=10_000):
        panel.run()
    _, after = drive(evaluate_stack(worse, truth, "membranes"))
    rise = f"{scores['rand_errors'][2]:.4f} → {after['rand_errors'][2]:.4f}"
    assert panel.result.text().endswith(f"Slice 2's rand error rose the most: {rise}.")

"""Fixes from a UI review of the dock: the user's brush, stale status lines, refusals that
come before a worker starts, what the controls show of their state."""

from __future__ import annotations

import numpy as np
import pytest
from napari.layers import Labels

from helpers import annotate, as_trained, run, tiny_model
from napari_unet._widgets import _finetune, model_state
from napari_unet._widgets._evaluate import EvaluatePanel
from napari_unet._widgets._finetune_job import FinetuneUpdate
from napari_unet._widgets._layers import show_output
from napari_unet._widgets._plot import LossPlot
from napari_unet._widgets._predict_text import SEE_THROUGH_OPACITY

pytestmark = pytest.mark.gui

PLACEMENT = {"scale": [1.0, 1.0], "translate": [0.0, 0.0]}


def tiny_finetune(qtbot, widget) -> None:
    """Annotate the discs and fine-tune for 2 iterations (live preview on)."""
    widget.finetune.settings.iterations.value = 2
    run(qtbot, widget.finetune, widget.finetune.start_finetune)


def test_the_preview_layer_leaves_the_annotations_active(qtbot, dock, notifications):
    viewer, widget = dock
    widget.model.state.model.metadata["class_names"] = ["background", "disc"]
    layer = annotate(viewer, widget)
    assert viewer.layers.selection.active is layer and layer.mode == "paint"
    assert widget.finetune.settings.live_preview.value
    tiny_finetune(qtbot, widget)
    assert "discs preview" in viewer.layers  # added while the user may be painting
    explained = [note.message for note in notifications if "Live preview" in note.message]
    assert explained == [
        "Live preview: “discs preview” shows, as it trains, where the model sees disc: "
        "brighter where it is surer, dark for background. Predict hides it."
    ]
    tiny_finetune(qtbot, widget)  # the same layer again: explained once
    assert sum("Live preview" in note.message for note in notifications) == 1
    assert viewer.layers.selection.active is layer  # the brush still paints
    assert set(viewer.layers.selection) == {layer}


def show_loss_weights(qtbot, viewer, widget):
    """Annotate the discs, show their loss weights; returns (annotations, weights layer)."""
    layer = annotate(viewer, widget)
    with qtbot.waitSignal(widget.finetune.loss_weights.finished, timeout=20_000):
        assert widget.finetune.loss_weights.show() is not None
    return layer, viewer.layers["discs loss weights"]


def test_loss_weights_leave_the_annotations_active(qtbot, dock):
    viewer, widget = dock
    layer, _weights = show_loss_weights(qtbot, viewer, widget)
    assert viewer.layers.selection.active is layer


def test_loss_weights_are_black_where_the_weight_is_0(qtbot, dock):
    viewer, widget = dock
    layer, weights = show_loss_weights(qtbot, viewer, widget)
    assert weights.blending == "additive"
    black = weights.colormap.map(np.array([0.0]))[0]
    np.testing.assert_allclose(black[:3], 0.0, atol=0.02)  # was viridis: dark purple
    assert np.all(weights.data[layer.data == 0] == 0)  # the unpainted pixels add nothing


def test_go_back_says_the_model_is_the_one_before_and_to_predict_again(qtbot, dock):
    viewer, widget = dock
    annotate(viewer, widget)
    tiny_finetune(qtbot, widget)
    finetune = widget.finetune
    assert "not learnt" in finetune.status.text() and finetune.back_button.enabled
    assert "Go back" not in finetune.status.text()  # back to random weights: no prompt
    finetune.back_button.native.click()
    said = finetune.status.text()
    assert not finetune.back_button.enabled
    assert "Worse than before" not in said, said
    assert "Back to “tiny”, the model before this training run" in said and "Predict again" in said
    assert "the one it made is dropped" in said
    assert "A mask predicted with the dropped model, if any, shows its results" in said


def test_the_go_back_line_goes_when_another_model_is_loaded(qtbot, dock):
    viewer, widget = dock
    annotate(viewer, widget)
    tiny_finetune(qtbot, widget)
    widget.finetune.back_button.native.click()
    assert widget.finetune.status.text().startswith("Back to “tiny”")
    widget.model.use_model(tiny_model(seed=1), "other")
    assert widget.finetune.status.text() == "“other” is the current model now."


def test_go_back_hides_the_rings_of_what_the_undone_model_changed(qtbot, dock):
    from napari.layers import Points

    from napari_unet._widgets._layers import show_output

    viewer, widget = dock
    annotate(viewer, widget)
    tiny_finetune(qtbot, widget)
    where = np.array([[5.0, 5.0]])
    rings = show_output(viewer, viewer.layers["discs"], "changes", where, Points, placement={})
    assert rings.visible
    widget.finetune.back_button.native.click()
    assert not rings.visible


def test_going_back_in_the_model_section_updates_the_finetune_status(qtbot, dock):
    viewer, widget = dock
    annotate(viewer, widget)
    tiny_finetune(qtbot, widget)
    model_state(viewer).go_back()  # what the Model section's Go back does
    assert widget.finetune.status.text().startswith("Back to “tiny”")


def test_the_stopping_line_stays_while_the_run_stops(qtbot, dock, monkeypatch):
    viewer, widget = dock
    annotate(viewer, widget)
    finetune = widget.finetune

    def one_update_after_the_stop(request, stop, cancel):
        yield FinetuneUpdate(iteration=1, loss=0.5, smoothed_loss=0.5, elapsed=0.1, fraction=0.1)
        stop.wait(30)
        yield FinetuneUpdate(iteration=2, loss=0.4, smoothed_loss=0.4, elapsed=0.2, fraction=0.2)
        cancel.wait(30)
        return None

    monkeypatch.setattr(_finetune, "finetune_job", one_update_after_the_stop)
    assert finetune.start_finetune() is not None
    qtbot.waitUntil(lambda: finetune.plot.iterations == [1])
    assert finetune.status.text().startswith("Iteration 1")
    finetune.stop()
    qtbot.waitUntil(lambda: finetune.plot.iterations == [1, 2])  # an update after the Stop
    said = finetune.status.text()
    assert said.startswith("Stopping… (setting the model's threshold"), said
    assert said.endswith("press Stop again to skip both)"), said
    with qtbot.waitSignal(finetune.finished, timeout=20_000):
        finetune.stop()  # the second press: the job returns


def test_switching_the_model_clears_predicts_done_line(qtbot, dock):
    _viewer, widget = dock
    run(qtbot, widget.predict, widget.predict.run_prediction)
    assert widget.predict.status.text().startswith("Done with “tiny”:")
    other = tiny_model(seed=1)
    widget.model.use_model(other, "other")
    said = widget.predict.status.text()
    assert "Done" not in said and "objects" not in said, said
    assert "run again" in said


def test_brush_buttons_show_the_selected_label_both_ways(dock):
    viewer, widget = dock
    annotate_widget = widget.annotate
    brushes = annotate_widget.brushes
    assert brushes.exclusive() and brushes.checkedButton() is None  # no layer yet
    assert all(button.isCheckable() for button in brushes.buttons())
    layer = annotate_widget.create_annotation_layer()
    assert brushes.checkedId() == 2  # the layer starts with label 2
    brushes.button(1).click()
    assert layer.selected_label == 1 and brushes.checkedId() == 1
    assert not brushes.button(2).isChecked()
    layer.selected_label = 0  # napari's own label control
    assert brushes.checkedId() == 0
    layer.selected_label = 7  # no button for it
    assert brushes.checkedButton() is None
    layer.selected_label = 2
    assert brushes.checkedId() == 2
    three = tiny_model(n_classes=3)
    widget.model.use_model(three, "three classes")  # the buttons are made again
    assert [button.text()[0] for button in brushes.buttons()] == ["0", "1", "2", "3"]
    assert brushes.checkedId() == 2
    viewer.layers.remove(layer)
    assert brushes.checkedButton() is None


def test_evaluate_chooses_a_ground_truth_of_the_images_shape(dock):
    viewer, widget = dock
    truth = viewer.add_labels(np.zeros((128, 128), np.uint16), name="discs truth")
    viewer.add_labels(np.zeros((64, 64), np.uint16), name="small truth")  # on top
    panel = EvaluatePanel(viewer, widget.predict.image_picker)  # made now: chooses now
    assert panel.truth_picker.layer is truth  # not the topmost, of another shape
    small = viewer.add_image(np.zeros((64, 64), np.float32), name="small")
    assert widget.predict.image_picker.layer is small  # follows the new image
    assert panel.truth_picker.layer is viewer.layers["small truth"]
    widget.predict.image_picker.combo.value = viewer.layers["discs"]
    assert panel.truth_picker.layer is truth


def test_the_loss_plot_has_whole_iteration_ticks(qtbot):
    plot = LossPlot()
    qtbot.addWidget(plot)
    plot.show()
    assert "not comparable with a first training's" in plot.toolTip()  # why a fine-tune's rises
    for width in (160, 250, 373):  # 250 px gave 0, 2.5, 5, 7.5, 10
        plot.resize(width, 170)
        plot.clear()
        for iteration in range(1, 8):
            plot.add(iteration, 1.0 / iteration, 1.0 / iteration)
        plot.redraw()
        plot.draw()
        ticks = plot.axes.get_xticks()
        assert len(ticks) >= 2 and np.all(ticks == np.round(ticks)), (width, ticks)


def test_starting_from_the_prediction_hides_the_mask_over_the_copy(dock):
    viewer, widget = dock
    image = viewer.layers["discs"]
    predicted = np.ones((128, 128), np.uint8)
    predicted[20:40, 20:40] = 2
    mask = show_output(viewer, image, "mask", predicted, Labels, placement=PLACEMENT)
    assert mask.visible
    copied = widget.annotate.copy_prediction()
    assert copied == 128 * 128  # all of it: nothing was painted
    assert not mask.visible  # the copy shows, over the image
    layer = widget.annotate.annotation_layer
    assert layer is not None and layer.visible
    np.testing.assert_array_equal(layer.data, predicted)
    assert layer.opacity == SEE_THROUGH_OPACITY  # the filled slice lets the image show


def test_predict_shows_its_mask_again_after_the_copy_hid_it(qtbot, dock):
    viewer, widget = dock
    run(qtbot, widget.predict, widget.predict.run_prediction)
    mask = viewer.layers["discs mask"]
    assert widget.annotate.copy_prediction() > 0 and not mask.visible
    run(qtbot, widget.predict, widget.predict.run_prediction)
    assert mask.visible  # the status says it is shown
    said = widget.predict.status.text()
    assert f"Shown: “{mask.name}”" in said and "covers most of this slice" not in said
    strokes = widget.annotate.annotation_layer
    strokes.opacity = 0.7  # the user made the filled layer opaque again: it hides the mask
    run(qtbot, widget.predict, widget.predict.run_prediction)
    said = widget.predict.status.text()
    assert f"“{strokes.name}” covers most of this slice on top of the mask" in said
    strokes.visible = False  # hidden: it covers nothing
    run(qtbot, widget.predict, widget.predict.run_prediction)
    assert "covers most of this slice" not in widget.predict.status.text()


def test_show_loss_weights_again_after_predict_hid_them(qtbot, dock):
    viewer, widget = dock
    _, weights = show_loss_weights(qtbot, viewer, widget)
    run(qtbot, widget.predict, widget.predict.run_prediction)
    assert not weights.visible
    with qtbot.waitSignal(widget.finetune.loss_weights.finished, timeout=20_000):
        assert widget.finetune.loss_weights.show() is not None
    assert weights.visible


def test_no_brush_stays_selected_when_there_is_nothing_to_paint_on(make_napari_viewer):
    from napari_unet._widgets import UNetWidget

    viewer = make_napari_viewer()
    widget = UNetWidget(viewer)  # no image: no annotation layer can be made
    widget.annotate.brushes.button(2).click()
    assert widget.annotate.annotation_layer is None
    assert widget.annotate.brushes.checkedButton() is None


def test_the_go_back_prompt_is_withdrawn_when_another_model_is_loaded(qtbot, dock):
    viewer, widget = dock
    widget.model.use_model(as_trained(tiny_model(seed=2)), "trained")  # it says "Go back:"
    annotate(viewer, widget)
    tiny_finetune(qtbot, widget)
    assert widget.finetune.status.text().endswith("Go back:")
    widget.model.use_model(tiny_model(seed=3), "other")
    said = widget.finetune.status.text()
    assert not said.endswith("Go back:") and "“other” is the current model now" in said
    assert not widget.finetune.back_button.enabled


def test_a_dock_opened_again_still_offers_to_go_back(qtbot, dock):
    from napari_unet._widgets import UNetWidget

    viewer, widget = dock
    annotate(viewer, widget)
    tiny_finetune(qtbot, widget)
    state = model_state(viewer)
    tuned = state.model
    assert widget.finetune.back_button.enabled
    said, curve = widget.finetune.status.text(), widget.finetune.plot.iterations[:]
    assert said.startswith("Done:") and curve
    viewer.window.remove_dock_widget(widget)
    reopened = UNetWidget(viewer)  # the dock closed and opened again
    viewer.window.add_dock_widget(reopened, name="U-Net again")
    finetune = reopened.finetune
    assert finetune.back_button.enabled
    assert finetune.status.text() == said  # what the run ended with, Go back prompt included
    assert finetune.plot.iterations == curve  # and its loss curve
    assert list(finetune.plot.raw_line.get_xdata()) == curve
    preview = viewer.layers["discs preview"]
    assert preview.visible
    assert finetune.go_back.go_back()
    assert state.model is not tuned and not finetune.back_button.enabled
    assert not preview.visible  # it showed the model undone
    assert finetune.status.text().startswith("Back to “tiny”")


def test_go_back_names_a_new_models_run_training_and_a_trained_models_a_fine_tune(qtbot, dock):
    from helpers import as_trained

    viewer, widget = dock
    state, finetune = model_state(viewer), widget.finetune
    annotate(viewer, widget)
    tiny_finetune(qtbot, widget)  # "tiny" is new: the run trained it
    assert state.history[-1].label.startswith("tiny before training at ")
    assert finetune.back_button.text == "Go back to the model before this training run"
    assert "fine-tune" not in finetune.back_button.tooltip
    earlier = widget.model.history_label.text()
    assert "tiny before training at" in earlier and "fine-tune" not in earlier
    finetune.back_button.native.click()
    said = finetune.status.text()
    assert "the model before this training run" in said and "fine-tune" not in said

    widget.model.use_model(as_trained(tiny_model(seed=1)), "trained")  # runs fine-tune it
    assert finetune.back_button.text == "Go back to the model before this fine-tune"
    tiny_finetune(qtbot, widget)
    assert state.name == "trained (fine-tuned)"
    assert state.history[-1].label.startswith("trained before fine-tune at ")
    assert finetune.back_button.text == "Go back to the model before this fine-tune"
    widget.model.go_back()  # the Model section's Go back undoes the same run
    assert "the model before this fine-tune" in finetune.status.text()


@pytest.mark.parametrize("button", ["fine-tune", "model"])
def test_go_back_clears_the_undone_runs_loss_curve_and_scores(qtbot, dock, button):
    viewer, widget = dock
    annotate(viewer, widget)
    truth = np.zeros((128, 128), np.uint32)
    truth[20:40, 20:40], truth[60:80, 50:70] = 1, 2
    viewer.add_labels(truth, name="truth")
    tiny_finetune(qtbot, widget)
    finetune, evaluation = widget.finetune, widget.predict.evaluation
    run(qtbot, widget.predict, widget.predict.run_prediction)
    evaluation.truth_picker.combo.value = viewer.layers["truth"]
    assert evaluation.run() is not None and "F1" in evaluation.result.text()
    assert finetune.plot.iterations and list(finetune.plot.raw_line.get_xdata())
    if button == "fine-tune":
        finetune.back_button.native.click()
    else:
        widget.model.back_button.native.click()
    assert model_state(viewer).name == "tiny"
    assert finetune.plot.iterations == [] and list(finetune.plot.raw_line.get_xdata()) == []
    assert finetune.progress.value() < 0  # reset: no "100%" of the undone run
    assert model_state(viewer).last_run is None  # a dock opened again shows no curve either
    scores = evaluation.result.text()
    assert "F1" not in scores and "Went back to “tiny”" in scores and "Predict again" in scores


def test_go_back_keeps_the_scores_of_the_model_it_returns_to(qtbot, dock):
    viewer, widget = dock
    annotate(viewer, widget)
    truth = np.zeros((128, 128), np.uint32)
    truth[20:40, 20:40], truth[60:80, 50:70] = 1, 2
    viewer.add_labels(truth, name="truth")
    evaluation = widget.predict.evaluation
    run(qtbot, widget.predict, widget.predict.run_prediction)  # predicted with "tiny"
    evaluation.truth_picker.combo.value = viewer.layers["truth"]
    assert evaluation.run() is not None
    scores = evaluation.result.text()
    tiny_finetune(qtbot, widget)
    widget.finetune.back_button.native.click()
    assert model_state(viewer).name == "tiny"
    assert evaluation.result.text() == scores  # tiny's own prediction, scored before the run


@pytest.mark.parametrize("presses", [1, 2])
def test_a_second_stop_skips_the_threshold_the_first_keeps_it_coming(qtbot, dock, presses):
    viewer, widget = dock
    annotate(viewer, widget)
    model = as_trained(tiny_model(seed=1))
    model.metadata["background_threshold"] = 0.7  # carried over after a run
    widget.model.use_model(model, "trained")
    finetune = widget.finetune
    finetune.settings.iterations.value = 5000
    said = []

    def stop_at_the_second_iteration(update):
        if not said and getattr(update, "iteration", 0) >= 2:
            for _ in range(presses):
                finetune.stop()
                said.append(finetune.status.text())

    with qtbot.waitSignal(finetune.finished, timeout=60_000):
        finetune.start_finetune().yielded.connect(stop_at_the_second_iteration)
    assert said[0].startswith("Stopping… (setting the model's threshold"), said
    info = model_state(viewer).model.info
    assert info.training_history[-1].iterations < 5000
    assert (info.background_threshold == 0.7) is (presses == 2)


def test_stop_mentions_the_threshold_only_when_one_will_be_set(qtbot, dock):
    viewer, widget = dock
    annotate(viewer, widget)
    widget.model.use_model(as_trained(tiny_model(seed=1)), "trained")  # threshold 0.5: none set
    finetune = widget.finetune
    finetune.settings.iterations.value = 5000
    said = []

    def stop_at_the_second_iteration(update):
        if not said and getattr(update, "iteration", 0) >= 2:
            finetune.stop()
            said.append(finetune.status.text())

    with qtbot.waitSignal(finetune.finished, timeout=60_000):
        finetune.start_finetune().yielded.connect(stop_at_the_second_iteration)
    assert said == ["Stopping… (press Stop again to skip comparing the slice in view)"]

"""GUI defects found in a review of a real napari window (issue 15, items 10-12)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from napari.utils.notifications import NotificationSeverity

from helpers import annotate, as_trained, discs_image, run, tiny_model
from napari_unet._widgets import model_state
from napari_unet._widgets._finetune_job import FinetuneUpdate
from napari_unet._widgets._finetune_request import painted_since
from napari_unet._widgets._finetune_text import finished_notice, run_summary, show_run_end
from napari_unet._widgets._state import LastRun
from napari_unet.config import TRAINED_ITERATIONS
from napari_unet.evaluation.review import ClassChanges
from napari_unet.training.loop import TrainProgress

pytestmark = pytest.mark.gui


def long_run(widget) -> None:
    """Settings for a fine-tune that only ends when it is stopped."""
    widget.finetune.settings.iterations.value = 0
    widget.finetune.settings.seconds.value = 600


def test_start_from_the_prediction_with_the_annotation_layer_hidden(qtbot, dock, notifications):
    viewer, widget = dock
    viewer.add_image(np.stack([discs_image(seed=k) for k in range(3)]), name="stack")
    annotate_widget, predict_widget = widget.annotate, widget.predict
    annotate_widget.image_picker.combo.value = viewer.layers["stack"]
    predict_widget.image_picker.combo.value = viewer.layers["stack"]
    run(qtbot, predict_widget, predict_widget.run_prediction)
    layer = annotate_widget.create_annotation_layer()
    layer.visible = False
    viewer.dims.set_current_step(0, 2)  # a slice the hidden layer was never drawn at
    copied = annotate_widget.copy_prediction()
    assert copied == 128 * 128
    np.testing.assert_array_equal(layer.data[2], viewer.layers["stack mask"].data[2])
    assert layer.visible  # the copy is there to be corrected: it is shown
    errors = [n for n in notifications if n.severity == NotificationSeverity.ERROR]
    assert errors == []


def test_closing_the_dock_stops_its_fine_tune(qtbot, dock, notifications):
    viewer, widget = dock
    annotate(viewer, widget)
    long_run(widget)
    state = model_state(viewer)
    worker = widget.finetune.start_finetune()
    qtbot.waitUntil(lambda: len(widget.finetune.plot.iterations) >= 1, timeout=30_000)
    widget.show_section(widget.predict)  # another tab: the run goes on
    assert widget.tabs.currentWidget().widget() is widget.predict
    reported = len(widget.finetune.plot.iterations)
    qtbot.waitUntil(lambda: len(widget.finetune.plot.iterations) > reported, timeout=30_000)
    assert widget.finetune.worker is worker and state.busy == "training"  # tiny is new
    dock_widget = widget.parent()
    with qtbot.waitSignal(worker.finished, timeout=10_000):
        dock_widget.title.close_button.click()  # the dock's own close button
    assert state.busy == "" and not state.model.training
    assert state.name == "tiny (trained)" and "before training" in state.history[-1].label
    messages = [n.message for n in notifications]
    assert any("Training stopped: its panel was closed" in m for m in messages), messages


def test_closing_a_predict_dock_cancels_its_prediction(qtbot, make_napari_viewer):

    viewer = make_napari_viewer()
    viewer.add_image(discs_image((512, 512)), name="large")
    dock_widget, predict_dock = viewer.window.add_plugin_dock_widget("napari-unet", "Predict")
    predict = predict_dock.section
    model_state(viewer).set_model(tiny_model(), "tiny")
    predict.device.value = "cpu"
    predict.tile_size.value = predict.tile_size.choices[1]  # the smallest: many tiles
    worker = predict.run_prediction()
    qtbot.waitUntil(lambda: predict.progress.value() > 0, timeout=30_000)
    with qtbot.waitSignal(worker.finished, timeout=10_000):
        dock_widget.title.close_button.click()
    assert model_state(viewer).busy == "" and "large mask" not in viewer.layers


def test_image_pickers_follow_a_new_image_but_not_outputs(qtbot, dock):
    viewer, widget = dock
    pickers = [widget.annotate.image_picker, widget.finetune.image_picker]
    pickers.append(widget.predict.image_picker)
    widget.annotate.create_annotation_layer()
    assert widget.finetune.annotation_picker.layer is viewer.layers["discs annotations"]
    second = viewer.add_image(discs_image(seed=5), name="second")
    assert [picker.layer for picker in pickers] == [second] * 3
    assert widget.finetune.annotation_picker.layer is None  # not the other image's strokes
    assert widget.annotate.annotation_layer is None
    run(qtbot, widget.predict, widget.predict.run_prediction)  # adds Image outputs
    assert "second probabilities" in viewer.layers
    assert [picker.layer for picker in pickers] == [second] * 3


def test_annotation_picker_takes_annotation_layers_not_ground_truth(dock):
    viewer, widget = dock
    picker = widget.finetune.annotation_picker
    truth = viewer.add_labels(np.zeros((128, 128), np.uint16), name="discs ground truth")
    assert picker.layer is None  # never trained on a ground truth by itself
    assert any(layer is truth for layer in picker.layers())  # still listed
    layer = widget.annotate.create_annotation_layer()
    assert picker.layer is layer
    assert widget.predict.evaluation.truth_picker.layer is truth


def test_a_stopped_run_says_stopped_not_done(qtbot, dock, notifications):
    viewer, widget = dock
    annotate(viewer, widget)
    long_run(widget)
    finetune = widget.finetune
    finetune.start_finetune()
    qtbot.waitUntil(lambda: len(finetune.plot.iterations) >= 2, timeout=30_000)
    with qtbot.waitSignal(finetune.finished, timeout=10_000):
        finetune.stop()
    status = finetune.status.text()
    assert status.startswith("Stopped after ") and "Done" not in status, status
    assert "On the image, " in status  # a stopped run changed the model too: what changed
    assert "skipped" not in status
    info = [n.message for n in notifications if n.severity == NotificationSeverity.INFO]
    assert info and info[-1].startswith("Training stopped"), info  # the dock's model is new

    finetune.start_finetune()  # Stop pressed twice: no comparison either
    qtbot.waitUntil(lambda: len(finetune.plot.iterations) >= 2, timeout=30_000)
    with qtbot.waitSignal(finetune.finished, timeout=10_000):
        finetune.stop()
        assert "press Stop again" in finetune.status.text()
        finetune.stop_button.changed.emit(True)
    status = finetune.status.text()
    assert status.startswith("Stopped after ") and "On the image" not in status, status
    assert "(Comparison with the model before skipped.)" in status, status


def test_small_losses_show_significant_digits(dock):
    _, widget = dock
    finetune = widget.finetune
    finetune._on_update(FinetuneUpdate(12, 0.0000123, 0.000456, 3.0, 0.5))
    assert "loss 1.23e-05 (smoothed 0.000456)" in finetune.status.text()
    assert "0.000 " not in finetune.status.text()
    progress = TrainProgress(12, 1.23e-5, 4.56e-4, elapsed=3.0, fraction=0.5)
    assert "0.000456" in finetune.result_text(progress, stopped=False)


def test_a_first_run_names_the_threshold_its_strokes_gave(dock):
    _, widget = dock
    finetune = widget.finetune
    model = tiny_model()
    finetune._request = SimpleNamespace(model=model)
    progress = TrainProgress(12, 0.1, 0.1, elapsed=3.0, fraction=1.0)
    model.metadata["training_history"] = [{"iterations": 12}]
    assert "From your strokes" not in finetune.result_text(progress, stopped=False)
    model.metadata["background_threshold"] = 0.8312
    said = finetune.result_text(progress, stopped=False)
    assert (
        "From your strokes, Predict now calls a pixel background only where the model is at "
        "least 83 % sure of it (objects grow up to there)." in said
    )
    model.metadata["close_gaps"] = False
    said = finetune.result_text(progress, stopped=False)
    assert "up to there, and gaps in boundaries stay as they are)." in said
    assert "nearly every pixel" not in said
    model.metadata["training_history"][-1]["moved_decision"] = 0.6912  # all background before
    said = finetune.result_text(progress, stopped=False)
    assert (
        "It had called nearly every pixel background, so its decision was moved: objects now "
        "start where it is least sure of background." in said
    )
    model.metadata["training_history"].append({"iterations": 5})  # still learning: from strokes
    said = finetune.result_text(progress, stopped=False)
    assert "up to there, and gaps in boundaries stay as they are)." in said
    assert "nearly every pixel" not in said  # said of the run that moved it only
    model.metadata["training_history"] = [{"iterations": TRAINED_ITERATIONS}, {"iterations": 5}]
    assert "From your strokes" not in finetune.result_text(progress, stopped=False)  # carried
    finetune._request = None


ONE_CLASS = ClassChanges(total=100, changed=0, gained={}, present={1: 100})
"""A slice the model calls all background."""
BOTH = ClassChanges(total=100, changed=30, gained={2: 30}, present={1: 70, 2: 30})
"""A slice with both classes, 30 pixels newly foreground."""


def test_painted_since_counts_the_strokes_a_run_did_not_train_on():
    labels = np.zeros((3, 8, 8), np.uint8)
    labels[1, 2:4, 2:6] = 2
    request = SimpleNamespace(planes=[(1,)], annotations=[labels[1].copy()], annotation_name="s")
    layer = SimpleNamespace(name="s", data=labels)
    assert painted_since(request, layer) == 0
    labels[1, 2, 2] = 1  # a stroke repainted on the trained slice
    labels[2, 0, :5] = 1  # a new slice painted
    labels[1, 3, 5] = 0  # a pixel erased
    assert painted_since(request, layer) == 7
    assert painted_since(request, SimpleNamespace(name="other", data=labels)) == 0
    shorter = SimpleNamespace(name="s", data=labels[:1])  # replaced by a stack of 1 slice
    assert painted_since(request, shorter) == 0
    assert painted_since(None, layer) == 0
    progress = TrainProgress(10, 0.5, 0.5, elapsed=3.0, fraction=1.0)
    said = run_summary(progress, None, None, False, late=7)
    assert said.endswith(
        " 7 pixels of strokes changed during the run were not part of it: press Start to "
        "train on them too. Worse than before? Go back:"
    )
    assert "during the run" not in run_summary(progress, None, None, False)


def test_a_new_model_that_calls_everything_one_class_is_said_to_need_more_training():
    model = tiny_model()
    request = SimpleNamespace(model=model, compare_plane=())
    progress = TrainProgress(42, 0.69, 0.69, elapsed=60.0, fraction=1.0)
    model.metadata["background_threshold"] = 0.53
    model.metadata["training_history"] = [{"iterations": 42}]  # its first run, cut short
    said = run_summary(progress, request, ONE_CLASS, stopped=False)
    assert "The model still calls all of it background: it has not learnt" in said
    assert "Press Start again" in said and "Boundary threshold" not in said
    assert "Go back" not in said  # the model before it was a guess too
    assert "not learnt" not in run_summary(progress, request, BOTH, stopped=False)
    model.metadata["training_history"] = [{"iterations": 40}, {"iterations": 42}]
    assert "not learnt" in run_summary(progress, request, ONE_CLASS, stopped=False)
    # the run that brought it to TRAINED_ITERATIONS: the next run would only fine-tune it
    model.metadata["training_history"] = [{"iterations": 40}, {"iterations": TRAINED_ITERATIONS}]
    said = run_summary(progress, request, ONE_CLASS, stopped=False)
    assert "not learnt" in said and "go back and train again with a longer time budget" in said
    # a trained model fine-tuned on a slice without objects: one class is no failure
    model.metadata["training_history"] = [{"iterations": TRAINED_ITERATIONS}, {"iterations": 42}]
    assert "not learnt" not in run_summary(progress, request, ONE_CLASS, stopped=False)


def test_evaluation_is_cleared_when_the_image_or_prediction_changes(qtbot, dock):
    viewer, widget = dock
    predict = widget.predict
    viewer.add_labels((discs_image() > 0.5).astype(np.uint32), name="truth")
    predict.image_picker.combo.value = viewer.layers["discs"]
    predict.evaluation.truth_picker.combo.value = viewer.layers["truth"]
    run(qtbot, predict, predict.run_prediction)
    assert predict.evaluation.run() is not None and predict.evaluation.result.text()
    viewer.layers["discs"].data = discs_image(seed=9)  # the image itself changed
    assert predict.evaluation.result.text() == ""
    predict.evaluation.run()
    second = viewer.add_image(discs_image(seed=3), name="second")
    assert predict.image_picker.layer is second and predict.evaluation.result.text() == ""
    predict.image_picker.combo.value = viewer.layers["discs"]
    predict.evaluation.run()
    run(qtbot, predict, predict.run_prediction)  # a new prediction: the old scores are stale
    assert predict.evaluation.result.text() == ""


def test_loading_the_current_bundled_model_again_adds_no_history(make_napari_viewer, notifications):
    from napari_unet._widgets import ModelWidget
    from napari_unet.core.checkpoint import bundled_models

    viewer = make_napari_viewer()
    widget = ModelWidget(viewer)
    state = model_state(viewer)
    name = next(iter(bundled_models()))
    widget.source.value = name
    assert widget.load()
    history, model = list(state.history), state.model
    widget.source.value = name
    assert widget.load()  # the same, unchanged model: nothing to go back to
    assert state.history == history and state.model is model
    assert f"“{name}” is the current model already" in notifications[-1].message


def test_the_preview_is_added_below_the_strokes(qtbot, dock):
    viewer, widget = dock
    annotate(viewer, widget)
    widget.finetune.settings.iterations.value = 2
    run(qtbot, widget.finetune, widget.finetune.start_finetune)
    names = [layer.name for layer in viewer.layers]
    assert names == ["discs", "discs preview", "discs annotations"]  # strokes drawn last


def test_a_run_the_time_budget_cut_short_says_so():
    model = as_trained(tiny_model())
    request = SimpleNamespace(model=model, compare_plane=None)
    model.metadata["training_history"].append(
        {"iterations": 65, "train_config": {"iterations": 100}}
    )
    cut = TrainProgress(65, 0.2, 0.2, elapsed=60.0, fraction=1.0)
    said = run_summary(cut, request, None, stopped=False)
    assert "The time budget ended it after 65 of its 100 iterations" in said
    assert "budget ended" not in run_summary(cut, request, None, stopped=True)  # the user did
    whole = TrainProgress(100, 0.2, 0.2, elapsed=20.0, fraction=1.0)
    assert "budget ended" not in run_summary(whole, request, None, stopped=False)


def test_the_notice_says_trained_for_a_new_model_and_fine_tuned_for_a_trained_one():
    model = tiny_model()
    request = SimpleNamespace(model=model)
    progress = TrainProgress(42, 0.7, 0.69, elapsed=60.0, fraction=1.0)
    model.metadata["training_history"] = [{"iterations": 42, "kept_smoothed_loss": 0.688}]
    assert finished_notice(progress, request, stopped=False) == (
        # the kept weights' loss, as the status line's; ln 2 = 0.693 is a guess's
        "Trained: 42 iterations; not learnt yet (its loss, 0.688, is still a guess's)."
    )
    model.metadata["training_history"][-1]["kept_smoothed_loss"] = 0.3
    assert finished_notice(progress, request, stopped=False) == (
        "Trained: 42 iterations. Now run Predict."
    )
    assert finished_notice(progress, request, stopped=True) == (
        "Training stopped: 42 iterations; still learning: Start goes on."  # 42 of 300
    )
    as_trained(model).metadata["training_history"].append({"iterations": 42})
    assert finished_notice(progress, request, stopped=False).startswith("Fine-tuned: 42")
    model.metadata["training_history"][-1]["kept_smoothed_loss"] = 0.944  # with distillation
    assert finished_notice(progress, request, stopped=False) == (
        "Fine-tuned: 42 iterations. Now run Predict."  # no guess's to compare
    )


def test_a_run_of_a_model_still_learning_says_how_far_it_is():
    model = tiny_model()
    request = SimpleNamespace(model=model, compare_plane=())
    progress = TrainProgress(80, 0.3, 0.3, elapsed=60.0, fraction=1.0)
    model.metadata["training_history"] = [{"iterations": 40}, {"iterations": 80}]
    so_far = f"(120 of {TRAINED_ITERATIONS} iterations so far)"
    said = run_summary(progress, request, ONE_CLASS, stopped=False)
    assert f"each run continues where the last ended {so_far}." in said, said
    said = run_summary(progress, request, BOTH, stopped=False)  # learnt, but not enough yet
    assert f"Still learning {so_far}: the next run continues where this one ended." in said
    assert said.endswith("Worse than before? Go back:")
    model.metadata["training_history"].append({"iterations": 40, "kept_smoothed_loss": 0.69})
    said = run_summary(progress, request, BOTH, stopped=False)  # 160, but a guess's loss
    assert f"each run continues where the last ended (160 of {TRAINED_ITERATIONS} iter" in said
    model.metadata["training_history"][-1]["kept_smoothed_loss"] = 0.4
    said = run_summary(progress, request, BOTH, stopped=False)  # 160, learnt: past the mark
    assert "so far" not in said
    assert "It has learnt enough now (160 iterations in all): the next runs fine-tune it" in said
    model.metadata["training_history"].append({"iterations": 100})  # a fine-tune after it
    assert "It has learnt" not in run_summary(progress, request, BOTH, stopped=False)


def test_the_status_of_a_model_that_has_not_learnt_is_withdrawn_for_another_model(dock):
    viewer, widget = dock
    state, finetune = model_state(viewer), widget.finetune
    said = "Done: … it has not learnt to tell the classes apart yet. Press Start again …"
    finetune.status.setText(said)
    state.last_run = LastRun(said, (), (), ())
    show_run_end(finetune.progress, 41, stopped=True)
    assert finetune.progress.format() == "Stopped after 41 iterations"
    widget.model.use_model(tiny_model(seed=1), "other")
    assert "“other” is the current model now" in finetune.status.text()
    assert finetune.progress.value() == finetune.progress.minimum() - 1  # reset: no run said
    assert finetune.progress.format() != "Stopped after 41 iterations"


def test_strokes_painted_during_a_run_are_said_to_be_left_out(qtbot, dock):
    viewer, widget = dock
    finetune = widget.finetune
    layer = annotate(viewer, widget)
    trained_on = layer.data.copy()

    def paint_while_running(*_):
        if np.array_equal(layer.data, trained_on):  # once, on the first progress
            layer.data[:3, :4] = 2  # 12 pixels, where nothing was painted
            layer.data[np.nonzero(trained_on == 1)[0][0], np.nonzero(trained_on == 1)[1][0]] = 0

    worker = run(qtbot, finetune, lambda: _with_yield(finetune, paint_while_running))
    assert worker is not None
    said = finetune.status.text()
    assert "13 pixels of strokes changed during the run were not part of it: press Start" in said


def _with_yield(finetune, handler):
    """Start ``finetune`` and call ``handler`` on each progress its worker yields."""
    worker = finetune.start_finetune()
    worker.yielded.connect(handler)
    return worker

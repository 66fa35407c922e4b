"""The napari widgets, driven through their own handlers in a real viewer (under Xvfb)."""

from __future__ import annotations

import threading

import napari
import numpy as np
import pytest
import torch
from napari.qt.threading import WorkerBase
from napari.utils.notifications import NotificationSeverity

from helpers import annotate, discs_image, paint_strokes, run, stroke_accuracy, tiny_model
from napari_unet._widgets import (
    FinetuneWidget,
    ModelWidget,
    PredictWidget,
    _finetune_job,
    model_state,
)
from napari_unet._widgets._finetune_job import TRAINING_STARTS, FinetuneUpdate
from napari_unet._widgets._layers import OUTPUT_KEY, ImageGeometry
from napari_unet._widgets._model import FROM_FILE
from napari_unet.config import ModelConfig, WeightConfig
from napari_unet.core.checkpoint import new_model
from napari_unet.core.inference import default_tile_size
from napari_unet.training.loop import TrainingError
from napari_unet.training.sampling import AnnotationError
from napari_unet.training.weights import weight_map

pytestmark = pytest.mark.gui


def test_full_loop_annotate_finetune_predict(qtbot, dock):
    viewer, widget = dock
    state = model_state(viewer)
    layer = widget.annotate.create_annotation_layer()
    assert isinstance(layer, napari.layers.Labels)
    assert layer.name == "discs annotations"
    assert layer.data.shape == (128, 128) and layer.data.dtype == np.uint8
    assert (layer.mode, layer.selected_label) == ("paint", 2)
    assert viewer.layers.selection.active is layer
    layer.paint((64, 64), 2)  # a real brush dab: the counts follow within the throttle delay
    qtbot.waitUntil(
        lambda: (
            "2: " in widget.annotate.counts.text() and "1: 0 px" in widget.annotate.counts.text()
        )
    )
    layer.data[:] = 0
    paint_strokes(layer.data)
    strokes = layer.data.copy()
    assert widget.annotate.update_counts() == {
        1: int((strokes == 1).sum()),
        2: int((strokes == 2).sum()),
    }

    image = viewer.layers["discs"].data
    before = stroke_accuracy(state.model, image, strokes)
    widget.finetune.settings.iterations.value = 25  # the rate decays to 0 over them
    run(qtbot, widget.finetune, widget.finetune.start_finetune)
    after = stroke_accuracy(state.model, image, strokes)
    history = state.model.metadata["training_history"][-1]
    assert history["iterations"] == 25
    assert history["train_config"]["lr_schedule"] == "linear"
    assert state.model.metadata["training_history"][-1]["image_layer"] == "discs"
    assert after > before and after >= 0.9, (before, after)
    assert widget.finetune.start_button.enabled and not widget.finetune.stop_button.enabled
    assert [entry.name for entry in state.history][-1] == "tiny"
    assert state.name == "tiny (trained)"  # a new model: its runs train it
    preview = viewer.layers["discs preview"]
    assert isinstance(preview, napari.layers.Image) and preview.metadata[OUTPUT_KEY]
    assert preview.data.shape == (128, 128) and preview.data.dtype == np.float32
    assert len(widget.finetune.plot.iterations) == 25

    with qtbot.waitSignal(widget.finetune.loss_weights.finished, timeout=10_000):
        assert widget.finetune.loss_weights.show() is not None
        assert not widget.finetune.weights_button.enabled
        assert widget.finetune.loss_weights.show() is None  # a second click starts nothing
    assert widget.finetune.weights_button.enabled
    loss_weights = viewer.layers["discs loss weights"]
    assert isinstance(loss_weights, napari.layers.Image) and loss_weights.data.dtype == np.float32
    np.testing.assert_allclose(loss_weights.data, weight_map(strokes, WeightConfig()), rtol=1e-6)
    assert np.all(loss_weights.data[strokes == 0] == 0) and np.all(
        loss_weights.data[strokes > 0] > 0
    )

    run(qtbot, widget.predict, widget.predict.run_prediction)
    expected = {
        "discs mask": (napari.layers.Labels, np.uint8),
        "discs instances": (napari.layers.Labels, np.uint32),
        "discs probabilities": (napari.layers.Image, np.float32),
        "discs weight map": (napari.layers.Image, np.float32),
    }
    for name, (kind, dtype) in expected.items():
        output = viewer.layers[name]
        assert isinstance(output, kind) and output.data.dtype == dtype, name
        assert output.data.shape == (128, 128) and output.metadata[OUTPUT_KEY], name
    mask = viewer.layers["discs mask"].data
    assert set(np.unique(mask)) <= {1, 2}
    assert (mask == strokes)[strokes > 0].mean() >= 0.9
    assert viewer.layers["discs instances"].data.max() >= 3
    probabilities = viewer.layers["discs probabilities"]
    assert tuple(probabilities.contrast_limits) == (0.0, 1.0)
    assert 0 <= probabilities.data.min() and probabilities.data.max() <= 1
    assert probabilities.data.base is None  # not a view holding the background class too
    weights = viewer.layers["discs weight map"]
    assert weights.contrast_limits[1] == pytest.approx(float(weights.data.max()))
    assert widget.predict.run_button.enabled and not widget.predict.cancel_button.enabled
    assert not preview.visible  # the fine-tune's preview no longer covers the new mask
    widget.finetune.settings.iterations.value = 2
    run(qtbot, widget.finetune, widget.finetune.start_finetune)
    assert preview.visible and viewer.layers["discs preview"] is preview  # the next run's


def test_tile_size_choice_survives_a_fine_tune_and_settings_lock_while_running(qtbot, dock):
    viewer, widget = dock
    chosen = widget.predict.tile_size.choices[1]  # a size of the user's, not Automatic
    widget.predict.tile_size.value = chosen
    settings = widget.finetune.settings
    paint_strokes(widget.annotate.create_annotation_layer().data)
    with qtbot.waitSignal(widget.finetune.finished, timeout=60_000):
        widget.finetune.start_finetune()
        locked = [c.enabled for c in (settings.w0, settings.sigma, settings.elastic)]
    assert locked == [False, False, False]
    assert settings.w0.enabled and settings.sigma.enabled and settings.elastic.enabled
    assert model_state(viewer).name == "tiny (trained)"
    assert widget.predict.tile_size.value == chosen
    widget.model.use_model(new_model(ModelConfig(base_features=4, depth=3), seed=0), "deeper")
    # another architecture: Automatic again, the model's default tile for the image in view;
    # it covers the 128x128 discs, so it is the whole image (PredictConfig tile_size None)
    deeper = model_state(viewer).model
    assert widget.predict.tile_size.native.currentIndex() == 0
    assert widget.predict.tile_size.native.currentText().startswith("Automatic (whole image")
    assert widget.predict.tile_size.value == 0 and widget.predict.predict_config().tile_size is None
    assert default_tile_size(deeper) >= deeper.smallest_valid_input_covering(128)


def failing_finetune(*_args, **_kwargs):
    """A fine-tune that fails in the worker before its first iteration."""
    raise TrainingError("the loss is not finite at iteration 1")
    yield  # a generator, as finetune is


def test_failing_run_notifies_then_a_new_run_can_be_stopped(
    qtbot, dock, notifications, monkeypatch
):
    viewer, widget = dock
    finetune, state = widget.finetune, model_state(viewer)
    layer = widget.annotate.create_annotation_layer()
    paint_strokes(layer.data)
    history = len(state.history)
    with monkeypatch.context() as patched:
        patched.setattr(_finetune_job, "finetune", failing_finetune)
        run(qtbot, finetune, finetune.start_finetune)
    errors = [n for n in notifications if n.severity == NotificationSeverity.ERROR]
    assert len(errors) == 1 and "not finite" in errors[0].message, [e.message for e in errors]
    assert finetune.status.text() == f"Failed: {errors[0].message}"  # not "Preparing…"
    assert finetune.start_button.enabled and not finetune.stop_button.enabled
    assert state.busy == "" and len(state.history) == history

    # the widget is usable again: start a long run, then stop it
    finetune.settings.iterations.value = 0
    finetune.settings.seconds.value = 600
    worker = finetune.start_finetune()
    assert worker is not None and not finetune.start_button.enabled
    qtbot.waitUntil(lambda: len(finetune.plot.iterations) >= 1, timeout=30_000)
    assert widget.predict.run_prediction() is None  # the model is busy: refused, not corrupted
    assert widget.model.go_back() is False
    with qtbot.waitSignal(finetune.finished, timeout=30_000):
        finetune.stop_button.changed.emit(True)
    assert finetune.status.text().startswith("Stopped after"), finetune.status.text()
    assert finetune.start_button.enabled and not finetune.stop_button.enabled
    assert state.busy == "" and not state.model.training
    assert state.model.metadata["training_history"][-1]["iterations"] >= 1


def test_image_planes_are_read_in_the_worker(qtbot, dock, monkeypatch, notifications):
    viewer, widget = dock
    finetune = widget.finetune
    finetune.settings.iterations.value = 3
    readers = []
    read_plane = ImageGeometry.read_plane

    def recording_read_plane(self, data, plane, in_channels):
        if np.size(data) > 1000:  # the image, not the 1 x 1 channel check
            readers.append(threading.current_thread())
        return read_plane(self, data, plane, in_channels)

    monkeypatch.setattr(ImageGeometry, "read_plane", recording_read_plane)
    viewer.add_image(np.stack([discs_image(seed=k) for k in range(3)]), name="stack")
    widget.annotate.image_picker.combo.value = viewer.layers["stack"]
    layer = widget.annotate.create_annotation_layer()
    paint_strokes(layer.data[0])
    paint_strokes(layer.data[2])
    finetune.image_picker.combo.value = viewer.layers["stack"]
    statuses = []
    on_update = FinetuneWidget._on_update  # recorded from the first update on, no race

    def recording_on_update(self, update):
        statuses.append(update)
        on_update(self, update)

    monkeypatch.setattr(FinetuneWidget, "_on_update", recording_on_update)
    run(qtbot, finetune, finetune.start_finetune)
    assert finetune.status.text().startswith("Done"), finetune.status.text()
    assert readers and threading.main_thread() not in readers  # training planes and previews
    assert "Reading the image: slice 2 of 2…" in statuses
    assert statuses.index("Reading the image: slice 2 of 2…") < statuses.index(TRAINING_STARTS)
    assert statuses.index(TRAINING_STARTS) < min(  # said before the first iteration's update
        statuses.index(update) for update in statuses if isinstance(update, FinetuneUpdate)
    )

    two_channels = tiny_model(in_channels=2)
    widget.model.use_model(two_channels, "two channels")
    readers.clear()
    assert finetune.start_finetune() is None  # refused at once, without reading the image
    said = str(notifications[-1].message)
    assert said.startswith("The model takes 2 channels and “stack” has one (shape (3, 128, 128))")
    assert "napari opens each channel of a file as a layer of its own" in said
    assert finetune.status.text() == f"Not started: {said}"  # not the last run's "Done…"
    assert finetune.progress.value() < finetune.progress.minimum()  # its bar emptied too
    widget.predict.image_picker.combo.value = viewer.layers["stack"]
    assert widget.predict.run_prediction() is None  # the same words, before a worker starts
    assert str(notifications[-1].message) == said
    assert widget.predict.status.text() == f"Not started: {said}"
    assert widget.predict.progress.value() < widget.predict.progress.minimum()  # reset: empty
    assert readers == [] and model_state(viewer).busy == ""


def test_stop_while_the_image_is_read_leaves_the_model_unchanged(qtbot, dock, monkeypatch):
    viewer, widget = dock
    finetune = widget.finetune
    paint_strokes(widget.annotate.create_annotation_layer().data)
    read_plane = ImageGeometry.read_plane

    def stop_then_read(self, data, plane, in_channels):
        finetune.stop()  # the user presses Stop while the (slow) image is being read
        return read_plane(self, data, plane, in_channels)

    monkeypatch.setattr(ImageGeometry, "read_plane", stop_then_read)
    weights = {k: v.clone() for k, v in model_state(viewer).model.state_dict().items()}
    run(qtbot, finetune, finetune.start_finetune)
    assert finetune.status.text().startswith("Stopped before the first iteration")
    model = model_state(viewer).model
    assert all(torch.equal(weights[k], v) for k, v in model.state_dict().items())


def test_closing_the_viewer_stops_a_running_finetune(qtbot, dock, notifications):
    viewer, widget = dock
    annotate(viewer, widget)
    widget.finetune.settings.iterations.value = 0
    widget.finetune.settings.seconds.value = 600
    state = model_state(viewer)
    model = state.model
    weights = {key: value.clone() for key, value in model.state_dict().items()}
    worker = widget.finetune.start_finetune()
    assert worker is not None
    ends = []
    worker.returned.connect(lambda _: ends.append("returned"))
    worker.aborted.connect(lambda: ends.append("aborted"))
    qtbot.waitUntil(lambda: len(widget.finetune.plot.iterations) >= 1, timeout=30_000)
    with qtbot.waitSignal(worker.finished, timeout=30_000):
        viewer.close()
    qtbot.waitUntil(lambda: not WorkerBase._worker_set, timeout=5_000)  # no worker left
    assert ends == ["aborted"]  # stopped by the close: a 600 s run never ends by itself
    said = [str(note.message) for note in notifications]
    assert not any("was removed" in message for message in said), said  # closed, not removed
    assert state.busy == "" and state.model is model and not model.training
    assert model.metadata["training_history"][-1]["iterations"] >= 1  # the run was recorded
    assert any(not torch.equal(weights[k], v) for k, v in model.state_dict().items())  # kept


def test_stack_trains_on_annotated_slices_and_previews_the_slice_in_view(qtbot, dock):
    viewer, widget = dock
    stack = np.stack([discs_image(seed=k) for k in range(3)])
    viewer.add_image(stack, name="stack")
    widget.annotate.image_picker.combo.value = viewer.layers["stack"]
    layer = widget.annotate.create_annotation_layer()
    assert layer.data.shape == (3, 128, 128)
    paint_strokes(layer.data[2])
    viewer.dims.set_current_step(0, 1)
    finetune = widget.finetune
    finetune.image_picker.combo.value = viewer.layers["stack"]
    assert finetune.annotation_picker.layer is layer
    finetune.settings.iterations.value = 2
    run(qtbot, finetune, finetune.start_finetune)
    assert model_state(viewer).model.metadata["training_history"][-1]["annotated_slices"] == [[2]]
    preview = viewer.layers["stack preview"].data
    assert preview.shape == (3, 128, 128)
    assert preview[1].any() and not preview[0].any() and not preview[2].any()
    viewer.dims.set_current_step(0, 0)
    run(qtbot, finetune, finetune.start_finetune)
    preview = viewer.layers["stack preview"].data  # the last run's slice 1 is cleared
    assert preview[0].any() and not preview[1].any() and not preview[2].any()


def test_separate_docks_share_one_model_go_back_and_let_go(
    qtbot, make_napari_viewer, tmp_path, notifications
):
    viewer = make_napari_viewer()
    _, model_dock = viewer.window.add_plugin_dock_widget("napari-unet", "Model")
    _, predict_dock = viewer.window.add_plugin_dock_widget("napari-unet", "Predict")
    model_widget, predict_widget = model_dock.section, predict_dock.section
    assert isinstance(model_widget, ModelWidget) and isinstance(predict_widget, PredictWidget)
    assert model_widget.state is predict_widget.state is model_state(viewer)
    first = model_widget.state.model
    tiny = tiny_model(padding="same")
    model_widget.use_model(tiny, "tiny")
    assert predict_widget.tile_size.value == default_tile_size(tiny)
    assert all(size % 4 == 0 for size in predict_widget.tile_size.choices[1:])
    path = model_widget.save(tmp_path / "tiny")
    assert path == tmp_path / "tiny.safetensors" and path.is_file()
    model_widget.source.value = FROM_FILE
    model_widget.checkpoint_file.value = path
    assert model_widget.load()
    assert model_widget.state.name == "tiny.safetensors"
    assert model_widget.state.model.config == tiny.config
    assert model_widget.go_back() and model_widget.state.model is tiny
    assert first is not tiny and not model_widget.go_back()  # the default was never used
    (tmp_path / "broken.safetensors").write_bytes(b"not a checkpoint")
    model_widget.source.value = FROM_FILE
    model_widget.checkpoint_file.value = tmp_path / "broken.safetensors"
    assert not model_widget.load()
    assert any("Could not load" in n.message for n in notifications)
    assert model_widget.state.model is tiny

    # a closed dock stops listening to the viewer
    inserted = viewer.layers.events.inserted
    listening = len(inserted.callbacks)
    viewer.window.remove_dock_widget(predict_dock)
    with qtbot.waitSignal(predict_widget.destroyed, timeout=10_000):
        predict_widget.deleteLater()
    layer = viewer.add_labels(np.zeros((64, 64), np.uint8), name="later")
    layer.name = "renamed"
    assert len(inserted.callbacks) == listening - 3  # its image and truth pickers, its hint


def test_created_annotation_layer_is_chosen_for_fine_tuning(dock):
    viewer, widget = dock
    viewer.add_labels(np.zeros((128, 128), np.uint16), name="discs ground truth")
    picker = widget.finetune.annotation_picker
    assert picker.layer is None  # a ground truth is listed, never chosen by itself
    layer = widget.annotate.create_annotation_layer()
    assert picker.layer is layer
    viewer.add_labels(np.zeros((128, 128), np.uint8), name="another labels layer")
    assert picker.layer is layer  # only annotation layers of the chosen image take over


def test_diverging_run_says_so_and_marks_the_model_changed(qtbot, dock, notifications, monkeypatch):
    from napari_unet._widgets import _finetune_job
    from napari_unet.training.loop import TrainingError

    real_finetune = _finetune_job.finetune

    def diverging_after_three(*args, **kwargs):
        steps = real_finetune(*args, **kwargs)
        for step in steps:
            yield step
            if step.iteration == 3:
                steps.close()  # as the core ends a diverging run: best weights, history entry
                raise TrainingError("the loss became nan at iteration 4; the best weights...")

    monkeypatch.setattr(_finetune_job, "finetune", diverging_after_three)
    viewer, widget = dock
    finetune, state = widget.finetune, model_state(viewer)
    paint_strokes(widget.annotate.create_annotation_layer().data)
    run(qtbot, finetune, finetune.start_finetune)
    errors = [n for n in notifications if n.severity == NotificationSeverity.ERROR]
    assert len(errors) == 1 and "the loss became nan" in errors[0].message
    assert finetune.status.text().startswith("Failed: ") and "nan" in finetune.status.text()
    assert state.name == "tiny (trained)"  # the kept weights are not the loaded ones
    history = state.model.metadata["training_history"][-1]
    assert history["iterations"] == 3 and history["image_layer"] == "discs"


def test_final_preview_is_tiled_and_stoppable(qtbot, dock, monkeypatch):
    from napari_unet._widgets import _finetune_job

    calls = []
    real_predict = _finetune_job.predict

    def recording_predict(*args, **kwargs):
        calls.append(kwargs)
        return real_predict(*args, **kwargs)

    monkeypatch.setattr(_finetune_job, "predict", recording_predict)
    viewer, widget = dock
    finetune = widget.finetune
    finetune.settings.live_preview.value = True
    finetune.settings.iterations.value = 3
    paint_strokes(widget.annotate.create_annotation_layer().data)
    run(qtbot, finetune, finetune.start_finetune)
    assert len(calls) == 2  # the slice in view before training, the preview after it
    for call in calls:
        assert call["tile_size"] == default_tile_size(model_state(viewer).model)
        assert call["stop"] is finetune._stop
    assert viewer.layers["discs preview"].data.any()


def test_annotation_errors_name_the_layer_and_slice(qtbot, dock, notifications, monkeypatch):
    viewer, widget = dock
    stack = np.stack([discs_image(seed=seed) for seed in range(3)])
    viewer.add_image(stack, name="stack")
    widget.annotate.image_picker.combo.value = viewer.layers["stack"]
    widget.finetune.image_picker.combo.value = viewer.layers["stack"]
    layer = widget.annotate.create_annotation_layer()
    assert widget.finetune.annotation_picker.layer is layer
    paint_strokes(layer.data[1])
    paint_strokes(layer.data[2])

    def failing_finetune(*_args, **_kwargs):  # the second annotated plane is slice 2
        raise AnnotationError("annotation 1 has a problem the checks before the worker miss")
        yield

    monkeypatch.setattr(_finetune_job, "finetune", failing_finetune)
    run(qtbot, widget.finetune, widget.finetune.start_finetune)
    errors = [n.message for n in notifications if n.severity == NotificationSeverity.ERROR]
    assert len(errors) == 1
    assert "slice 2 of “stack annotations” has a problem" in errors[0], errors[0]


def test_a_model_that_reads_slices_as_channels_says_why_the_strokes_no_longer_fit(
    dock, notifications
):
    viewer, widget = dock
    two = viewer.add_image(np.stack([discs_image(seed=k) for k in range(2)]), name="two")
    widget.annotate.image_picker.combo.value = two
    layer = widget.annotate.create_annotation_layer()  # a 1-channel model: 2 slices
    assert layer.data.shape == (2, 128, 128)
    paint_strokes(layer.data[0])
    widget.model.use_model(tiny_model(in_channels=2), "two channels")
    finetune = widget.finetune
    finetune.image_picker.combo.value = two
    finetune.annotation_picker.combo.value = layer
    assert finetune.start_finetune() is None
    said = str(notifications[-1].message)
    assert said.startswith(f"“{layer.name}” has shape (2, 128, 128) but “two” has (128, 128)")
    assert "This model reads “two” as CYX, its 2 planes as channels" in said

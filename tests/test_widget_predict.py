"""The Predict section in a real viewer (under Xvfb): outputs, TTA, weight map, memory,
cancel, copying the prediction into the annotations."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from napari.utils.notifications import NotificationSeverity

from helpers import as_trained, discs_image, paint_strokes, run, tiny_model
from napari_unet._widgets import (
    _memory,
    model_state,
)
from napari_unet._widgets._layers import OUTPUT_KEY
from napari_unet.config import WeightConfig
from napari_unet.core.inference import predict, tile_layout
from napari_unet.training.weights import weight_map

pytestmark = pytest.mark.gui


def test_predict_again_replaces_outputs_and_leaves_user_layers(qtbot, dock):
    viewer, widget = dock
    user_layer = viewer.add_labels(np.full((128, 128), 7, np.uint32), name="discs mask")
    image_before = viewer.layers["discs"].data.copy()
    run(qtbot, widget.predict, widget.predict.run_prediction)
    outputs = [layer for layer in viewer.layers if layer.metadata.get(OUTPUT_KEY)]
    count = len(viewer.layers)
    assert len(outputs) == 5  # mask, instances, probabilities, weight map, uncertainty
    moved = []  # an unchanged placement is not set again: each set redraws the layer
    for layer in outputs:
        layer.events.scale.connect(moved.append)
        layer.events.translate.connect(moved.append)
    run(qtbot, widget.predict, widget.predict.run_prediction)
    assert moved == []
    assert len(viewer.layers) == count
    assert [layer for layer in viewer.layers if layer.metadata.get(OUTPUT_KEY)] == outputs
    np.testing.assert_array_equal(viewer.layers["discs"].data, image_before)
    assert user_layer.name == "discs mask" and np.all(user_layer.data == 7)
    assert not user_layer.metadata.get(OUTPUT_KEY)
    viewer.layers["discs"].scale, viewer.layers["discs"].translate = (2, 3), (10, 5)
    run(qtbot, widget.predict, widget.predict.run_prediction)  # reused layers follow the image
    for layer in outputs:
        assert tuple(layer.scale[-2:]) == (2, 3) and tuple(layer.translate[-2:]) == (10, 5)
    # outputs belong to the image layer, not to names: renaming either changes nothing
    viewer.layers["discs"].name = "renamed"
    outputs[0].name = "my favourite output"
    run(qtbot, widget.predict, widget.predict.run_prediction)
    assert len(viewer.layers) == count
    assert [layer for layer in viewer.layers if layer.metadata.get(OUTPUT_KEY)] == outputs
    assert widget.annotate.copy_prediction() > 0  # finds the renamed image's mask


def test_predict_with_test_time_augmentation(qtbot, dock):
    viewer, widget = dock
    widget.predict.test_time_augmentation.value = True
    run(qtbot, widget.predict, widget.predict.run_prediction)
    model = model_state(viewer).model
    tile_size = widget.predict.tile_size.value or None
    expected = predict(
        viewer.layers["discs"].data, model, tile_size=tile_size, test_time_augmentation=True
    )
    np.testing.assert_allclose(
        viewer.layers["discs probabilities"].data, expected[1], rtol=1e-5, atol=1e-6
    )
    plain = predict(viewer.layers["discs"].data, model, tile_size=tile_size)
    assert np.abs(plain - expected).max() > 1e-4


def test_the_check_box_follows_a_model_that_asks_for_test_time_augmentation(dock):
    viewer, widget = dock
    state = model_state(viewer)
    asking = copy.deepcopy(state.model)
    asking.metadata["test_time_augmentation"] = True
    assert widget.predict.test_time_augmentation.value is False
    state.set_model(asking, "asking")
    assert widget.predict.test_time_augmentation.value is True
    assert widget.predict.predict_config().test_time_augmentation is True
    widget.predict.test_time_augmentation.value = False  # the user's choice wins
    assert widget.predict.predict_config().test_time_augmentation is False
    state.model_changed.emit()  # the same model changed in place (a fine-tune): still unticked
    assert widget.predict.test_time_augmentation.value is False
    widget.predict.test_time_augmentation.value = True
    plain = copy.deepcopy(state.model)
    plain.metadata.pop("test_time_augmentation")
    state.set_model(plain, "plain")  # another model: the box follows it again
    assert widget.predict.test_time_augmentation.value is False


def test_the_boundary_check_box_says_when_a_model_leaves_gaps_open(dock):
    viewer, widget = dock
    state = model_state(viewer)
    box = widget.predict.close_boundaries
    assert box.text == "Close gaps in boundaries"
    closing = state.model
    thick = copy.deepcopy(closing)
    thick.metadata.update(background_threshold=0.8, close_gaps=False)
    state.set_model(thick, "thick")
    assert box.text == "Thin boundaries (grow objects to the model's threshold)"
    assert "not closed" in box.tooltip and box.value is True
    state.set_model(closing, "closing")  # a model without the key closes gaps
    assert "close_gaps" not in closing.metadata
    assert box.text == "Close gaps in boundaries" and "faint spot" in box.tooltip


def test_the_check_box_says_what_the_models_transform_set_costs(dock):
    viewer, widget = dock
    state = model_state(viewer)
    box = widget.predict.test_time_augmentation
    assert box.text == "Test-time augmentation (8x slower)"
    rotating = copy.deepcopy(state.model)
    rotating.metadata.update(test_time_augmentation=True, test_time_transforms="rotations")
    state.set_model(rotating, "rotating")
    assert box.text == "Test-time augmentation (4x slower)" and "4 rotations" in box.tooltip
    state.set_model(copy.deepcopy(state.model), "eight")
    state.model.metadata.pop("test_time_transforms")
    state.set_model(state.model, "eight")
    assert box.text == "Test-time augmentation (8x slower)" and "flips" in box.tooltip


def test_predicted_weight_map_uses_the_models_training_settings(qtbot, dock):
    viewer, widget = dock
    finetune = widget.finetune
    run(qtbot, widget.predict, widget.predict.run_prediction)  # never trained: the paper's
    mask = viewer.layers["discs mask"].data
    np.testing.assert_allclose(viewer.layers["discs weight map"].data, weight_map(mask), rtol=1e-6)

    finetune.settings.iterations.value = 25  # enough to find the discs (see the full loop)
    finetune.settings.w0.value, finetune.settings.sigma.value = 4.0, 2.5
    paint_strokes(widget.annotate.create_annotation_layer().data)
    run(qtbot, finetune, finetune.start_finetune)
    finetune.settings.w0.value = 20.0  # changed after the run: not what the model learnt with
    run(qtbot, widget.predict, widget.predict.run_prediction)
    mask = viewer.layers["discs mask"].data
    expected = weight_map(mask, WeightConfig(w0=4.0, sigma=2.5))
    assert np.abs(expected - weight_map(mask)).max() > 0.1  # the check can tell them apart
    np.testing.assert_allclose(viewer.layers["discs weight map"].data, expected, rtol=1e-6)


def test_prediction_that_would_not_fit_in_memory_is_refused(
    qtbot, dock, notifications, monkeypatch
):
    viewer, widget = dock
    monkeypatch.setattr(_memory, "available_memory", lambda: 2**20)  # 1 MiB: nothing fits
    assert widget.predict.run_prediction() is None
    errors = [n.message for n in notifications if n.severity == NotificationSeverity.ERROR]
    assert len(errors) == 1 and "“discs”" in errors[0] and "--output-format zarr" in errors[0]
    assert "untick" not in errors[0]  # it would not fit without the weight map either
    said = widget.predict.status.text()  # the reason, in full, beside the Run button too
    assert said == f"Not started: not enough memory. {errors[0]}", said
    assert widget.predict.status.wordWrap()
    assert model_state(viewer).busy == "" and "discs mask" not in viewer.layers
    monkeypatch.setattr(_memory, "available_memory", lambda: 2**40)
    run(qtbot, widget.predict, widget.predict.run_prediction)
    assert "discs mask" in viewer.layers


def test_cancel_prediction_stops_it_part_way(qtbot, dock):
    viewer, widget = dock
    viewer.add_image(discs_image((1024, 1024)), name="large")
    predict_widget = widget.predict
    predict_widget.image_picker.combo.value = viewer.layers["large"]
    predict_widget.tile_size.value = predict_widget.tile_size.choices[1]  # smallest: many tiles
    tile = predict_widget.tile_size.value
    assert len(tile_layout(model_state(viewer).model, (1024, 1024), tile)[1]) > 600
    worker = predict_widget.run_prediction()
    assert worker is not None
    updates, results = [], []
    worker.yielded.connect(updates.append)
    worker.returned.connect(results.append)
    qtbot.waitUntil(lambda: predict_widget.progress.value() > 0, timeout=30_000)
    with qtbot.waitSignal(predict_widget.finished, timeout=30_000):
        predict_widget.cancel_button.changed.emit(True)
    assert len(results) == 1 and results[0].cancelled and not results[0].error
    assert updates and max(update.fraction for update in updates) < 1.0  # among the tiles
    last = updates[-1]
    assert last.stage == "tiles" and 0 < last.tiles_done < last.tiles
    done = f"{last.tiles_done} of {last.tiles} tiles"
    said = predict_widget.status.text()
    assert said == f"Cancelled after {done}; the output layers were left as they were.", said
    bar = predict_widget.progress  # as Fine-tune's after Stop: full, saying how far it got
    assert bar.value() == bar.maximum() and bar.text() == f"Cancelled after {done}"
    assert "large mask" not in viewer.layers
    assert predict_widget.run_button.enabled and not predict_widget.cancel_button.enabled
    assert model_state(viewer).busy == ""


def test_cancel_during_the_mask_ends_it_between_its_steps(qtbot, dock, monkeypatch):
    """Cancel pressed while the mask is made (seconds on a large image) ends the run at
    the mask's next check, before the closing's lines are drawn, not after the mask."""
    from napari_unet._widgets import _predict_job
    from napari_unet.core import postprocess

    viewer, widget = dock
    predict_widget = widget.predict
    real_mask = _predict_job.prediction_mask
    lines_drawn: list[int] = []
    real_lines = postprocess.closing_lines

    def cancelled_meanwhile(*args, **kwargs):
        predict_widget._stop.set()  # as the Cancel button does, while the mask is made
        return real_mask(*args, **kwargs)

    def counted_lines(*args, **kwargs):
        lines_drawn.append(1)
        return real_lines(*args, **kwargs)

    monkeypatch.setattr(_predict_job, "prediction_mask", cancelled_meanwhile)
    monkeypatch.setattr(postprocess, "closing_lines", counted_lines)
    assert predict_widget.close_boundaries.value  # the closing would run
    results: list = []
    with qtbot.waitSignal(predict_widget.finished, timeout=60_000):
        worker = predict_widget.run_prediction()
        assert worker is not None
        worker.returned.connect(results.append)
    assert len(results) == 1 and results[0].cancelled and not results[0].error
    assert lines_drawn == []
    assert predict_widget.status.text().startswith("Cancelled while post-processing")
    assert model_state(viewer).busy == ""


def _running_on_large(qtbot, viewer, widget):
    """A prediction of a new 512² image "large" in many tiles, its first tiles done."""
    image = viewer.add_image(discs_image((512, 512)), name="large")
    predict_widget = widget.predict
    predict_widget.image_picker.combo.value = image
    predict_widget.tile_size.value = predict_widget.tile_size.choices[1]  # many tiles
    assert predict_widget.run_prediction() is not None
    qtbot.waitUntil(lambda: predict_widget.progress.value() > 0, timeout=30_000)
    return image, predict_widget


def test_removing_the_image_cancels_its_prediction(qtbot, dock):
    viewer, widget = dock
    image, predict_widget = _running_on_large(qtbot, viewer, widget)
    with qtbot.waitSignal(predict_widget.finished, timeout=30_000):
        viewer.layers.remove(image)
    assert not any(layer.name.startswith("large ") for layer in viewer.layers)  # no orphans
    assert predict_widget.status.text() == "“large” was removed: its prediction was cancelled."
    assert model_state(viewer).busy == ""


def test_prediction_copied_into_the_unpainted_pixels_of_the_slice_in_view(
    qtbot, dock, notifications
):
    viewer, widget = dock
    viewer.add_image(np.stack([discs_image(seed=k) for k in range(3)]), name="stack")
    annotate, predict_widget = widget.annotate, widget.predict
    annotate.image_picker.combo.value = viewer.layers["stack"]
    assert annotate.copy_prediction() == 0  # nothing predicted yet: a warning, no layer
    assert "Predict this image first" in notifications[-1].message
    assert "stack annotations" not in viewer.layers

    predict_widget.image_picker.combo.value = viewer.layers["stack"]
    run(qtbot, predict_widget, predict_widget.run_prediction)
    viewer.layers["stack mask"].data[1, 40:80, 30:90] = 2  # both classes, whatever the model
    mask = viewer.layers["stack mask"].data.copy()
    assert set(np.unique(mask[1])) == {1, 2}
    layer = annotate.create_annotation_layer()
    layer.data[1, :10, :10] = 2  # a stroke of the user's, which the copy must keep
    layer.data[0, :5, :5] = 1
    viewer.dims.set_current_step(0, 1)
    copied = annotate.copy_prediction()
    assert copied == 128 * 128 - 100
    expected = mask[1].copy()
    expected[:10, :10] = 2
    np.testing.assert_array_equal(layer.data[1], expected)
    assert np.count_nonzero(layer.data[0]) == 25 and not layer.data[2].any()  # other slices
    assert annotate.update_counts()[2] == int(np.count_nonzero(expected == 2))
    layer.undo()
    assert np.count_nonzero(layer.data[1]) == 100  # the copy is one undoable edit


def test_predict_says_when_an_rgb_image_is_read_as_its_luminance(qtbot, dock):
    viewer, widget = dock
    grey = viewer.layers["discs"].data
    run(qtbot, widget.predict, widget.predict.run_prediction)
    assert "luminance" not in widget.predict.status.text()  # a grey image: read as shown
    rgb = np.stack([grey, grey * 0.5, grey * 0.25], axis=-1)
    viewer.add_image(rgb, name="colour", rgb=True)
    widget.predict.image_picker.combo.value = viewer.layers["colour"]
    run(qtbot, widget.predict, widget.predict.run_prediction)
    said = widget.predict.status.text()
    assert said.startswith("Done with “tiny”:") and "RGB image was read as its luminance" in said
    luminance = 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]
    model = model_state(viewer).model
    expected = predict(luminance, model, tile_size=widget.predict.tile_size.value or None)
    np.testing.assert_allclose(
        viewer.layers["colour probabilities"].data, expected[1], rtol=1e-4, atol=1e-5
    )


def test_a_new_models_mask_of_one_class_says_to_train_it_further(qtbot, dock):
    viewer, widget = dock
    model = tiny_model()
    with torch.no_grad():  # at chance, as an untrained model can be: background everywhere
        model.head.weight.zero_()
        model.head.bias.copy_(torch.tensor([5.0, -5.0]))
    model_state(viewer).set_model(model, "new")
    run(qtbot, widget.predict, widget.predict.run_prediction)
    said = widget.predict.status.text()
    assert said.startswith("Done with “new”: 0 objects.")
    untrained = " The model calls everything background: it is untrained. Paint strokes"
    assert untrained in said and "further" not in said
    model.metadata["training_history"] = [{"iterations": 20, "seconds": 1.0}]  # still learning
    run(qtbot, widget.predict, widget.predict.run_prediction)
    said = widget.predict.status.text()
    advice = " The model still calls everything background: train it further (Fine-tune → Start)."
    assert advice in said
    model_state(viewer).set_model(as_trained(copy.deepcopy(model)), "trained")
    run(qtbot, widget.predict, widget.predict.run_prediction)  # a trained model may be right
    assert "still calls everything" not in widget.predict.status.text()


def test_predicting_another_image_hides_the_first_images_outputs_unless_side_by_side(qtbot, dock):
    viewer, widget = dock
    other = viewer.add_image(discs_image(seed=3), name="other")
    widget.predict.image_picker.combo.value = viewer.layers["discs"]
    run(qtbot, widget.predict, widget.predict.run_prediction)
    assert viewer.layers["discs mask"].visible
    widget.predict.image_picker.combo.value = other
    run(qtbot, widget.predict, widget.predict.run_prediction)
    assert viewer.layers["other mask"].visible
    assert not viewer.layers["discs mask"].visible  # it would cover "other"
    getattr(viewer, "canvas", viewer).grid.enabled = True  # side by side
    widget.predict.image_picker.combo.value = viewer.layers["discs"]
    run(qtbot, widget.predict, widget.predict.run_prediction)
    assert viewer.layers["discs mask"].visible and viewer.layers["other mask"].visible


def test_new_data_for_the_image_cancels_its_prediction(qtbot, dock):
    """Its outputs would have been of the old data, shown over the new (no notice)."""
    viewer, widget = dock
    image, predict_widget = _running_on_large(qtbot, viewer, widget)
    with qtbot.waitSignal(predict_widget.finished, timeout=30_000):
        image.data = discs_image((96, 160))
    assert "large mask" not in viewer.layers
    assert predict_widget.status.text() == "“large” got new data: its prediction was cancelled."
    image.data = discs_image((64, 64))  # no run: nothing to cancel, nothing said
    assert predict_widget.status.text().endswith("its prediction was cancelled.")


def test_a_result_that_comes_back_after_its_image_went_is_not_shown(dock, notifications):
    """Removed after the run's last stop check: the worker ends with outputs all the same."""
    from napari_unet._widgets._tasks import JobResult

    viewer, widget = dock
    predict_widget = widget.predict
    predict_widget._lost = "“discs” was removed"
    predict_widget._on_result(JobResult(value=object()))  # shown, it would fail on object()
    assert predict_widget.status.text() == "“discs” was removed: its prediction was cancelled."
    assert "discs mask" not in viewer.layers  # the toast says why, as the status line
    assert str(notifications[-1].message) == "“discs” was removed: its prediction was cancelled."


def test_closing_the_section_stops_scoring_all_slices_too(dock):
    _viewer, widget = dock
    stack = widget.predict.evaluation.stack
    stack.stop.clear()  # as while a stack is scored
    widget.predict.stop_jobs()
    assert stack.stop.is_set()

"""Reviewing what the model does: where to paint next, what a fine-tune changed (issue 14, 4-5)."""

from __future__ import annotations

import copy
import threading

import napari
import numpy as np
import pytest
import torch

from helpers import annotate, as_trained, discs_image, paint_strokes, run, tiny_model
from napari_unet._widgets import _finetune_job, model_state
from napari_unet._widgets._finetune import FinetuneWidget
from napari_unet._widgets._finetune_job import FINETUNE_STARTS, TRAINING_STARTS
from napari_unet._widgets._layers import OUTPUT_KEY
from napari_unet.core.inference import default_tile_size, predict
from napari_unet.core.postprocess import class_mask
from napari_unet.evaluation.review import class_changes, uncertainty

pytestmark = pytest.mark.gui


def test_predict_shows_where_the_model_is_unsure(qtbot, dock):
    viewer, widget = dock
    predict_widget = widget.predict
    assert predict_widget.with_uncertainty.value  # on by default
    run(qtbot, predict_widget, predict_widget.run_prediction)
    layer = viewer.layers["discs uncertainty"]
    assert isinstance(layer, napari.layers.Image) and layer.metadata[OUTPUT_KEY]
    assert layer.data.shape == (128, 128) and layer.data.dtype == np.float32
    foreground = viewer.layers["discs probabilities"].data
    expected = uncertainty(np.stack([1 - foreground, foreground]))
    np.testing.assert_allclose(layer.data, expected, atol=1e-5)
    assert layer.data.max() > layer.data.min()  # the check can tell places apart
    assert tuple(layer.contrast_limits) == (0.0, 1.0)
    assert "uncertainty" in predict_widget.status.text()
    count = len(viewer.layers)
    run(qtbot, predict_widget, predict_widget.run_prediction)
    assert len(viewer.layers) == count and viewer.layers["discs uncertainty"] is layer

    predict_widget.with_uncertainty.value = False
    stack = viewer.add_image(np.stack([discs_image(seed=k) for k in range(2)]), name="stack")
    predict_widget.image_picker.combo.value = stack
    run(qtbot, predict_widget, predict_widget.run_prediction)
    assert "stack mask" in viewer.layers and "stack uncertainty" not in viewer.layers
    predict_widget.with_uncertainty.value = True
    run(qtbot, predict_widget, predict_widget.run_prediction)
    probabilities = viewer.layers["stack probabilities"].data  # (2, 128, 128): the foreground
    np.testing.assert_allclose(
        viewer.layers["stack uncertainty"].data,
        uncertainty(np.stack([1 - probabilities, probabilities])),
        atol=1e-5,
    )


def masks_of(model, image: np.ndarray) -> np.ndarray:
    return class_mask(predict(image, model, tile_size=default_tile_size(model), device="cpu"))


@pytest.mark.parametrize("live_preview", [True, False])
def test_fine_tune_says_what_changed_in_view_and_can_go_back(
    qtbot, dock, monkeypatch, live_preview
):
    threads = []
    real_predict = _finetune_job.predict

    def recording_predict(*args, **kwargs):
        threads.append(threading.current_thread())
        return real_predict(*args, **kwargs)

    monkeypatch.setattr(_finetune_job, "predict", recording_predict)
    viewer, widget = dock
    finetune, state = widget.finetune, model_state(viewer)
    finetune.settings.live_preview.value = live_preview
    annotate(viewer, widget)
    parent = copy.deepcopy(state.model)
    assert not finetune.back_button.enabled  # nothing to go back from yet
    run(qtbot, finetune, finetune.start_finetune)
    assert len(threads) == 2 and threading.main_thread() not in threads  # before and after

    image, strokes = viewer.layers["discs"].data, finetune.annotation_picker.layer.data
    changes = class_changes(masks_of(parent, image), masks_of(state.model, image), strokes)
    assert changes.changed > 0  # 15 iterations at 1e-2 move a fresh model
    assert changes.strokes is not None and changes.strokes.painted == np.count_nonzero(strokes)
    status = finetune.status.text()
    names = {1: "background", 2: "foreground"}  # the new model's class names
    agreement = changes.strokes.describe(first_run=True)  # its first run: no "before"
    assert "changed class" not in status  # against random weights: the shares are said
    assert f"On the image, {agreement}; {changes.describe_shares(names)}." in status, status
    assert "before)" not in status
    assert widget.model.back_button.enabled and finetune.back_button.enabled

    finetune.back_button.changed.emit(True)  # one click
    assert state.name == "tiny" and not finetune.back_button.enabled
    np.testing.assert_array_equal(masks_of(state.model, image), masks_of(parent, image))


def test_changes_are_counted_on_the_slice_in_view_of_a_stack(qtbot, dock):
    viewer, widget = dock
    stack = viewer.add_image(np.stack([discs_image(seed=k) for k in range(3)]), name="stack")
    widget.annotate.image_picker.combo.value = stack
    paint_strokes(widget.annotate.create_annotation_layer().data[2])
    viewer.dims.set_current_step(0, 1)
    state = model_state(viewer)
    parent = copy.deepcopy(state.model)
    finetune = widget.finetune
    finetune.image_picker.combo.value = stack
    run(qtbot, finetune, finetune.start_finetune)
    changes = class_changes(masks_of(parent, stack.data[1]), masks_of(state.model, stack.data[1]))
    names = {1: "background", 2: "foreground"}
    said = finetune.status.text()
    where = "(no strokes there: they are on slice 2; have one of those in view at Start"
    shares = changes.describe_shares(names)  # its first run: the shares of the slice in view
    assert f"On slice 1 (in view when the run started), {shares} {where}" in said


def test_a_restarted_run_is_compared_with_the_model_go_back_returns_to(qtbot, dock, monkeypatch):
    """With "Start each run from …" on, the second run restarts from the first run's
    starting model; its "before" is still the model the user had (Go back's)."""
    viewer, widget = dock
    state, finetune = model_state(viewer), widget.finetune
    widget.model.use_model(as_trained(tiny_model()), "trained")
    base = copy.deepcopy(state.model)
    strokes = annotate(viewer, widget).data
    statuses = []
    on_update = FinetuneWidget._on_update
    monkeypatch.setattr(
        FinetuneWidget,
        "_on_update",
        lambda self, update: statuses.append(update) or on_update(self, update),
    )
    run(qtbot, finetune, finetune.start_finetune)
    assert FINETUNE_STARTS in statuses and TRAINING_STARTS not in statuses  # a trained model
    with torch.no_grad():  # stands in for what the first run learnt: far from the base
        state.model.head.bias.add_(torch.tensor([-4.0, 4.0]))
    had = copy.deepcopy(state.model)
    state.repeat_of = None  # the same strokes again: allowed as after a run cut short
    run(qtbot, finetune, finetune.start_finetune)  # restarts from the base
    image = viewer.layers["discs"].data
    after = masks_of(state.model, image)
    expected = class_changes(masks_of(had, image), after, strokes)
    from_base = class_changes(masks_of(base, image), after, strokes)
    assert expected.strokes.right_before != from_base.strokes.right_before  # the test can tell
    names = {1: "background", 2: "foreground"}
    said = f"On the image, {expected.strokes.describe()}; {expected.describe(names)}."
    assert said in finetune.status.text(), finetune.status.text()
    finetune.back_button.changed.emit(True)
    np.testing.assert_array_equal(masks_of(state.model, image), masks_of(had, image))

"""The Fine-tune section's "Show loss weights" checks annotations against the loaded model."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from helpers import tiny_model
from napari_unet._widgets import _loss_weights
from napari_unet._widgets._loss_weights import loss_weights_job
from napari_unet.config import WeightConfig
from napari_unet.training.weights import weight_map

pytestmark = pytest.mark.gui


def paint_many_classes_array() -> np.ndarray:
    """Strokes of 18 classes, 0 elsewhere (an instance image's look), 128 x 128."""
    strokes = np.zeros((128, 128), dtype=np.uint8)
    for label in range(1, 19):
        strokes[6 * label : 6 * label + 2, 10:40] = label
    return strokes


def paint_many_classes(widget) -> np.ndarray:
    """:func:`paint_many_classes_array` on the dock's new annotation layer; returns them."""
    layer = widget.annotate.create_annotation_layer()
    layer.data[:] = paint_many_classes_array()
    layer.refresh()
    return layer.data.copy()


def show_weights(qtbot, widget) -> None:
    with qtbot.waitSignal(widget.finetune.loss_weights.finished, timeout=10_000):
        assert widget.finetune.loss_weights.show() is not None


def test_a_many_class_model_gets_its_weights_without_a_warning(qtbot, dock, monkeypatch):
    viewer, widget = dock
    widget.model.use_model(tiny_model(n_classes=19), "nineteen classes")
    strokes = paint_many_classes(widget)
    warned: list[str] = []

    def job_recording_warnings(*args):
        with warnings.catch_warnings(record=True) as caught:  # in the worker's thread
            warnings.simplefilter("always")
            weights = yield from loss_weights_job(*args)
        warned.extend(str(w.message) for w in caught if "instance image" in str(w.message))
        return weights

    monkeypatch.setattr(_loss_weights, "loss_weights_job", job_recording_warnings)
    show_weights(qtbot, widget)
    assert warned == []  # no "is this an instance image?": the model has 19 classes
    # (only that warning is kept: the record is process-wide while the worker runs)
    shown = viewer.layers["discs loss weights"].data
    np.testing.assert_allclose(shown, weight_map(strokes, WeightConfig(), n_classes=19), rtol=1e-6)


def test_the_job_warns_of_an_instance_image_only_without_a_class_count():
    strokes = paint_many_classes_array()
    with pytest.warns(UserWarning, match="instance image"):
        collect(loss_weights_job(strokes[None], [(0,)], WeightConfig()))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        weights = collect(loss_weights_job(strokes[None], [(0,)], WeightConfig(), 19))
    np.testing.assert_allclose(weights[0], weight_map(strokes, WeightConfig(), n_classes=19))


def collect(job):
    """Run a generator job to its end; returns its value."""
    try:
        while True:
            next(job)
    except StopIteration as stop:
        return stop.value


def test_labels_above_the_models_classes_are_an_error_not_weights(qtbot, dock, notifications):
    viewer, widget = dock  # its tiny model has 2 classes
    paint_many_classes(widget)
    show_weights(qtbot, widget)
    assert "discs loss weights" not in viewer.layers
    assert any("the model has 2 classes" in str(note.message) for note in notifications)

"""Where Predict's outputs go in the layer list, and which layer the tools act on after."""

from __future__ import annotations

import pytest

from napari_unet._sample_data import synthetic_nuclei_sample
from test_widgets import annotate, dock, run  # noqa: F401

pytestmark = pytest.mark.gui


def test_predict_keeps_the_strokes_on_top_and_active(qtbot, dock):
    viewer, widget = dock
    strokes = annotate(viewer, widget)
    user_points = viewer.add_points([[10, 10]], name="my points")
    run(qtbot, widget.predict, widget.predict.run_prediction)
    mask = viewer.layers["discs mask"]
    assert mask.visible
    # painted corrections show over the mask and land in the layer that trains
    assert viewer.layers[-1] is strokes and viewer.layers.selection.active is strokes
    assert viewer.layers.index(mask) < viewer.layers.index(strokes)
    assert user_points in viewer.layers  # other layers stay
    run(qtbot, widget.predict, widget.predict.run_prediction)  # again: still on top
    assert viewer.layers[-1] is strokes and viewer.layers.selection.active is strokes


def test_without_strokes_the_new_mask_is_the_active_layer(qtbot, dock):
    viewer, widget = dock
    run(qtbot, widget.predict, widget.predict.run_prediction)
    assert viewer.layers.selection.active is viewer.layers["discs mask"]


def test_the_samples_ground_truth_opens_hidden_under_the_image():
    (image, _, _), (truth, truth_display, kind) = synthetic_nuclei_sample()
    assert kind == "labels" and truth.shape == image.shape
    assert truth_display["visible"] is False  # strokes are painted over the image, not over it

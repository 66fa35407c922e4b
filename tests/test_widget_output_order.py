"""Where Predict's outputs go in the layer list, and which layer the tools act on after."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import annotate, run
from napari_unet._sample_data import synthetic_nuclei_sample
from napari_unet._widgets._layers import MASK_TINT
from napari_unet._widgets._predict_outputs import MASK_CONTOUR

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


def test_a_labels_layer_added_since_the_last_run_does_not_cover_the_new_mask(qtbot, dock):
    viewer, widget = dock
    run(qtbot, widget.predict, widget.predict.run_prediction)
    truth = viewer.add_labels(np.ones((64, 64), np.uint8), name="ground truth")
    run(qtbot, widget.predict, widget.predict.run_prediction)
    mask = viewer.layers["discs mask"]
    assert viewer.layers.index(mask) > viewer.layers.index(truth)
    assert viewer.layers.selection.active is mask


def test_without_strokes_the_new_mask_is_the_active_layer(qtbot, dock):
    viewer, widget = dock
    run(qtbot, widget.predict, widget.predict.run_prediction)
    assert viewer.layers.selection.active is viewer.layers["discs mask"]


def test_the_samples_ground_truth_opens_hidden_under_the_image():
    (image, _, _), (truth, truth_display, kind) = synthetic_nuclei_sample()
    assert kind == "labels" and truth.shape == image.shape
    assert truth_display["visible"] is False  # strokes are painted over the image, not over it


def test_hidden_outputs_start_at_black_so_additive_blending_leaves_the_image(qtbot, dock):
    viewer, widget = dock
    run(qtbot, widget.predict, widget.predict.run_prediction)
    for kind in ("probabilities", "weight map", "uncertainty"):
        layer = viewer.layers[f"discs {kind}"]
        assert layer.blending == "additive" and not layer.visible
        np.testing.assert_allclose(layer.colormap.map(np.array([0.0]))[0, :3], 0.0, atol=0.02)
    kinds = ("weight map", "uncertainty", "probabilities")
    colormaps = {viewer.layers[f"discs {kind}"].colormap.name for kind in kinds}
    assert len(colormaps) == 3  # told apart when shown together


def test_predict_hides_the_loss_weights_that_would_cover_its_mask(qtbot, dock):
    viewer, widget = dock
    strokes = annotate(viewer, widget)
    with qtbot.waitSignal(widget.finetune.loss_weights.finished, timeout=10_000):
        assert widget.finetune.loss_weights.show() is not None
    loss_weights = viewer.layers["discs loss weights"]
    assert loss_weights.visible
    assert viewer.layers.selection.active is strokes  # the brush stays on the strokes
    run(qtbot, widget.predict, widget.predict.run_prediction)
    assert not loss_weights.visible and viewer.layers["discs mask"].visible
    # the paper's weights look the same wherever they are shown
    assert loss_weights.colormap.name == viewer.layers["discs weight map"].colormap.name


def test_the_mask_is_outlined_so_strokes_and_merges_show(qtbot, dock):
    viewer, widget = dock
    run(qtbot, widget.predict, widget.predict.run_prediction)
    mask = viewer.layers["discs mask"]
    assert mask.contour == MASK_CONTOUR > 0
    instances = viewer.layers["discs instances"]
    assert instances.contour == 0  # the other outputs as napari shows them
    mask.contour = 0  # the user wants it filled: a new run keeps that
    run(qtbot, widget.predict, widget.predict.run_prediction)
    assert viewer.layers["discs mask"] is mask and mask.contour == 0


def test_the_mask_is_a_paler_shade_of_the_strokes_colours(qtbot, dock):
    viewer, widget = dock
    strokes = annotate(viewer, widget)
    run(qtbot, widget.predict, widget.predict.run_prediction)
    mask = viewer.layers["discs mask"]
    painted = strokes.colormap.map(np.array([1, 2]))[:, :3]
    predicted = mask.colormap.map(np.array([1, 2]))
    assert predicted[0, 3] == 0  # background: not drawn
    np.testing.assert_allclose(predicted[1, :3], painted[1] + MASK_TINT * (1 - painted[1]))
    assert (predicted[1, :3] > painted[1] + 0.1).any()  # told apart where strokes cross it

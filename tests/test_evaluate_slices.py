"""Evaluate on a stack names the slice it scored and says when the slider left it; its
words on class masks say what the label values mean."""

from __future__ import annotations

import numpy as np
import pytest
from napari.layers import Image, Labels

from helpers import tiny_model
from napari_unet._widgets import model_state
from napari_unet._widgets._evaluate import EvaluatePanel, semantic_offset
from napari_unet._widgets._layers import LayerCombo, show_output

pytestmark = pytest.mark.gui


def stack_panel(make_napari_viewer, n_slices: int = 3, shape=(32, 32)):
    """A viewer with a stack, its ground truth and its "instances" prediction (the truth
    itself on slice 1, nothing elsewhere), and an Evaluate panel on it."""
    viewer = make_napari_viewer()
    truth = np.zeros((n_slices, *shape), np.uint32)
    truth[:, 4:12, 4:12], truth[:, 18:28, 18:28] = 1, 2
    image = viewer.add_image(truth.astype(np.float32), name="stack")
    viewer.add_labels(truth, name="truth")
    predicted = np.zeros_like(truth)
    predicted[1] = truth[1]
    placement = {"scale": [1.0] * truth.ndim, "translate": [0.0] * truth.ndim}
    show_output(viewer, image, "instances", predicted, Labels, placement=placement)
    model_state(viewer).set_model(tiny_model(), "tiny")
    panel = EvaluatePanel(viewer, LayerCombo(viewer, Image, "Image"))
    panel.image_picker.combo.value = image
    panel.truth_picker.combo.value = viewer.layers["truth"]
    return viewer, panel


def test_the_scores_name_the_slice_scored(make_napari_viewer):
    viewer, panel = stack_panel(make_napari_viewer)
    viewer.dims.set_current_step(0, 1)
    panel.run()
    assert panel.result.text().startswith("Slice 1, at IoU 0.5: F1 1.000")
    viewer.dims.set_current_step(0, 2)
    panel.run()
    assert panel.result.text().startswith("Slice 2, at IoU 0.5: F1 0.000")


def test_moving_the_slider_marks_the_scores_as_another_slices(make_napari_viewer):
    viewer, panel = stack_panel(make_napari_viewer)
    viewer.dims.set_current_step(0, 1)
    panel.run()
    scored = panel.result.text()
    viewer.dims.set_current_step(0, 2)
    shown = panel.result.text()
    assert shown.startswith("Slice 2 is in view now, not the one scored: Evaluate again")
    assert "Evaluate again" in shown and shown.endswith(scored)  # the scores stay readable
    viewer.dims.set_current_step(0, 1)  # back on the slice scored: the note goes
    assert panel.result.text() == scored


def test_a_deeper_layers_slider_past_the_stack_stays_on_its_last_slice(make_napari_viewer):
    viewer, panel = stack_panel(make_napari_viewer)
    viewer.add_image(np.zeros((8, 32, 32), np.float32), name="deeper")
    viewer.dims.set_current_step(0, 5)  # past the 3 slices: the stack's last one is scored
    panel.run()
    scored = panel.result.text()
    assert scored.startswith("Slice 2, ")
    viewer.dims.set_current_step(0, 7)  # still the stack's slice 2
    assert panel.result.text() == scored
    viewer.dims.set_current_step(0, 0)
    assert panel.result.text().startswith("Slice 0 is in view now, not the one scored")


def test_a_single_image_names_no_slice(make_napari_viewer):
    viewer = make_napari_viewer()
    truth = np.zeros((32, 32), np.uint32)
    truth[4:12, 4:12] = 1
    image = viewer.add_image(truth.astype(np.float32), name="single")
    viewer.add_labels(truth, name="truth")
    show_output(
        viewer, image, "instances", truth.copy(), Labels,
        placement={"scale": [1.0, 1.0], "translate": [0.0, 0.0]},
    )  # fmt: skip
    panel = EvaluatePanel(viewer, LayerCombo(viewer, Image, "Image"))
    panel.image_picker.combo.value = image
    panel.truth_picker.combo.value = viewer.layers["truth"]
    panel.run()
    assert panel.result.text().startswith("At IoU 0.5: F1 1.000")


def test_class_mask_words_say_what_each_value_means():
    instance_labels = np.array([[0, 1, 5]])
    with pytest.raises(ValueError) as one_class:
        semantic_offset(instance_labels, 2, annotation=False)
    message = str(one_class.value)
    assert "2 to 2" not in message and "= classes" not in message
    assert "0 = not scored, 1 = background, 2 = the foreground class" in message
    with pytest.raises(ValueError) as three_classes:
        semantic_offset(instance_labels, 4, annotation=False)
    assert "2 to 4 = the 3 foreground classes" in str(three_classes.value)
    with pytest.raises(ValueError) as binary:
        semantic_offset(np.array([[0, 1]]), 3, annotation=False)
    assert "2 to 3 = the 2 foreground classes" in str(binary.value)
    offset, note = semantic_offset(np.array([[0, 1]]), 2, annotation=False)
    assert offset == 1 and "1 = the foreground class (label 2)" in note
    assert "class 2" not in note.replace("class (label 2)", "")

"""An image and its annotation layer stay linked when either is renamed; a layer that no
longer fits the image's planes is set aside instead of blocking the user."""

from __future__ import annotations

import numpy as np
import pytest
from napari.utils.colormaps.standardize_color import transform_color

from helpers import annotate, discs_image, run, tiny_model
from napari_unet._widgets._layers import ANNOTATION_BRUSH_SIZE, class_colour, is_annotation

pytestmark = pytest.mark.gui


def test_renaming_the_image_or_its_strokes_keeps_the_link(qtbot, dock):
    viewer, widget = dock
    strokes = annotate(viewer, widget)
    painted = int(np.count_nonzero(strokes.data))
    viewer.layers["discs"].name = "cells"
    strokes.name = "my strokes"
    assert widget.annotate.annotation_layer is strokes
    assert widget.finetune.annotation_picker.layer is strokes
    assert widget.annotate.create_annotation_layer() is strokes  # not a new, empty layer
    assert "Annotated on “my strokes”" in widget.annotate.counts.text()
    viewer.add_image(discs_image(seed=1), name="discs")  # a new image with the old name
    widget.annotate.image_picker.combo.value = viewer.layers["discs"]
    assert widget.annotate.annotation_layer is None  # the strokes belong to “cells”
    widget.finetune.image_picker.combo.value = viewer.layers["cells"]
    assert widget.finetune.annotation_picker.layer is strokes
    run(qtbot, widget.finetune, widget.finetune.start_finetune)
    assert "Done" in widget.finetune.status.text()
    assert int(np.count_nonzero(strokes.data)) == painted


def test_strokes_of_a_closed_and_reopened_image_are_found_by_name(dock):
    viewer, widget = dock
    strokes = annotate(viewer, widget)
    viewer.layers.remove("discs")
    viewer.add_image(discs_image(), name="discs")  # the same file opened again
    widget.annotate.image_picker.combo.value = viewer.layers["discs"]
    assert widget.annotate.annotation_layer is strokes
    assert widget.finetune.annotation_picker.layer is strokes


def test_a_layer_that_no_longer_fits_the_image_is_set_aside(dock):
    viewer, widget = dock
    two_channels = np.stack([discs_image((64, 64)), discs_image((64, 64), seed=3)])
    image = viewer.add_image(two_channels, name="two")
    widget.annotate.image_picker.combo.value = image
    old = widget.annotate.create_annotation_layer()  # 1-channel model: a stack of 2 planes
    assert old.data.shape == (2, 64, 64)
    two = tiny_model(in_channels=2)
    widget.model.use_model(two, "two channels")
    new = widget.annotate.create_annotation_layer()
    assert new is not old and new.data.shape == (64, 64)
    assert not is_annotation(old) and old in viewer.layers  # kept, no longer linked
    widget.finetune.image_picker.combo.value = image
    assert widget.finetune.annotation_picker.layer is new


def test_an_image_with_its_channels_after_a_stack_axis_is_refused_not_misaligned(
    dock, notifications
):
    """(Z, C, Y, X): annotations and outputs without the channel axis would sit on the
    image's C slider, so strokes on one slice would train another."""
    viewer, widget = dock
    planes = [discs_image((64, 64), seed=seed) for seed in range(12)]
    image = viewer.add_image(np.stack(planes).reshape(4, 3, 64, 64), name="zcyx")
    widget.annotate.image_picker.combo.value = image
    assert widget.annotate.create_annotation_layer() is None
    widget.predict.image_picker.combo.value = image
    assert widget.predict.run_prediction() is None
    assert "zcyx annotations" not in viewer.layers and len(viewer.layers) == 2
    errors = [note.message for note in notifications]
    assert any("channel axis" in message and "moveaxis" in message for message in errors)
    channels_first = viewer.add_image(np.stack(planes).reshape(3, 4, 64, 64), name="czyx")
    widget.annotate.image_picker.combo.value = channels_first
    layer = widget.annotate.create_annotation_layer()
    assert layer is not None and layer.data.shape[-2:] == (64, 64)


def test_a_new_annotation_layer_starts_with_a_thin_brush_that_the_user_can_change(dock):
    _viewer, widget = dock
    layer = widget.annotate.create_annotation_layer()
    assert layer.brush_size == ANNOTATION_BRUSH_SIZE == 3  # napari's own default is 10
    layer.brush_size = 7
    assert widget.annotate.create_annotation_layer() is layer
    assert layer.brush_size == 7  # the user's choice stays


def test_strokes_saved_and_opened_again_are_the_images_strokes_not_a_ground_truth(qtbot, dock):
    """napari's File → Save keeps no layer metadata: the strokes come back as a plain
    Labels layer named "<image> annotations" (the name Save proposes for the file)."""
    viewer, widget = dock
    painted = np.array(annotate(viewer, widget).data)
    viewer.layers.remove("discs annotations")
    truth = viewer.add_labels((discs_image() > 0.5).astype(np.uint8), name="truth")
    evaluation = widget.predict.evaluation
    assert evaluation.truth_picker.layer is truth
    reopened = viewer.add_labels(painted, name="discs annotations")  # no mark, 10 px brush
    viewer.layers.selection.active = truth
    viewer.layers.selection.active = reopened  # selected to paint on: followed as strokes only
    assert evaluation.truth_picker.layer is truth
    assert widget.finetune.annotation_picker.layer is reopened
    assert widget.annotate.annotation_layer is reopened  # picked up: marked and dressed at once
    assert is_annotation(reopened) and reopened.brush_size == ANNOTATION_BRUSH_SIZE
    assert widget.annotate.create_annotation_layer() is reopened  # not a new, empty one
    assert np.allclose(reopened.colormap.map(2), transform_color(class_colour(2))[0])
    np.testing.assert_array_equal(reopened.data, painted)
    evaluation.truth_picker.combo.value = reopened  # the user's choice: refused for objects
    evaluation.truth_picker._note_user_choice()
    evaluation.kind.value = "instances"
    run(qtbot, widget.predict, widget.predict.run_prediction)
    assert evaluation.run() is None
    assert "holds strokes" in evaluation.result.text()

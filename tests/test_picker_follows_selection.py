"""The dock's layer pickers follow the layer selected in napari's layer list (unless the
user chose in the picker), and a label image offered as an image is marked and explained."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import discs_image

pytestmark = pytest.mark.gui


def image_pickers(widget):
    return {
        "predict": widget.predict.image_picker,
        "annotate": widget.annotate.image_picker,
        "finetune": widget.finetune.image_picker,
    }


def choose_by_hand(picker, layer) -> None:
    """What the user does: pick ``layer`` in the combo box's list (QComboBox.activated)."""
    picker.combo.value = layer
    picker.combo.native.activated.emit(picker.combo.native.currentIndex())


def test_the_image_pickers_follow_the_image_selected_in_the_layer_list(dock):
    viewer, widget = dock
    discs = viewer.layers["discs"]
    other = viewer.add_image(discs_image(seed=1), name="other")  # opened: chosen everywhere
    assert all(picker.layer is other for picker in image_pickers(widget).values())
    viewer.layers.selection.active = discs  # the user clicks "discs" in the layer list
    assert {name: p.layer.name for name, p in image_pickers(widget).items()} == dict.fromkeys(
        image_pickers(widget), "discs"
    )
    labels = viewer.add_labels(np.zeros((128, 128), np.uint8), name="truth")
    viewer.layers.selection.active = labels  # no image: the image pickers stay
    assert all(picker.layer is discs for picker in image_pickers(widget).values())


def test_a_picker_the_user_chose_in_keeps_its_choice(dock):
    viewer, widget = dock
    discs = viewer.layers["discs"]
    other = viewer.add_image(discs_image(seed=1), name="other")
    choose_by_hand(widget.predict.image_picker, discs)
    viewer.layers.selection.active = discs
    viewer.layers.selection.active = other  # the user looks at "other"
    assert widget.predict.image_picker.layer is discs  # chosen by hand: kept
    assert widget.annotate.image_picker.layer is other  # not chosen by hand: follows
    assert "until you choose one here" in str(widget.predict.image_picker.combo.tooltip)


def test_a_label_image_selected_in_the_layer_list_is_not_taken_as_the_image(dock):
    viewer, widget = dock
    discs = viewer.layers["discs"]
    mask = viewer.add_image((discs_image() > 0.5).astype(np.uint8), name="mask")
    viewer.layers.selection.active = discs
    viewer.layers.selection.active = mask
    assert all(picker.layer is discs for picker in image_pickers(widget).values())


def test_the_annotation_picker_follows_the_annotation_layer_selected(dock):
    viewer, widget = dock
    discs = viewer.layers["discs"]
    other = viewer.add_image(discs_image(seed=1), name="other")
    widget.annotate.image_picker.combo.value = discs
    discs_annotations = widget.annotate.create_annotation_layer()
    widget.annotate.image_picker.combo.value = other
    other_annotations = widget.annotate.create_annotation_layer()  # made active by Annotate
    finetune = widget.finetune
    assert finetune.image_picker.layer is other
    assert finetune.annotation_picker.layer is other_annotations
    viewer.layers.selection.active = discs_annotations  # the pair follows: image, annotations
    assert finetune.image_picker.layer is discs
    assert finetune.annotation_picker.layer is discs_annotations
    truth = viewer.add_labels(np.zeros((128, 128), np.uint8), name="truth")
    viewer.layers.selection.active = other
    viewer.layers.selection.active = truth  # a Labels layer the user made: not followed
    assert finetune.image_picker.layer is other
    assert finetune.annotation_picker.layer is other_annotations


def test_a_label_image_offered_as_an_image_is_marked_and_explained(dock, notifications):
    viewer, widget = dock
    viewer.add_image((discs_image() > 0.5).astype(np.uint8) * 255, name="ground truth")
    mask = viewer.layers["ground truth"]
    for picker in image_pickers(widget).values():
        combo = picker.combo.native
        items = [combo.itemText(index) for index in range(combo.count())]
        assert "ground truth (labels?)" in items and "discs" in items
    choose_by_hand(widget.predict.image_picker, mask)
    assert "Convert to Labels" in str(widget.predict.image_picker.combo.tooltip)
    said = [str(n.message) for n in notifications if "Convert to Labels" in str(n.message)]
    assert len(said) == 1 and said[0].startswith("“ground truth” looks like a mask")
    choose_by_hand(widget.annotate.image_picker, mask)  # told once: no second notification
    assert len([n for n in notifications if "Convert to Labels" in str(n.message)]) == 1
    choose_by_hand(widget.predict.image_picker, viewer.layers["discs"])
    assert "Convert to Labels" not in str(widget.predict.image_picker.combo.tooltip)

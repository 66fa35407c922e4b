"""Layer combo boxes: magicgui's napari layer combos, plus the choices they do not make."""

from __future__ import annotations

import napari
import numpy as np
import pytest
from magicgui.widgets import ComboBox

from helpers import annotate, discs_image, run

pytestmark = pytest.mark.gui


def names(picker) -> list[str]:
    """The listed layers' names, sorted (magicgui adds a new choice last, whatever its place)."""
    return sorted(layer.name for layer in picker.layers())


def image_pickers(widget) -> list:
    return [widget.annotate.image_picker, widget.finetune.image_picker, widget.predict.image_picker]


def test_image_combo_lists_exactly_the_image_layers_and_follows_them(qtbot, dock):
    viewer, widget = dock
    discs = viewer.layers["discs"]
    pickers = image_pickers(widget)
    for picker in pickers:
        assert isinstance(picker.combo, ComboBox) and picker.combo.annotation is napari.layers.Image
        assert picker.combo.label == "Image"
    viewer.add_labels(np.zeros((128, 128), np.uint8), name="labels")
    viewer.add_points([[10, 10]], name="points")
    run(qtbot, widget.predict, widget.predict.run_prediction)  # adds Image outputs
    assert [names(picker) for picker in pickers] == [["discs"]] * 3  # no outputs, no Labels

    second = viewer.add_image(discs_image(seed=1), name="second")
    assert [names(picker) for picker in pickers] == [["discs", "second"]] * 3
    assert [picker.layer for picker in pickers] == [second] * 3  # a new image is followed
    assert [picker.combo.current_choice for picker in pickers] == ["second"] * 3

    viewer.layers.move(viewer.layers.index(second), 0)  # below discs now
    assert [names(picker) for picker in pickers] == [["discs", "second"]] * 3
    assert [picker.layer for picker in pickers] == [second] * 3  # the choice stays

    second.name = "renamed"
    assert [picker.layer for picker in pickers] == [second] * 3  # still chosen, new text
    assert [picker.combo.current_choice for picker in pickers] == ["renamed"] * 3

    assert [names(picker) for picker in pickers] == [["discs", "renamed"]] * 3
    viewer.layers.remove(second)
    assert [names(picker) for picker in pickers] == [["discs"]] * 3
    assert [picker.layer for picker in pickers] == [discs] * 3  # not the empty item

    viewer.layers.remove(discs)
    assert [names(picker) for picker in pickers] == [[]] * 3
    assert [picker.layer for picker in pickers] == [None] * 3


def test_annotations_combo_never_chooses_a_ground_truth_by_itself(dock):
    viewer, widget = dock
    picker = widget.finetune.annotation_picker
    assert isinstance(picker.combo, ComboBox) and picker.combo.annotation is napari.layers.Labels
    truth = viewer.add_labels(np.zeros((128, 128), np.uint16), name="discs ground truth")
    assert picker.layer is None and picker.layers() == [truth]  # listed, not chosen
    layer = annotate(viewer, widget)
    assert picker.layer is layer
    viewer.layers.remove(layer)
    assert picker.layers() == [truth] and picker.layer is None  # not the truth instead
    picker.combo.value = truth  # the user may choose it
    assert picker.layer is truth
    assert widget.predict.evaluation.truth_picker.layer is truth

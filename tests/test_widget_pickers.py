"""Layer combo boxes: magicgui's napari layer combos, plus the choices they do not make."""

from __future__ import annotations

import dask.array
import napari
import numpy as np
import pytest
import tifffile
from magicgui.widgets import ComboBox
from napari_builtins.io import imread as napari_imread  # what File → Open reads a file with
from skimage import data as skimage_data

from helpers import CENTRES, annotate, disc_labels, discs_image, run
from napari_unet._widgets import PredictWidget
from napari_unet._widgets._label_like import label_like_array, looks_like_labels

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


def test_image_pickers_do_not_follow_a_ground_truth_opened_as_an_image(dock, shared_data):
    viewer, widget = dock
    discs, pickers = viewer.layers["discs"], image_pickers(widget)
    folder = shared_data / "dsb2018-nuclei"
    mask = viewer.add_image(tifffile.imread(folder / "mask.tif"), name="mask")  # as File → Open
    [label_png] = viewer.open(shared_data / "isbi2012-em" / "label" / "17.png", plugin="napari")
    assert isinstance(label_png, napari.layers.Image)  # how napari reads a 0/255 label PNG
    assert [names(picker) for picker in pickers] == [["17", "discs", "mask"]] * 3  # listed
    assert [picker.layer for picker in pickers] == [discs] * 3  # not followed

    nuclei = viewer.add_image(tifffile.imread(folder / "image.tif"), name="nuclei")  # uint16
    assert [picker.layer for picker in pickers] == [nuclei] * 3  # a real image still is
    viewer.layers.remove(nuclei)
    assert [picker.layer for picker in pickers] == [discs] * 3  # not the topmost truth
    for picker in pickers:
        picker.combo.value = mask  # the user may still choose it
    assert [picker.layer for picker in pickers] == [mask] * 3


def test_a_label_image_is_chosen_at_the_start_only_when_no_other_image_is_listed(
    make_napari_viewer,
):
    viewer = make_napari_viewer()
    truth = viewer.add_image(disc_labels(range(1, len(CENTRES) + 1)).astype(np.uint16), name="t")
    assert PredictWidget(viewer).image_picker.layer is truth  # nothing else to choose
    image = viewer.add_image(discs_image(), name="discs")
    viewer.layers.move(viewer.layers.index(image), 0)  # the truth is the topmost layer
    assert PredictWidget(viewer).image_picker.layer is image


@pytest.mark.parametrize(
    ("path", "labels"),
    [
        ("isbi2012-em/image/00.png", False),
        ("isbi2012-em/image/17.png", False),
        ("dsb2018-nuclei/image.tif", False),
        ("dsb2018-nuclei/mask.tif", True),
        ("isbi2012-em/label/00.png", True),
        ("isbi2012-em/label/17.png", True),
    ],
)
def test_the_real_label_files_look_like_labels_and_their_images_do_not(shared_data, path, labels):
    assert label_like_array(napari_imread(str(shared_data / path))) is labels


def test_images_with_flat_regions_or_a_zero_background_are_not_labels():
    for image in (skimage_data.camera(), skimage_data.cell(), skimage_data.moon()):
        assert not label_like_array(image)
    dim = np.random.default_rng(0).poisson(0.1, (256, 256)).astype(np.uint16)  # photon counts
    assert not label_like_array(dim)  # mostly 0, isolated pixels: not objects
    assert not label_like_array(discs_image())  # floating point: never labels
    labels = disc_labels([7, 30, 31, 99, 178, 1000])  # ids need not be consecutive
    assert label_like_array(labels) and label_like_array(np.tile(labels, (40, 70)))  # sampled


def test_single_scale_image_layers_are_judged_lazy_ones_on_their_first_plane(monkeypatch):
    from napari_unet._widgets import _label_like

    labels = disc_labels(range(1, len(CENTRES) + 1)).astype(np.uint16)
    assert looks_like_labels(napari.layers.Image(labels))
    assert not looks_like_labels(napari.layers.Labels(labels))  # only image layers
    # a folder of label PNGs opened as a stack: dask, one file a plane
    stack = np.stack([labels, np.zeros_like(labels), labels])
    reads = []
    lazy = dask.array.from_array(stack, chunks=(1, *labels.shape))
    monkeypatch.setattr(_label_like, "_first_plane", lambda data: reads.append(1) or data[0])
    layer = napari.layers.Image(lazy)
    assert looks_like_labels(layer) and looks_like_labels(layer)
    assert len(reads) == 1  # read once for the layer's array
    layer.data = dask.array.from_array((discs_image() * 255).astype(np.uint8), chunks=32)
    assert not looks_like_labels(layer) and len(reads) == 2  # new data: judged again
    floats = napari.layers.Image(dask.array.from_array(discs_image()))
    assert not looks_like_labels(floats) and len(reads) == 2  # never labels: nothing read
    monkeypatch.undo()
    assert looks_like_labels(napari.layers.Image(lazy))  # the real first plane: labels
    pyramid = [labels, labels[::2, ::2]]
    assert not looks_like_labels(napari.layers.Image(pyramid, multiscale=True))

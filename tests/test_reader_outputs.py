"""The napari reader opens the folder ``napari-unet predict --output DIR`` wrote: every
prediction in it (TIFF triplets and zarr stores) as layers named after its image, lazily,
with the provenance each file records; other folders are left to napari's readers."""

from __future__ import annotations

from pathlib import Path

import dask.array as da
import numpy as np
import pytest
import tifffile

from helpers import cli_predict
from napari_unet import _reader
from napari_unet._widgets._layers import OUTPUT_KEY, class_colormap, mask_colormap
from napari_unet.io.outofcore import open_outputs
from napari_unet.io.reruns import stored_provenance

KINDS = ("probabilities", "instances", "mask")


@pytest.fixture(scope="module")
def outputs(tmp_path_factory) -> Path:
    """An output folder: TIFFs of a plane and of a 3-slice stack, a store of another plane."""
    from helpers import tiny_model
    from napari_unet import save_model

    folder = tmp_path_factory.mktemp("predicted")
    checkpoint = save_model(tiny_model(), folder / "model.safetensors")
    rng = np.random.default_rng(3)
    tifffile.imwrite(folder / "plane.tif", rng.integers(0, 4000, (40, 48)).astype(np.uint16))
    stack = rng.integers(0, 4000, (3, 40, 48)).astype(np.uint16)
    tifffile.imwrite(folder / "stack.tif", stack, photometric="minisblack")
    tifffile.imwrite(folder / "tiles.tif", rng.integers(0, 4000, (40, 48)).astype(np.uint16))
    inputs = [folder / "plane.tif", folder / "stack.tif"]
    assert cli_predict(inputs, checkpoint, folder / "out", "--threads", "1") == 0
    zarr_options = ("--threads", "1", "--output-format", "zarr")
    assert cli_predict(folder / "tiles.tif", checkpoint, folder / "out", *zarr_options) == 0
    return folder / "out"


def test_an_output_folder_opens_as_every_prediction_in_it(outputs):
    read = _reader.get_reader(str(outputs))
    assert read is not None and _reader.get_reader([str(outputs)]) is not None
    layers = read(str(outputs))
    names = [f"{stem} {kind}" for stem in ("plane", "stack", "tiles") for kind in KINDS]
    assert [meta["name"] for _, meta, _ in layers] == names
    assert [kind for _, _, kind in layers] == ["image", "labels", "labels"] * 3
    # the first image's mask shows; the others' would cover it
    assert [meta.get("visible", True) for _, meta, _ in layers] == [False, False, True] + [
        False
    ] * 6
    shapes = [(40, 48)] * 3 + [(3, 40, 48)] * 3 + [(40, 48)] * 3
    assert [data.shape for data, _, _ in layers] == shapes
    assert [data.dtype for data, _, _ in layers] == [np.float32, np.uint32, np.uint8] * 3
    assert all(isinstance(data, da.Array) for data, _, _ in layers)  # lazy: nothing read
    for stem, first in (("plane", 0), ("stack", 3)):
        files = {kind: outputs / f"{stem}_{kind}.tif" for kind in ("prob", "instances", "mask")}
        probabilities = tifffile.imread(files["prob"])
        foreground = probabilities[:, 1] if probabilities.ndim == 4 else probabilities[1]
        np.testing.assert_array_equal(np.asarray(layers[first][0]), foreground)
        for offset, kind in ((1, "instances"), (2, "mask")):
            np.testing.assert_array_equal(
                np.asarray(layers[first + offset][0]), tifffile.imread(files[kind])
            )
        for offset, kind in enumerate(files):
            recorded = layers[first + offset][1]["metadata"]
            assert recorded["napari_unet_file"] == str(files[kind])
            assert recorded["napari_unet_provenance"] == stored_provenance(files["mask"])
            assert recorded["napari_unet_provenance"]["input"]["name"] == f"{stem}.tif"
            assert recorded[OUTPUT_KEY] is True  # the dock's pickers take them for no image
    store = outputs / "tiles_prediction.zarr"
    np.testing.assert_array_equal(np.asarray(layers[8][0]), open_outputs(store)["mask"][:])
    assert layers[8][1]["metadata"]["napari_unet_provenance"]["input"]["name"] == "tiles.tif"
    colours = layers[5][1]["colormap"].color_dict
    assert colours[2][3] == 1 and colours[1][3] == 0  # the class colour, background not
    predicted = mask_colormap(2).color_dict  # as Predict draws a mask: paler than strokes
    np.testing.assert_allclose(colours[2], predicted[2])
    assert colours[2][0] > class_colormap(2).color_dict[2][0]


def test_a_tiff_is_read_one_plane_at_a_time_and_never_stale(outputs, tmp_path, monkeypatch):
    pages = []
    read_pages = _reader._read_pages

    def counting(path, page, version):
        pages.append((Path(path).name, page))
        return read_pages(path, page, version)

    monkeypatch.setattr(_reader, "_read_pages", counting)
    layers = _reader.read_prediction_folder(str(outputs))
    assert pages == []
    np.asarray(layers[5][0][2])  # slice 2 of the stack's mask
    assert pages == [("stack_mask.tif", 2)]
    np.asarray(layers[3][0][1])  # slice 1 of the stack's foreground probabilities
    assert pages[1:] == [("stack_prob.tif", 3)]  # (Z, C) = (1, 1): the fourth page
    # a file predicted again is a new graph: napari's dask cache cannot show the old one
    first = _reader._tiff_array(outputs / "plane_mask.tif")
    copy = tmp_path / "plane_mask.tif"
    copy.write_bytes((outputs / "plane_mask.tif").read_bytes())
    before = _reader._tiff_array(copy)
    tifffile.imwrite(copy, np.full((40, 48), 2, np.uint8))
    after = _reader._tiff_array(copy)
    assert before.name != after.name and first.name != before.name
    assert int(np.asarray(after).min()) == 2


def test_folders_that_hold_no_prediction_are_left_to_other_readers(outputs, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    tifffile.imwrite(images / "cells.tif", np.zeros((20, 20), np.uint8))
    tifffile.imwrite(images / "cells_mask.tif", np.ones((20, 20), np.uint8))  # a ground truth
    hidden = tmp_path / "hidden"
    hidden.mkdir()
    (hidden / ".plane_mask.tif.0123456789abcdef0123456789abcdef.tmp").write_bytes(
        (outputs / "plane_mask.tif").read_bytes()
    )
    (tmp_path / "empty").mkdir()
    for path in (images, hidden, tmp_path / "empty", outputs / "plane_mask.tif", tmp_path / "no"):
        assert not _reader.is_prediction_folder(path), path
    for path in (hidden, tmp_path / "empty", outputs / "plane_mask.tif", tmp_path / "no"):
        assert _reader.get_reader(str(path)) is None, path
    assert _reader.get_reader(str(images)) is _reader.read_image_folder  # napari's own reader
    assert _reader.get_reader([str(outputs), str(outputs)]) is None


@pytest.mark.gui
def test_a_folder_of_images_opens_with_either_reader(make_napari_viewer, tmp_path):
    """npe2 offers this reader for every folder, and napari's dialog may preselect it:
    a folder of images then opens as napari's own reader opens it."""
    images = tmp_path / "slices"
    images.mkdir()
    planes = np.random.default_rng(0).integers(0, 255, (3, 16, 20), dtype=np.uint8)
    for index, plane in enumerate(planes):
        tifffile.imwrite(images / f"{index:02d}.tif", plane)
    (images / "notes.txt").write_text("not an image")
    viewer = make_napari_viewer()
    assert _reader.get_reader(str(images)) is None  # a file that is no image: not ours
    (images / "notes.txt").unlink()
    ours = viewer.open(images, plugin="napari-unet")
    napari_own = viewer.open(images, plugin="napari")
    assert len(ours) == len(napari_own) == 1
    np.testing.assert_array_equal(np.asarray(ours[0].data), planes)
    np.testing.assert_array_equal(np.asarray(napari_own[0].data), planes)


@pytest.mark.gui
def test_viewer_opens_an_output_folder(make_napari_viewer, outputs):
    from napari.layers import Image, Labels
    from napari.plugins import _npe2

    viewer = make_napari_viewer()
    assert "napari-unet" in _npe2.get_readers(str(outputs))  # the manifest's reader
    layers = viewer.open(outputs, plugin="napari-unet")
    kinds = {"probabilities": Image, "instances": Labels, "mask": Labels}
    expected = [
        (f"{stem} {kind}", kinds[kind]) for stem in ("plane", "stack", "tiles") for kind in KINDS
    ]
    assert [(layer.name, type(layer)) for layer in viewer.layers] == expected
    assert [layer.ndim for layer in layers] == [2] * 3 + [3] * 3 + [2] * 3
    assert layers[5].metadata["napari_unet_provenance"]["input"]["name"] == "stack.tif"

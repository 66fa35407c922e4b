"""The napari reader of prediction stores (``--output-format zarr``): layers, laziness,
refusing other paths, and opening a store in a real viewer (under Xvfb)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import dask.array as da
import numpy as np
import pytest
import tifffile
import zarr

from helpers import discs_image
from napari_unet import _reader
from napari_unet._widgets._layers import OUTPUT_KEY
from napari_unet.cli import main
from napari_unet.io.outofcore import open_outputs


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    """A prediction store made by the CLI from a 128 x 128 image."""
    folder = tmp_path_factory.mktemp("reader")
    tifffile.imwrite(folder / "discs.tif", discs_image())
    argv = ["predict", str(folder / "discs.tif"), "--model", "nuclei", "--output", str(folder)]
    assert main([*argv, "--output-format", "zarr"]) == 0
    return folder / "discs_prediction.zarr"


def test_reader_gives_lazy_layers_named_after_the_store(store):
    read = _reader.get_reader(str(store))
    assert read is not None
    layers = read(str(store))
    expected = [
        ("discs probabilities", "image", np.float32),
        ("discs instances", "labels", np.uint32),
        ("discs mask", "labels", np.uint8),
    ]
    assert [(meta["name"], kind, data.dtype) for data, meta, kind in layers] == expected
    stored = open_outputs(store)
    for data, _, _ in layers:
        assert isinstance(data, da.Array)  # lazy: nothing read yet
        assert data.shape == (128, 128)
    probabilities, instances, mask = (np.asarray(data) for data, _, _ in layers)
    np.testing.assert_array_equal(probabilities, stored["prob"][1])  # the foreground's
    np.testing.assert_array_equal(instances, stored["instances"][:])
    np.testing.assert_array_equal(mask, stored["mask"][:])
    assert [meta.get("visible", True) for _, meta, _ in layers] == [False, False, True]
    assert layers[2][1]["colormap"].color_dict[2][3] == 1  # the class colour, background not
    assert layers[2][1]["colormap"].color_dict[1][3] == 0
    assert _reader.get_reader([str(store)]) is not None
    # outputs, as Predict's: the dock's pickers take none for an image or a ground truth
    assert all(meta["metadata"][OUTPUT_KEY] is True for _, meta, _ in layers)


def test_large_planes_are_lazy_pyramids(store, monkeypatch):
    monkeypatch.setattr(_reader, "PYRAMID_ABOVE", 32)
    layers = _reader.read_prediction_store(str(store))
    stored = open_outputs(store)
    for levels, _, _ in layers:
        assert isinstance(levels, list) and all(isinstance(level, da.Array) for level in levels)
        assert [level.shape for level in levels] == [(128, 128), (64, 64), (32, 32), (16, 16)]
    mask = layers[2][0]
    np.testing.assert_array_equal(np.asarray(mask[2]), stored["mask"][::4, ::4])
    np.testing.assert_array_equal(np.asarray(mask[1][5:40:3, 7]), stored["mask"][10:80:6, 14])
    probabilities = np.asarray(layers[0][0][3])
    np.testing.assert_array_equal(probabilities, stored["prob"][1, ::8, ::8])


def test_reading_a_store_and_its_folder_loads_no_pytorch(store):
    """napari's reader needs neither the network nor PyTorch (about 280 MB and 4 s)."""
    code = (
        "import sys\n"
        "import numpy as np\n"
        "from napari_unet._reader import get_reader\n"
        f"for path in ({str(store)!r}, {str(store.parent)!r}):\n"
        "    layers = get_reader(path)(path)\n"
        "    assert [meta['name'] for _, meta, _ in layers][-1] == 'discs mask'\n"
        "    assert np.asarray(layers[-1][0]).max() == 2\n"
        "sys.exit(1 if 'torch' in sys.modules else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_other_paths_are_left_to_other_readers(store, tmp_path):
    plain = tmp_path / "plain.zarr"
    zarr.save_array(str(plain), np.zeros((8, 8), np.uint8))
    image = zarr.open_group(str(tmp_path / "image.zarr"), mode="w")
    image.create_array("0", data=np.zeros((8, 8), np.uint8))
    image.attrs["multiscales"] = [{"datasets": [{"path": "0"}]}]
    for path in (plain, tmp_path / "image.zarr", tmp_path, store / "mask", tmp_path / "none"):
        assert _reader.get_reader(str(path)) is None, path
    assert _reader.get_reader([str(store), str(store)]) is None


@pytest.mark.gui
def test_viewer_opens_a_store_as_layers(make_napari_viewer, store, tmp_path):
    from napari.layers import Image, Labels
    from napari.plugins import _npe2

    viewer = make_napari_viewer()
    assert "napari-unet" in _npe2.get_readers(str(store))  # the manifest's reader
    layers = viewer.open(store, plugin="napari-unet")
    assert [(layer.name, type(layer)) for layer in viewer.layers] == [
        ("discs probabilities", Image),
        ("discs instances", Labels),
        ("discs mask", Labels),
    ]
    assert layers[2].visible and not layers[0].visible and not layers[1].visible
    assert int(np.asarray(layers[2].data).max()) == 2
    plain = tmp_path / "plain.zarr"
    zarr.save_array(str(plain), np.ones((8, 8), np.uint8))
    assert viewer.open(plain)[0].data.shape == (8, 8)  # napari's own reader, as before

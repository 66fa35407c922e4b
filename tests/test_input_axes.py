"""Axes of input files: what TIFF files declare, channels-last images, 5-D zarr stores."""

import numpy as np
import pytest
import tifffile
import zarr
from PIL import Image

from helpers import cli_predict
from napari_unet.io.data import read_image
from napari_unet.io.inputs import file_axes, open_input, probe_input


def test_a_tiff_declaring_two_stacking_axes_is_refused(tmp_path, tiny_checkpoint, capsys):
    """(T, Z, Y, X) with Z = 3 was read as ZCYX: z-planes mixed into RGB luminance."""
    path = tmp_path / "movie.tif"
    tifffile.imwrite(
        path, np.zeros((5, 3, 40, 48), np.uint8), imagej=True, metadata={"axes": "TZYX"}
    )
    with pytest.raises(ValueError, match=r"2 stacking axes, T \(5\), Z \(3\).*--axes CZYX"):
        probe_input(path, 1)
    with pytest.raises(ValueError, match="stacking axes"):
        file_axes(path)
    assert probe_input(path, 5, "CZYX").axes == "CZYX"  # given axes decide
    assert cli_predict(path, tiny_checkpoint, tmp_path / "out", "--threads", "1") == 2
    assert "movie.tif: the image declares 2 stacking axes" in capsys.readouterr().err
    assert not (tmp_path / "out" / "movie_mask.tif").exists()


def test_channels_last_images_that_are_not_rgb_are_not_stacks(tmp_path):
    """Gray + alpha PNGs lose their alpha; (Y, X, 2) and (Y, X, 5) are not stacks of slivers."""
    gray = np.random.default_rng(0).integers(0, 255, (40, 48), dtype=np.uint8)
    alpha = np.full_like(gray, 255)
    Image.fromarray(np.stack([gray, alpha], axis=-1), mode="LA").save(tmp_path / "la.png")
    assert np.array_equal(read_image(tmp_path / "la.png"), gray)
    assert probe_input(tmp_path / "la.png", 1).axes == "YX"
    for channels in (2, 5):
        path = tmp_path / f"yx{channels}.tif"
        tifffile.imwrite(path, np.zeros((40, 48, channels), np.float32))
        with pytest.raises(ValueError, match=r"planes of 48 x \d pixels.*--axes YXC"):
            probe_input(path, 1)
        assert probe_input(path, channels, "YXC").axes == "YXC"


def test_tifffile_unknown_first_axis_is_left_to_the_axes_rule(tmp_path):
    """tifffile labels a plain (2, Y, X) array's first axis Q; it was taken as Z."""
    path = tmp_path / "two.tif"
    tifffile.imwrite(path, np.zeros((2, 40, 48), np.float32))
    assert file_axes(path) is None
    assert probe_input(path, 2).axes == "CYX"  # the first axis is the model's channels
    assert probe_input(path, 1).axes == "ZYX"  # else slices, as napari shows it


def test_five_d_ome_zarr_loses_its_leading_singleton_axes(tmp_path, tiny_checkpoint):
    """OME-Zarr (T, C, Z, Y, X) = (1, 1, 3, Y, X) was refused with or without --axes."""
    data = np.random.default_rng(1).integers(0, 4000, (1, 1, 3, 40, 48)).astype(np.uint16)
    group = zarr.open_group(str(tmp_path / "ome.zarr"), mode="w")
    source = group.create_array("0", shape=data.shape, chunks=(1, 1, 1, 20, 24), dtype="u2")
    source[:] = data
    info = probe_input(tmp_path / "ome.zarr", 1)
    assert (info.shape, info.axes, info.output_format) == ((3, 40, 48), "ZYX", "zarr")
    assert probe_input(tmp_path / "ome.zarr", 1, "ZYX").axes == "ZYX"
    with open_input(tmp_path / "ome.zarr") as image:
        assert not isinstance(image, np.ndarray) and image.shape == (3, 40, 48)
        assert np.array_equal(image[1, 5:9], data[0, 0, 1, 5:9])
        assert np.array_equal(np.asarray(image), data[0, 0])
    assert (
        cli_predict(tmp_path / "ome.zarr", tiny_checkpoint, tmp_path / "out", "--threads", "1") == 0
    )
    outputs = zarr.open_group(str(tmp_path / "out" / "ome_prediction.zarr"), mode="r")
    assert outputs["mask"].shape == (3, 40, 48)
    assert outputs["prob"].shape == (3, 2, 40, 48)


def _ome_zarr(path, shape):
    group = zarr.open_group(str(path), mode="w")
    group.create_array("0", shape=shape, dtype="u2")
    axes = [{"name": "t", "type": "time"}, {"name": "c", "type": "channel"}]
    axes += [{"name": name, "type": "space"} for name in "zyx"]
    group.attrs["multiscales"] = [{"version": "0.4", "axes": axes, "datasets": [{"path": "0"}]}]


def test_ome_zarr_axes_metadata_is_read(tmp_path):
    """(T, C, Z, Y, X) = (1, 2, 3, Y, X): the rule alone would read Z as 3 colour channels."""
    _ome_zarr(tmp_path / "cz.zarr", (1, 2, 3, 40, 48))
    assert file_axes(tmp_path / "cz.zarr") == "CZYX"
    assert probe_input(tmp_path / "cz.zarr", 2).axes == "CZYX"
    with pytest.raises(ValueError, match="expects 1 input channel but the image has 2"):
        probe_input(tmp_path / "cz.zarr", 1)
    _ome_zarr(tmp_path / "tz.zarr", (2, 1, 3, 40, 48))
    with pytest.raises(ValueError, match=r"2 stacking axes, T \(2\), Z \(3\)"):
        probe_input(tmp_path / "tz.zarr", 1)


def test_rgb_planes_nobody_named_are_said_to_be_read_as_luminance(
    tmp_path, tiny_checkpoint, capsys
):
    """A (T, 3, Y, X) TIFF with no axes is guessed ZCYX: its 3 planes become luminance."""
    path = tmp_path / "movie.tif"
    tifffile.imwrite(path, np.zeros((2, 3, 40, 48), np.uint8))
    assert cli_predict(path, tiny_checkpoint, tmp_path / "out", "--threads", "1") == 0
    err = capsys.readouterr().err
    assert "movie.tif (2, 3, 40, 48) is read as ZCYX: its 3 planes along C" in err
    assert "give the axes with --axes" in err
    assert cli_predict(path, tiny_checkpoint, tmp_path / "out2", "--axes", "ZCYX") == 0
    assert "averaged to luminance" not in capsys.readouterr().err  # the user said so


def test_planes_nobody_named_taken_as_channels_are_said_so(tmp_path, capsys):
    """A 2-plane z-stack saved without axes reads as CYX for a 2-channel model."""
    from helpers import tiny_model
    from napari_unet.core.checkpoint import save_model

    checkpoint = save_model(tiny_model(in_channels=2), tmp_path / "two.safetensors")
    plain, declared = tmp_path / "plain.tif", tmp_path / "declared.tif"
    planes = np.random.default_rng(0).integers(0, 255, (2, 40, 48)).astype(np.uint8)
    tifffile.imwrite(plain, planes)
    tifffile.imwrite(declared, planes, imagej=True, metadata={"axes": "CYX"})
    assert cli_predict([plain, declared], checkpoint, tmp_path / "out", "--threads", "1") == 0
    err = capsys.readouterr().err
    assert "plain.tif (2, 40, 48) is read as CYX: no axes in the file, so its 2 planes" in err
    assert "(and 1 more)" not in err  # the other file says its axes are CYX
    assert cli_predict(plain, checkpoint, tmp_path / "out2", "--axes", "CYX") == 0
    assert "no axes in the file" not in capsys.readouterr().err  # the user said so


def test_pages_that_name_no_axis_are_said_to_be_readable_as_channels(tmp_path):
    """tifffile reads a bare multi-page TIFF's pages as I (slices): a 2-channel model's
    refusal says how to read them as its channels."""
    from helpers import tiny_model
    from napari_unet.core.checkpoint import save_model

    checkpoint = save_model(tiny_model(in_channels=2), tmp_path / "two.safetensors")
    bare = tmp_path / "bare.tif"
    tifffile.imwrite(bare, np.zeros((2, 40, 48), np.uint8), metadata=None)
    with pytest.raises(
        ValueError, match="its 2 pages name no axis: if they are the channels, give --axes CYX"
    ):
        probe_input(bare, 2)
    assert probe_input(bare, 2, "CYX").axes == "CYX"  # as it says
    with pytest.raises(ValueError) as one_channel:
        probe_input(bare, 3)  # 2 pages are not a 3-channel model's channels: no such hint
    assert "name no axis" not in str(one_channel.value)
    assert cli_predict(bare, checkpoint, tmp_path / "out", "--axes", "CYX") == 0


@pytest.mark.parametrize("metadata", [{}, None])  # tifffile's shape record, or bare pages
def test_a_few_planes_nobody_named_predicted_as_slices_are_said_so(
    tmp_path, tiny_checkpoint, capsys, metadata
):
    """A 2-channel file saved without axes reads as 2 slices for a one-channel model (and
    twice the objects): the dock says its planes may be channels, and so does the CLI."""
    plain, declared = tmp_path / "plain.tif", tmp_path / "declared.tif"
    planes = np.random.default_rng(0).integers(0, 255, (2, 40, 48)).astype(np.uint8)
    tifffile.imwrite(plain, planes, metadata=metadata)
    tifffile.imwrite(declared, planes, imagej=True, metadata={"axes": "ZYX"})
    assert cli_predict([plain, declared], tiny_checkpoint, tmp_path / "out") == 0
    err = capsys.readouterr().err
    assert "plain.tif (2, 40, 48) is read as ZYX: no axes in the file, so its 2 planes" in err
    assert "use a model of 2 channels with --axes CYX" in err and "1 more" not in err
    assert cli_predict(plain, tiny_checkpoint, tmp_path / "out2", "--axes", "ZYX") == 0
    assert "no axes in the file" not in capsys.readouterr().err  # the user said so

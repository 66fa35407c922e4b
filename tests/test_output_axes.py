"""What ``napari-unet predict`` writes says its axes and keeps the name it was given.

TIFF outputs carry their axes (``CYX``/``ZCYX`` probabilities, ``YX``/``ZYX`` mask and
instances) in tifffile's metadata beside their provenance; outputs are named after the
input as given (a symbolic link's own name); one check refuses inputs whose outputs would
collide, on the command line and in :func:`napari_unet.io.batch.run_batch` alike.
"""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from skimage import io as skimage_io

from helpers import cli_predict
from napari_unet.io.batch import PredictOptions, run_batch
from napari_unet.io.data import read_image, write_tiff
from napari_unet.io.outputs import check_outputs, output_paths, output_stem
from napari_unet.io.reruns import stored_provenance

OPTIONS = PredictOptions(tile_size=56, device="cpu", threads=1)
DTYPES = {"prob": np.float32, "mask": np.uint8, "instances": np.uint32}


def _image(shape, seed=0):
    return np.random.default_rng(seed).integers(0, 4000, shape).astype(np.uint16)


def test_tiff_outputs_say_their_axes_and_stay_readable(tmp_path, tiny_checkpoint):
    tifffile.imwrite(tmp_path / "plane.tif", _image((40, 48)))
    tifffile.imwrite(tmp_path / "stack.tif", _image((5, 40, 48), seed=1), metadata={"axes": "ZYX"})
    inputs = [tmp_path / "plane.tif", tmp_path / "stack.tif"]
    assert cli_predict(inputs, tiny_checkpoint, tmp_path / "out", "--threads", "1") == 0
    expected = {
        "plane": {"prob": ("CYX", (2, 40, 48)), "mask": ("YX", (40, 48))},
        "stack": {"prob": ("ZCYX", (5, 2, 40, 48)), "mask": ("ZYX", (5, 40, 48))},
    }
    for stem, kinds in expected.items():
        kinds["instances"] = kinds["mask"]
        for kind, (axes, shape) in kinds.items():
            path = tmp_path / "out" / f"{stem}_{kind}.tif"
            with tifffile.TiffFile(path) as tiff:
                assert (tiff.series[0].axes, tiff.series[0].shape) == (axes, shape), path.name
                described = tiff.shaped_metadata[0]
            assert described["class_names"] == ["background", "foreground"]
            array = read_image(path)  # the project's own reader, and scikit-image's
            assert array.shape == shape and array.dtype == DTYPES[kind]
            np.testing.assert_array_equal(skimage_io.imread(path), array)
            assert stored_provenance(path)["input"]["name"] == f"{stem}.tif"
    # the records still match what a re-run would do: nothing is predicted again
    results = run_batch(inputs, tiny_checkpoint, tmp_path / "out", OPTIONS)
    assert [result.status for result in results] == ["skipped", "skipped"]


def test_output_axes_and_refused_axes():
    from napari_unet.io.outputs import output_axes

    assert [output_axes(kind, False) for kind in ("prob", "mask", "instances")] == [
        "CYX",
        "YX",
        "YX",
    ]
    assert output_axes("prob", True) == "ZCYX" and output_axes("mask", True) == "ZYX"
    with pytest.raises(ValueError, match="unknown output"):
        output_axes("weights", False)


def test_write_tiff_refuses_axes_that_do_not_fit(tmp_path):
    write_tiff(tmp_path / "fine.tif", np.zeros((3, 8, 9), np.uint8), axes="zyx")
    with tifffile.TiffFile(tmp_path / "fine.tif") as tiff:
        assert tiff.series[0].axes == "ZYX"
    for axes in ("YX", "ZXY"):
        with pytest.raises(ValueError, match="do not fit an array of shape"):
            write_tiff(tmp_path / "bad.tif", np.zeros((3, 8, 9), np.uint8), axes=axes)
    assert not (tmp_path / "bad.tif").exists()


def test_outputs_take_the_name_given_not_a_links_target(tmp_path, tiny_checkpoint):
    (tmp_path / "raw").mkdir()
    tifffile.imwrite(tmp_path / "raw" / "0042.tif", _image((40, 48)))
    (tmp_path / "today.tif").symlink_to(tmp_path / "raw" / "0042.tif")
    assert cli_predict(tmp_path / "today.tif", tiny_checkpoint, tmp_path / "out") == 0
    names = sorted(path.name for path in (tmp_path / "out").iterdir())
    assert names == ["today_instances.tif", "today_mask.tif", "today_prob.tif"]
    assert stored_provenance(tmp_path / "out" / "today_mask.tif")["input"]["name"] == "today.tif"


def test_two_links_to_one_file_get_their_own_outputs(tmp_path, tiny_checkpoint):
    """Both were named after the target: the second overwrote, or skipped, the first."""
    tifffile.imwrite(tmp_path / "scan.tif", _image((40, 48)))
    links = [tmp_path / "before.tif", tmp_path / "after.tif"]
    for link in links:
        link.symlink_to(tmp_path / "scan.tif")
    results = run_batch(links, tiny_checkpoint, tmp_path / "out", OPTIONS)
    assert [result.status for result in results] == ["done", "done"]
    assert [result.outputs[1] for result in results] == [
        str(tmp_path / "out" / "before_mask.tif"),
        str(tmp_path / "out" / "after_mask.tif"),
    ]
    np.testing.assert_array_equal(
        tifffile.imread(tmp_path / "out" / "before_mask.tif"),
        tifffile.imread(tmp_path / "out" / "after_mask.tif"),
    )


def test_one_collision_check_for_the_cli_and_run_batch(tmp_path, tiny_checkpoint, capsys):
    """Names differing only in case are one file on macOS and Windows: refused alike."""
    for folder, name in (("a", "Cells.tif"), ("b", "cells.tif")):
        (tmp_path / folder).mkdir()
        tifffile.imwrite(tmp_path / folder / name, _image((40, 48)))
    inputs = [tmp_path / "a" / "Cells.tif", tmp_path / "b" / "cells.tif"]
    with pytest.raises(ValueError, match=r"would write the same output files \(cells_mask"):
        check_outputs(inputs, tmp_path / "out")
    with pytest.raises(ValueError, match="would write the same output files"):
        run_batch(inputs, tiny_checkpoint, tmp_path / "out", OPTIONS)
    assert cli_predict(inputs, tiny_checkpoint, tmp_path / "out") != 0
    assert "would write the same output files" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("given", "stem"),
    [("data/cells.tif", "cells"), ("data/cells.OME.TIF", "cells"), ("cells.ome.tiff", "cells"),
     ("plate.ome.zarr", "plate"), ("a.b.tif", "a.b"), ("ome.tif", "ome")],
)  # fmt: skip
def test_outputs_are_named_without_the_ome_suffix(given, stem, tmp_path):
    assert output_stem(given) == stem
    assert output_paths(given, tmp_path, "tiff")[0] == tmp_path / f"{stem}_prob.tif"

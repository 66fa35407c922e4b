"""``napari-unet predict --last-masks``: a batch run continues an earlier run's masks
after a fine-tune, as the Predict widget does (io.last_masks)."""

from __future__ import annotations

import os

import numpy as np
import pytest
import tifffile

from helpers import MERGED, SEPARATED, tiny_model, touching_pair
from napari_unet import load_model, save_model
from napari_unet.cli import main
from napari_unet.core.continuity import LINEAGE_KEY, lineage
from napari_unet.core.postprocess import instance_labels
from napari_unet.io import volumes
from napari_unet.io.data import write_tiff
from napari_unet.io.reruns import PROVENANCE_KEY, stored_provenance


def model_file(tmp_path, name: str, *runs: str):
    """A small checkpoint with a training history of ``runs`` (as fine-tunes leave)."""
    model = tiny_model()
    model.metadata["training_history"] = [{"date": run} for run in runs]
    return save_model(model, tmp_path / f"{name}.safetensors")


@pytest.fixture
def pair(tmp_path, monkeypatch):
    """An image whose probabilities are two touching discs with a band of ``band[0]``
    between them (a stand-in for a model's output), and the CLI's arguments for it."""
    band = [0.3]

    def fake_predict_stack(stack, model, **_):
        return touching_pair(band[0])

    monkeypatch.setattr(volumes, "predict_stack", fake_predict_stack)
    image = tmp_path / "pair.tif"
    tifffile.imwrite(image, np.zeros((40, 60), np.uint16))
    models = {
        "base": model_file(tmp_path, "base", "run 1"),
        "tuned": model_file(tmp_path, "tuned", "run 1", "run 2"),
        "other": model_file(tmp_path, "other", "another run"),
    }

    def predict(model: str, output: str, *options: str) -> int:
        args = ["predict", str(image), "--model", str(models[model]), "--device", "cpu"]
        assert main([*args, "--output", str(tmp_path / output), *options]) == 0
        mask = tifffile.imread(tmp_path / output / "pair_mask.tif")
        return int(instance_labels(mask).max())

    return band, predict, models


def test_a_fine_tuned_model_keeps_the_separations_of_the_last_masks(tmp_path, pair, capsys):
    band, predict, models = pair
    assert predict("base", "first") == 2
    record = stored_provenance(tmp_path / "first" / "pair_mask.tif")
    assert record is not None and record[LINEAGE_KEY] == lineage(load_model(models["base"]))
    band[0] = 0.16  # after the fine-tune the band is too faint for a new separation
    assert predict("tuned", "afresh") == 1
    capsys.readouterr()
    assert predict("tuned", "continued", "--last-masks", str(tmp_path / "first")) == 2
    assert "kept the separations of" in capsys.readouterr().out
    assert predict("other", "foreign", "--last-masks", str(tmp_path / "first")) == 1
    assert "was not made by this model" in capsys.readouterr().out


def _painted_across_the_contact(tmp_path, pair):
    """Predict "first" with the base model, fade the band (as a fine-tune does) and write
    strokes painting "nucleus" across the contact; returns them and the CLI arguments."""
    band, predict, _ = pair
    predict("base", "first")
    band[0] = 0.16  # after the fine-tune the band is too faint for a new separation
    strokes = np.zeros((40, 60), np.uint8)
    strokes[15:25, 29] = 2  # "nucleus" painted across the contact
    tifffile.imwrite(tmp_path / "strokes.tif", strokes)
    last = ["--last-masks", str(tmp_path / "first"), "--strokes", str(tmp_path / "strokes.tif")]
    return strokes, last


def test_an_object_stroke_across_a_kept_line_drops_it(tmp_path, pair, capsys):
    _, predict, _ = pair
    strokes, last = _painted_across_the_contact(tmp_path, pair)
    capsys.readouterr()
    assert predict("tuned", "painted", *last) == 1
    assert "since the last mask 0 objects split, 1 joined" in capsys.readouterr().out
    strokes[15:25, 29] = 1  # background there keeps it
    tifffile.imwrite(tmp_path / "strokes.tif", strokes)
    assert predict("tuned", "painted again", *last) == 2
    assert "since the last mask no object split or joined" in capsys.readouterr().out


def test_the_output_folder_itself_can_hold_the_last_masks(tmp_path, pair):
    band, predict, models = pair
    predict("base", "out")
    band[0] = 0.16
    assert predict("tuned", "out", "--overwrite", "--last-masks", str(tmp_path / "out")) == 2
    record = stored_provenance(tmp_path / "out" / "pair_mask.tif")
    assert record is not None and record[LINEAGE_KEY] == lineage(load_model(models["tuned"]))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--last-masks", "nowhere"], "is not a folder"),
        (["--strokes", "strokes.tif"], "--strokes needs --last-masks"),
        (["--last-masks", ".", "--strokes", "strokes.tif", "strokes.tif"], "one file per input"),
    ],
)
def test_bad_last_mask_options_are_one_line(tmp_path, pair, capsys, monkeypatch, options, message):
    monkeypatch.chdir(tmp_path)
    tifffile.imwrite(tmp_path / "strokes.tif", np.zeros((40, 60), np.uint8))
    args = ["predict", "pair.tif", "--model", str(model_file(tmp_path, "m", "r")), "--output", "o"]
    assert main([*args, *options]) == 2
    error = capsys.readouterr().err.strip()
    assert message in error and len(error.splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_a_last_mask_of_another_shape_fails_that_input(tmp_path, pair, capsys):
    _, predict, models = pair
    record = {PROVENANCE_KEY: {LINEAGE_KEY: lineage(load_model(models["base"]))}}
    (tmp_path / "first").mkdir()
    write_tiff(tmp_path / "first" / "pair_mask.tif", np.ones((40, 50), np.uint8), record)
    with pytest.raises(AssertionError):  # the input failed: exit status 2
        predict("tuned", "second", "--last-masks", str(tmp_path / "first"))
    error = capsys.readouterr().err
    assert "the last mask has shape (40, 50), the mask (40, 60)" in error


def test_a_stack_continues_its_last_masks_plane_by_plane(monkeypatch):
    monkeypatch.setattr(
        volumes, "predict_stack", lambda *_, **__: np.stack([touching_pair(0.16)] * 2)
    )
    model = tiny_model()
    stack = np.zeros((2, 40, 60), np.float32)
    _, mask, _ = volumes.segment_stack(stack, model, previous=np.stack([SEPARATED, MERGED]))
    assert [int(instance_labels(plane).max()) for plane in mask] == [2, 1]
    with pytest.raises(
        ValueError, match=r"the last mask has shape \(40, 60\), the mask \(2, 40, 60\)"
    ):
        volumes.segment_stack(stack, model, previous=SEPARATED)


def _rerun(tmp_path, models, model: str, output: str, *options: str) -> int:
    """``napari-unet predict`` of the pair into ``output``: its exit status."""
    args = ["predict", str(tmp_path / "pair.tif"), "--model", str(models[model])]
    return main([*args, "--device", "cpu", "--output", str(tmp_path / output), *options])


def test_a_rerun_with_another_last_mask_is_not_skipped(tmp_path, pair, capsys):
    band, predict, models = pair
    assert predict("base", "first") == 2
    band[0] = 0.16
    assert predict("tuned", "second") == 1
    capsys.readouterr()
    last = ["--last-masks", str(tmp_path / "first")]
    assert _rerun(tmp_path, models, "tuned", "second", *last) == 2  # not "skipped"
    error = capsys.readouterr().err
    assert "made without a last mask" in error and "--overwrite" in error
    assert predict("tuned", "second", *last, "--overwrite") == 2
    assert predict("tuned", "second", *last) == 2
    assert "skipped" in capsys.readouterr().out  # the same last mask: nothing to redo
    mask = tmp_path / "first" / "pair_mask.tif"
    os.utime(mask, ns=(mask.stat().st_atime_ns, mask.stat().st_mtime_ns + 10**9))
    assert _rerun(tmp_path, models, "tuned", "second", *last) == 2  # the last mask changed
    assert "with another last mask" in capsys.readouterr().err


def test_a_rerun_with_changed_strokes_is_not_skipped(tmp_path, pair, capsys):
    _, predict, models = pair
    strokes, last = _painted_across_the_contact(tmp_path, pair)
    assert predict("tuned", "painted", *last) == 1
    strokes[15:25, 29] = 1  # background there keeps the separation
    tifffile.imwrite(tmp_path / "strokes.tif", strokes)
    capsys.readouterr()
    assert _rerun(tmp_path, models, "tuned", "painted", *last) == 2  # not "skipped"
    error = capsys.readouterr().err
    assert "with another last mask" in error and "strokes" in error and "--overwrite" in error
    assert predict("tuned", "painted", *last, "--overwrite") == 2


def test_a_rerun_into_the_folder_of_its_last_masks_is_skipped(tmp_path, pair, capsys):
    band, predict, _ = pair
    predict("base", "out")
    band[0] = 0.16
    last = ["--last-masks", str(tmp_path / "out")]
    assert predict("tuned", "out", "--overwrite", *last) == 2
    capsys.readouterr()
    assert predict("tuned", "out", *last) == 2  # its own mask, rewritten by that run
    assert "skipped" in capsys.readouterr().out


def test_relative_last_masks_and_strokes_reach_the_workers_absolute(tmp_path, pair, monkeypatch):
    """Dask workers run elsewhere (another working directory): the paths travel absolute."""
    from napari_unet.io import batch

    _, predict, models = pair
    predict("base", "first")
    tifffile.imwrite(tmp_path / "strokes.tif", np.zeros((40, 60), np.uint8))
    sent = []
    monkeypatch.setattr(batch, "run_batch", lambda *args, **_: sent.append(args[3]) or [])
    monkeypatch.chdir(tmp_path)
    args = ["predict", "pair.tif", "--model", str(models["tuned"]), "--output", "o"]
    assert main([*args, "--last-masks", "first", "--strokes", "strokes.tif"]) == 0
    (options,) = sent
    assert options.last_masks == str(tmp_path.resolve() / "first")
    assert options.strokes == (("pair", str(tmp_path.resolve() / "strokes.tif")),)

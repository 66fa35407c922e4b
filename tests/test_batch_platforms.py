"""Batch prediction on other machines than Linux CPUs: macOS and Windows file systems,
GPUs with several workers (fixes of a portability review, session 34)."""

import numpy as np
import pytest
import tifffile

from helpers import CLI_TILE, cli_predict
from napari_unet.io.batch import PredictOptions, run_batch

OPTIONS = PredictOptions(tile_size=CLI_TILE, device="cpu", threads=1)


def test_with_workers_the_command_checks_on_a_cpu_copy_of_the_model(
    tmp_path, tiny_checkpoint, monkeypatch
):
    """The workers load their own copies: the command's would sit on the GPU for nothing."""
    from napari_unet.io import batch

    loaded = []
    load = batch.cached_model

    def cached_model(path, device="auto"):
        loaded.append(device)
        return load(path, "cpu")

    monkeypatch.setattr(batch, "cached_model", cached_model)
    monkeypatch.setattr(batch, "run_batch", lambda *args, **kwargs: [])
    inputs = [tmp_path / f"image{index}.tif" for index in range(2)]
    for path in inputs:
        tifffile.imwrite(path, np.zeros((40, 50), np.uint8))
    out = tmp_path / "out"
    assert cli_predict(inputs, tiny_checkpoint, out, "--workers", "2", "--device", "auto") == 0
    assert cli_predict(inputs, tiny_checkpoint, out, "--device", "auto") == 0
    assert loaded == ["cpu", "auto"]
    # the device the workers will use is still checked here, once
    assert cli_predict(inputs, tiny_checkpoint, out, "--workers", "2", "--device", "tpu") == 2
    assert loaded == ["cpu", "auto"]
    # a shard of one input is predicted here, with this one copy on the device asked for
    shard = ("--shard", "1/2", "--workers", "2", "--device", "auto")
    assert cli_predict(inputs, tiny_checkpoint, out, *shard) == 0
    assert loaded == ["cpu", "auto", "auto"]
    # an empty shard only checks: a CPU copy
    assert cli_predict(inputs, tiny_checkpoint, out, "--shard", "3/3", *shard[2:]) == 0
    assert loaded == ["cpu", "auto", "auto", "cpu"]


def test_an_input_named_as_an_output_but_for_case_is_not_overwritten(tmp_path, tiny_checkpoint):
    """On macOS and Windows cells_mask.tif would be the ground truth cells_Mask.tif."""
    image, truth = tmp_path / "cells.tif", tmp_path / "cells_Mask.tif"
    tifffile.imwrite(image, np.zeros((40, 50), np.uint8))
    tifffile.imwrite(truth, np.ones((40, 50), np.uint8))
    with pytest.raises(ValueError, match=r"cells_mask\.tif is an input"):
        run_batch([image, truth], tiny_checkpoint, tmp_path, OPTIONS.replace(overwrite=True))
    assert not (tmp_path / "cells_prob.tif").exists()
    # a folder differing in case only is another folder (on Linux): no clash
    (tmp_path / "out").mkdir()
    other = tmp_path / "out" / "cells_mask.tif"
    tifffile.imwrite(other, np.ones((40, 50), np.uint8))
    results = run_batch([image, other], tiny_checkpoint, tmp_path / "Out", OPTIONS)
    assert [result.status for result in results] == ["done", "done"]

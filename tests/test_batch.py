"""Batch prediction: stacks and zarr through the CLI, re-runs, failures, dask.distributed."""

import collections
import os
import tempfile

import numpy as np
import pytest
import tifffile
import torch
import zarr

from helpers import CLI_TILE, cli_predict, tiny_model
from napari_unet import (
    ModelConfig,
    PredictConfig,
    instance_labels,
    load_model,
    mask_steps,
    predict,
    prediction_mask,
    save_model,
)
from napari_unet.core.checkpoint import new_model
from napari_unet.io.batch import (
    PredictOptions,
    cached_model,
    local_cluster,
    model_loads,
    run_batch,
)
from napari_unet.io.data import ImageReadError, to_channels_first
from napari_unet.io.inputs import file_axes, open_tiff_lazily, probe_input

TILE = CLI_TILE  # the tile size of cli_predict, compared with runs of OPTIONS
OPTIONS = PredictOptions(tile_size=TILE, device="cpu", threads=1)
KINDS = ("prob", "mask", "instances")
GOOD = [f"image{index}" for index in range(4)]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A fresh model whose output bias is shifted so that about half of a test image's
    pixels are foreground: masks and instances with objects to compare (a fresh model
    calls everything background)."""
    folder = tmp_path_factory.mktemp("model")
    model = tiny_model()
    sample = np.random.default_rng(0).integers(0, 4000, (60, 60)).astype(np.uint16)
    probabilities = predict(sample, model, tile_size=TILE, device="cpu")
    with torch.no_grad():
        model.head.bias[1] -= float(np.median(np.log(probabilities[1] / probabilities[0])))
    return save_model(model, folder / "model.safetensors")


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """Four good images and one whose NaN values make prediction fail."""
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(7)
    for index, stem in enumerate(GOOD):
        image = rng.integers(0, 4000, (50 + 10 * index, 60)).astype(np.uint16)
        tifffile.imwrite(folder / f"{stem}.tif", image)
    tifffile.imwrite(folder / "nan.tif", np.full((40, 40), np.nan, np.float32))
    return folder


@pytest.fixture(scope="module")
def reference(tmp_path_factory, images, checkpoint):
    """Single-process outputs of the good images, checked against the core functions."""
    folder = tmp_path_factory.mktemp("reference")
    results = run_batch([images / f"{stem}.tif" for stem in GOOD], checkpoint, folder, OPTIONS)
    assert [result.status for result in results] == ["done"] * len(GOOD)
    model = load_model(checkpoint)
    steps = mask_steps(model, OPTIONS)._asdict()
    for stem, result in zip(GOOD, results):
        image = tifffile.imread(images / f"{stem}.tif")
        probabilities, mask, instances = _read(folder, stem)
        assert probabilities.dtype == np.float32 and mask.dtype == np.uint8
        assert instances.dtype == np.uint32
        expected = predict(image, model, tile_size=TILE, device="cpu")
        np.testing.assert_allclose(probabilities, expected, rtol=0, atol=1e-5, err_msg=stem)
        assert np.array_equal(mask, prediction_mask(probabilities, **steps)), stem
        labels = instance_labels(
            mask,
            method=OPTIONS.instances,
            min_size=OPTIONS.min_instance_size,
            fill_holes=OPTIONS.fill_holes,
        )
        assert np.array_equal(instances, labels), stem
        assert result.n_objects == int(labels.max()) > 0, stem  # objects to compare
    return folder


@pytest.fixture(scope="module")
def cluster():
    with local_cluster(2) as two_workers:
        yield two_workers


def _read(folder, stem):
    return [tifffile.imread(folder / f"{stem}_{kind}.tif") for kind in KINDS]


def _assert_same_outputs(first, second, stems=GOOD):
    for stem in stems:
        for expected, found in zip(_read(first, stem), _read(second, stem)):
            assert np.array_equal(found, expected), stem


# ---- stacks and zarr through the CLI -------------------------------------------------------
@pytest.mark.parametrize(
    ("shape", "options", "axes"),
    [
        ((30, 40), {}, "YX"),
        ((30, 40, 3), {"photometric": "rgb"}, "YXS"),
        # tifffile's unknown axis Q: the axes rule decides (slices for a one-channel model)
        ((5, 30, 40), {}, None),
        ((3, 30, 40), {"photometric": "minisblack"}, None),
        ((5, 30, 40), {"metadata": {"axes": "ZYX"}}, "ZYX"),
        ((5, 30, 40), {"imagej": True, "metadata": {"axes": "TYX"}}, "ZYX"),
        # tifffile's default for (3, Y, X) arrays: planar RGB; the axes rule decides (3 slices)
        ((3, 30, 40), {"photometric": "rgb", "planarconfig": "separate"}, None),
        ((2, 3, 30, 40), {"imagej": True, "metadata": {"axes": "TCYX"}}, "ZCYX"),
    ],
)
def test_tiff_axes_metadata(tmp_path, shape, options, axes):
    tifffile.imwrite(tmp_path / "a.tif", np.zeros(shape, np.uint8), **options)
    assert file_axes(tmp_path / "a.tif") == axes
    assert probe_input(tmp_path / "a.tif", 3 if "C" in (axes or "") else 1).axes == (axes or "ZYX")


@pytest.mark.parametrize("rgb", [False, True])
def test_cli_predicts_a_stack_slice_by_slice(tmp_path, checkpoint, capsys, rgb):
    rng = np.random.default_rng(1)
    if rgb:
        stack = rng.integers(0, 255, (2, 60, 70, 3)).astype(np.uint8)
        tifffile.imwrite(tmp_path / "stack.tif", stack, photometric="rgb")
        slices = [to_channels_first(plane, 1) for plane in stack]
    else:
        stack = rng.integers(0, 4000, (3, 60, 70)).astype(np.uint16)
        tifffile.imwrite(tmp_path / "stack.tif", stack, photometric="minisblack")
        slices = list(stack)
    assert cli_predict([tmp_path / "stack.tif"], checkpoint, tmp_path / "out") == 0
    probabilities, mask, labels = _read(tmp_path / "out", "stack")
    n_slices = len(slices)
    assert mask.shape == labels.shape == (n_slices, 60, 70)
    assert mask.dtype == np.uint8 and labels.dtype == np.uint32
    assert probabilities.shape == (n_slices, 2, 60, 70) and probabilities.dtype == np.float32
    model = load_model(checkpoint)
    steps = mask_steps(model, PredictConfig())._asdict()  # the CLI's defaults
    for index, plane in enumerate(slices):
        assert np.array_equal(probabilities[index], predict(plane, model, tile_size=TILE))
        assert np.array_equal(mask[index], prediction_mask(probabilities[index], **steps))
    assert set(np.unique(mask)) == {1, 2}  # objects and background: a mask worth comparing
    assert f"slice {n_slices}/{n_slices}" in capsys.readouterr().err


def test_zarr_input_and_output(tmp_path, checkpoint, images, reference):
    image = tifffile.imread(images / "image3.tif")
    source = zarr.open_array(
        str(tmp_path / "image3.zarr"), mode="w", shape=image.shape, chunks=(32, 32), dtype="u2"
    )
    source[:] = image
    assert cli_predict([tmp_path / "image3.zarr"], checkpoint, tmp_path / "out") == 0  # auto: zarr
    outputs = zarr.open_group(str(tmp_path / "out" / "image3_prediction.zarr"), mode="r")
    for kind, expected in zip(KINDS, _read(reference, "image3")):
        assert np.array_equal(outputs[kind][:], expected), kind
    tiff = images / "image3.tif"
    assert cli_predict([tiff], checkpoint, tmp_path / "z", "--output-format", "zarr") == 0
    assert [path.name for path in (tmp_path / "z").iterdir()] == ["image3_prediction.zarr"]


@pytest.mark.parametrize(
    ("layout", "lazy_kind"),
    [
        ({"tile": (16, 16), "compression": "zlib"}, zarr.Array),  # tifffile's zarr view
        ({"rowsperstrip": 16}, np.memmap),  # uncompressed: memory-mapped
        ({"compression": "zlib", "rowsperstrip": 80}, None),  # one compressed strip: read whole
    ],
)
def test_tiff_into_zarr_outputs_is_read_lazily_when_the_file_allows(
    tmp_path, checkpoint, images, reference, monkeypatch, layout, lazy_kind
):
    tiff = tmp_path / "image3.tif"
    tifffile.imwrite(tiff, tifffile.imread(images / "image3.tif"), **layout)
    opened = open_tiff_lazily(tiff)
    assert (type(opened) is np.ndarray) if lazy_kind is None else isinstance(opened, lazy_kind)
    del opened
    if lazy_kind is not None:  # read_image would load the whole file
        monkeypatch.setattr("napari_unet.io.inputs.read_image", lambda path: pytest.fail("read"))
    input_reads = []
    original_getitem = zarr.Array.__getitem__

    def recording_getitem(self, key):
        block = original_getitem(self, key)
        if self.dtype == np.uint16:  # the input (the outputs are float32, uint8, uint32)
            input_reads.append(block.size)
        return block

    monkeypatch.setattr(zarr.Array, "__getitem__", recording_getitem)
    options = ("--output-format", "zarr", "--threads", "1")
    assert cli_predict([tiff], checkpoint, tmp_path / "out", *options) == 0
    if lazy_kind is zarr.Array:  # tile by tile, never the whole 70 x 60 image at once
        assert input_reads and max(input_reads) < 70 * 60
    assert str(tiff) not in _open_files()  # the file was closed after the prediction
    monkeypatch.undo()
    outputs = zarr.open_group(str(tmp_path / "out" / "image3_prediction.zarr"), mode="r")
    for kind, expected in zip(KINDS, _read(reference, "image3")):
        assert np.array_equal(outputs[kind][:], expected), kind


def _open_files():
    folder = "/proc/self/fd"
    return {os.path.realpath(os.path.join(folder, fd)) for fd in os.listdir(folder)}


def test_lazy_tiff_chunks_are_judged_on_the_y_and_x_axes(tmp_path, monkeypatch):
    rgb = np.random.default_rng(0).integers(0, 255, (256, 256, 3), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "rgb.tif", rgb, compression="zlib", rowsperstrip=16)
    view = open_tiff_lazily(tmp_path / "rgb.tif", "YXS")  # strips of 16 rows: lazy
    assert isinstance(view, zarr.Array) and np.array_equal(view[:], rgb)
    stack = np.arange(5 * 40 * 50, dtype=np.uint16).reshape(5, 40, 50)
    tifffile.imwrite(tmp_path / "stack.tif", stack, compression="zlib", photometric="minisblack")
    view = open_tiff_lazily(tmp_path / "stack.tif", "ZYX")  # one chunk per page: page by page
    assert isinstance(view, zarr.Array) and np.array_equal(view[:], stack)
    monkeypatch.setattr("napari_unet.io.inputs.PAGE_DECODE_LIMIT", 40 * 50 - 1)
    whole = open_tiff_lazily(tmp_path / "stack.tif", "ZYX")  # pages too big to decode per tile
    assert type(whole) is np.ndarray and np.array_equal(whole, stack)


def test_a_broken_tiff_is_named_when_opened_lazily(tmp_path):
    broken = tmp_path / "broken.tif"
    broken.write_bytes(b"II*\x00" + bytes(20))
    with pytest.raises(ImageReadError, match=r"broken\.tif"):
        open_tiff_lazily(broken)


def _five_axes(folder):
    tifffile.imwrite(folder / "a.tif", np.zeros((2, 2, 2, 30, 30), np.uint8))


def _three_slices(folder):
    tifffile.imwrite(folder / "a.tif", np.zeros((3, 30, 30), np.uint16), photometric="minisblack")


def _two_channels(folder):
    tifffile.imwrite(folder / "a.tif", np.zeros((2, 2, 30, 30), np.uint16))


def _same_stem(folder):
    tifffile.imwrite(folder / "a.tif", np.zeros((30, 30), np.uint16))
    tifffile.imwrite(folder / "a.tiff", np.zeros((30, 30), np.uint16))


@pytest.mark.parametrize(
    ("make", "options", "message"),
    [
        (_five_axes, (), "2 to 4 axes"),
        (_three_slices, ("--axes", "ZCYX"), "do not match"),
        (_two_channels, ("--axes", "ZCYX"), "expects 1 input channel but the image has 2"),
        (_same_stem, (), "would write the same output files"),
        (lambda folder: None, (), "no images"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(
    tmp_path, checkpoint, capsys, make, options, message
):
    inputs = tmp_path / "in"
    inputs.mkdir()
    make(inputs)
    assert cli_predict([inputs], checkpoint, tmp_path / "out", *options) == 2
    error = capsys.readouterr().err
    assert message in error and "Traceback" not in error
    assert len(error.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


# ---- re-runs and failures ------------------------------------------------------------------
def test_rerun_skips_finished_outputs_and_redoes_partial_ones(tmp_path, checkpoint, images):
    inputs = tmp_path / "in"
    inputs.mkdir()
    for stem in GOOD[:2]:
        (inputs / f"{stem}.tif").write_bytes((images / f"{stem}.tif").read_bytes())
    out = tmp_path / "out"
    first = run_batch([inputs / f"{stem}.tif" for stem in GOOD[:2]], checkpoint, out, OPTIONS)
    inodes = {path.name: path.stat().st_ino for path in out.iterdir()}
    assert len(inodes) == 6 and [result.status for result in first] == ["done", "done"]
    (out / "image0_instances.tif").unlink()  # as if interrupted before the last file
    assert cli_predict([inputs], checkpoint, out) == 0
    again = {path.name: path.stat().st_ino for path in out.iterdir()}
    assert again["image0_prob.tif"] != inodes["image0_prob.tif"]  # redone
    assert all(again[name] == inodes[name] for name in inodes if name.startswith("image1"))
    assert cli_predict([inputs], checkpoint, out, "--overwrite") == 0
    redone = {path.name: path.stat().st_ino for path in out.iterdir()}
    assert all(redone[name] != again[name] for name in again)
    assert not [path for path in out.iterdir() if path.name.startswith(".")]  # no temporaries


def test_a_failing_file_is_reported_and_the_others_go_on(tmp_path, checkpoint, images, capsys):
    inputs = [images / "image0.tif", images / "nan.tif", images / "image1.tif"]
    assert cli_predict(inputs, checkpoint, tmp_path) == 2
    captured = capsys.readouterr()
    errors = [line for line in captured.err.splitlines() if "error:" in line]  # not the bars
    assert len(errors) == 1 and "nan.tif" in errors[0] and "NaN" in errors[0]
    assert captured.out.count("objects") == 2
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(
        f"{stem}_{kind}.tif" for stem in ("image0", "image1") for kind in KINDS
    )


def test_model_cache_reloads_a_rewritten_checkpoint(tmp_path):
    path = save_model(tiny_model(), tmp_path / "m.safetensors")
    first = cached_model(path, "cpu")
    loads = model_loads()
    assert cached_model(str(path), "cpu") is first and model_loads() == loads
    save_model(new_model(ModelConfig(base_features=8, depth=2)), path)  # retrained in place
    second = cached_model(path, "cpu")
    assert second is not first and second.config.base_features == 8
    assert model_loads() == loads + 1


# ---- dask.distributed ------------------------------------------------------------------------
def test_cluster_equals_single_process_and_loads_the_model_once_per_worker(
    tmp_path, checkpoint, images, reference, cluster
):
    from distributed import Client

    inputs = [images / f"{stem}.tif" for stem in GOOD] + [images / "nan.tif"]
    results = run_batch(inputs, checkpoint, tmp_path, OPTIONS, scheduler=cluster.scheduler_address)
    assert [result.status for result in results] == ["done"] * 4 + ["failed"]
    assert "NaN" in results[-1].error
    _assert_same_outputs(reference, tmp_path)
    with Client(cluster) as client:
        loads = client.run(model_loads)
        names = client.run(lambda dask_worker: str(dask_worker.name))
        malloc = client.run(os.environ.get, "MALLOC_TRIM_THRESHOLD_")
    assert set(malloc.values()) == {None}  # dask's setting halves torch's CPU speed
    tasks = collections.Counter(result.worker for result in results if result.worker)
    assert sum(tasks.values()) == 4  # the failed file names no worker
    assert set(tasks) == set(names.values())  # both workers took files, and said so
    assert set(loads.values()) == {1}  # two workers, five tasks, one load each


def test_cli_with_a_scheduler_address(tmp_path, checkpoint, images, reference, cluster, capsys):
    inputs = [images / f"{stem}.tif" for stem in GOOD]
    address = cluster.scheduler_address
    assert cli_predict(inputs, checkpoint, tmp_path, "--scheduler", address, "--threads", "1") == 0
    _assert_same_outputs(reference, tmp_path)
    assert capsys.readouterr().out.count("objects") == 4


def test_cli_workers_starts_a_local_cluster(tmp_path, checkpoint, images, reference, monkeypatch):
    import distributed

    requested = {}
    original = distributed.LocalCluster

    def threaded_cluster(**options):  # threads instead of processes keep the test fast
        requested.update(options)
        return original(**{**options, "processes": False})

    monkeypatch.setattr(distributed, "LocalCluster", threaded_cluster)
    temporary = tmp_path / "temporary"  # the machine's temporary folder, for this run
    temporary.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temporary))
    inputs = [images / f"{stem}.tif" for stem in GOOD]
    assert cli_predict(inputs, checkpoint, tmp_path, "--workers", "2") == 0
    assert requested["n_workers"] == 2 and requested["threads_per_worker"] == 1
    assert requested["processes"] is True
    assert requested["dashboard_address"] == "127.0.0.1:0"  # not every interface: no firewall
    assert requested["local_directory"].startswith(str(temporary / "napari-unet-dask-"))
    assert list(temporary.iterdir()) == []  # dask's scratch files went with their folder
    _assert_same_outputs(reference, tmp_path)


def test_inputs_sharing_a_stem_are_refused(tmp_path, checkpoint):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        tifffile.imwrite(tmp_path / folder / "img.tif", np.zeros((40, 50), np.uint8))
    inputs = [tmp_path / "a" / "img.tif", tmp_path / "b" / "img.tif"]
    with pytest.raises(ValueError, match="would write the same output files"):
        run_batch(inputs, checkpoint, tmp_path / "out", OPTIONS)
    assert not (tmp_path / "out").exists()


def test_output_folder_holding_the_inputs_is_refused_on_a_rerun(tmp_path, checkpoint):
    image = tmp_path / "img.tif"
    tifffile.imwrite(image, np.zeros((40, 50), np.uint8))
    assert [r.status for r in run_batch([image], checkpoint, tmp_path, OPTIONS)] == ["done"]
    rerun = sorted(tmp_path.glob("*.tif"))  # the folder now also holds img_prob.tif etc.
    assert len(rerun) == 4
    with pytest.raises(ValueError, match=r"img_prob\.tif is an input"):
        run_batch(rerun, checkpoint, tmp_path, OPTIONS)


def test_evaluate_reads_the_zarr_store_predict_writes(tmp_path, checkpoint, images, capsys):
    import json

    from napari_unet.cli import main

    tiff = images / "image3.tif"
    assert cli_predict([tiff], checkpoint, tmp_path / "z", "--output-format", "zarr") == 0
    store = tmp_path / "z" / "image3_prediction.zarr"
    outputs = zarr.open_group(str(store), mode="r")
    tifffile.imwrite(tmp_path / "truth.tif", outputs["instances"][:])
    tifffile.imwrite(tmp_path / "mask.tif", outputs["mask"][:])
    capsys.readouterr()
    for kind, truth in (("instances", "truth.tif"), ("semantic", "mask.tif")):
        args = ["evaluate", "--pred", str(store), "--truth", str(tmp_path / truth)]
        assert main([*args, "--kind", kind]) == 0, capsys.readouterr().err
        scores = json.loads(capsys.readouterr().out)
        if kind == "instances":  # its own instances: a perfect match
            assert scores["instances"][0]["f1"] == 1.0 and scores["n_true"] > 0
        else:  # its own mask
            assert scores["pixel_error"] == 0.0
    args = ["evaluate", "--pred", str(tmp_path / "z"), "--truth", str(tmp_path / "truth.tif")]
    assert main(args) == 2  # a plain folder: not a store
    assert "cannot read" in capsys.readouterr().err


def test_evaluate_says_which_array_a_prediction_store_lacks(tmp_path, capsys):
    from napari_unet.cli import main

    store = zarr.open_group(str(tmp_path / "a_prediction.zarr"), mode="w")
    store.create_array("prob", shape=(2, 8, 8), dtype="f4")
    store.create_array("mask", shape=(8, 8), dtype="u1")
    tifffile.imwrite(tmp_path / "t.tif", np.zeros((8, 8), np.uint16))
    args = ["evaluate", "--pred", str(tmp_path / "a_prediction.zarr")]
    assert main([*args, "--truth", str(tmp_path / "t.tif")]) == 2
    assert "has no 'instances' array (it holds ['mask', 'prob'])" in capsys.readouterr().err


def test_a_large_image_written_as_zarr_says_why(tmp_path, checkpoint, capsys, monkeypatch):
    from napari_unet.io import outofcore

    monkeypatch.setattr(outofcore, "OUT_OF_CORE_THRESHOLD", 1000)  # 40 x 40 passes it
    tifffile.imwrite(tmp_path / "big.tif", np.random.default_rng(3).random((40, 40)))
    assert cli_predict(tmp_path / "big.tif", checkpoint, tmp_path / "out") == 0
    said = capsys.readouterr().out
    assert "big_prediction.zarr (a zarr store: the outputs pass 1,000 pixels; " in said
    assert "--output-format tiff writes TIFF files)" in said
    assert (
        cli_predict(tmp_path / "big.tif", checkpoint, tmp_path / "z", "--output-format", "zarr")
        == 0
    )
    assert "big_prediction.zarr\n" in capsys.readouterr().out  # asked for: no reason given

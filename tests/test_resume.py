"""An interrupted out-of-core prediction resumed by the next run (napari_unet.io._resume),
and its edges: --overwrite, a damaged partial store, a lock taken over by another run."""

import json
import os
import shutil
import signal
import socket
import threading
import time

import numpy as np
import pytest
import tifffile
import torch
import zarr

from helpers import cli_predict, discs_image, tiny_model
from napari_unet import PredictConfig, save_model
from napari_unet.cli import _progress
from napari_unet.core import inference
from napari_unet.core.inference import Cancelled, predict
from napari_unet.io import _resume, _zarr_store
from napari_unet.io.locks import OutputsBusy, lock_path
from napari_unet.io.outofcore import Notice, open_outputs, predict_to_zarr

TILE = 92  # a (3, 128, 128) stack: 3 x 3 tiles a slice, 27 in all
PROVENANCE = {
    "package_version": "1.0",
    "model_sha256": "a" * 64,
    "options": {"tile_size": TILE, "instances": "components", "min_instance_size": 15},
    "input": {"name": "discs.tif", "shape": [3, 128, 128], "size": 1, "mtime_ns": 2},
    "last_mask": None,
}


def lively_model(seed: int = 0):
    """A tiny model whose mask is half objects, half background, in noisy shapes that
    the refinement changes (an untrained one says background everywhere)."""
    model = tiny_model(seed=seed)
    image = discs_image()
    with torch.no_grad():
        model.head.weight *= 200
        model.head.bias.zero_()
        probabilities = predict(image, model, tile_size=TILE)
        model.head.bias[1] -= float(np.median(np.log(probabilities[1] / probabilities[0])))
    return model


@pytest.fixture(scope="module")
def model():
    return lively_model()


@pytest.fixture(scope="module")
def stack():
    return np.stack([discs_image(seed=seed) for seed in range(3)])


@pytest.fixture(scope="module")
def reference(model, stack, tmp_path_factory):
    """The arrays of an uninterrupted run."""
    store = tmp_path_factory.mktemp("reference") / "ref.zarr"
    outputs = open_outputs(predict_to_zarr(stack, model, store, tile_size=TILE))
    return {name: array[:] for name, array in outputs.items()}


@pytest.fixture
def tiles_predicted(monkeypatch):
    """How many tiles went through the network (a list, one count per batch)."""
    counts: list[int] = []
    network = inference.tile_probabilities

    def counted(model, inputs, *args, **kwargs):
        counts.append(int(inputs.shape[0]))
        return network(model, inputs, *args, **kwargs)

    monkeypatch.setattr(inference, "tile_probabilities", counted)
    return counts


def _press():
    raise KeyboardInterrupt


def interrupt_at(done: int, stage: str = "tiles", action=_press):
    """A progress callback calling ``action`` (default: Ctrl-C) once ``done`` steps of
    ``stage`` are done."""

    def progress(step):
        if step.stage == stage and step.done >= done:
            action()

    return progress


def run(model, stack, store, progress=None, **options):
    options = {"tile_size": TILE, "provenance": PROVENANCE, **options}
    return predict_to_zarr(stack, model, store, progress=progress, **options)


def assert_same(store, reference):
    outputs = open_outputs(store)
    assert sorted(outputs) == sorted(reference)
    for name, expected in reference.items():
        np.testing.assert_array_equal(outputs[name][:], expected, err_msg=name)


def record_of(store):
    return json.loads((_resume.partial_path(store) / _resume.RECORD_NAME).read_text())


@pytest.mark.parametrize("how", ["ctrl-c", "stop"])
def test_an_interrupted_store_resumes_its_tiles_and_equals_an_uninterrupted_one(
    model, stack, reference, tmp_path, tiles_predicted, how
):
    store = tmp_path / "out.zarr"
    stop = threading.Event()
    if how == "stop":
        progress = interrupt_at(12, action=stop.set)  # ends at the next batch
        with pytest.raises(Cancelled):
            run(model, stack, store, progress, stop=stop)
    else:
        with pytest.raises(KeyboardInterrupt):
            run(model, stack, store, interrupt_at(12))
    first = sum(tiles_predicted)
    assert 12 <= first < 27
    partial = _resume.partial_path(store)
    assert partial.name == ".out.zarr.partial" and not store.exists()
    record = record_of(store)
    assert record["done"] == [[0, first]] and not record["post_processing"]
    assert not lock_path(tmp_path, "out.zarr.partial").exists()  # released
    tiles_predicted.clear()
    seen: list = []
    assert run(model, stack, store, seen.append) == store
    assert sum(tiles_predicted) == 27 - first  # only the others
    notices = [step for step in seen if isinstance(step, Notice)]
    assert [notice.text for notice in notices] == [
        f"resuming: {first} of 27 tiles already predicted in {partial}"
    ]
    assert [step.done for step in seen[1:3]] == [9, first]  # written tiles count as done
    assert_same(store, reference)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["out.zarr"]  # partial gone
    assert not (store / _resume.RECORD_NAME).exists()
    assert "napari_unet_provenance" in zarr.open_group(str(store), mode="r").attrs["napari_unet"]


@pytest.mark.parametrize("stage", ["mask", "instances"])
def test_an_interruption_during_post_processing_redoes_only_that(
    model, stack, reference, tmp_path, tiles_predicted, stage
):
    store = tmp_path / "out.zarr"
    with pytest.raises(KeyboardInterrupt):  # the mask is refined in place by then
        run(model, stack, store, interrupt_at(1, stage))
    assert record_of(store)["post_processing"] and record_of(store)["done"] == [[0, 27]]
    tiles_predicted.clear()
    run(model, stack, store)
    assert tiles_predicted == []  # the mask was made again from the probabilities
    assert_same(store, reference)


def test_a_tile_interrupted_between_its_writes_is_not_recorded(
    model, stack, reference, tmp_path, tiles_predicted, monkeypatch
):
    """A tile is recorded after its probabilities and mask are both written."""
    store, writes = tmp_path / "out.zarr", []
    write = _zarr_store.ProbabilitiesAndMask.__setitem__

    def killed_on_the_tenth_mask(self, key, value):
        writes.append(key)
        if len(writes) == 10:
            self.probabilities[key] = value
            raise KeyboardInterrupt  # before its mask
        write(self, key, value)

    monkeypatch.setattr(_zarr_store.ProbabilitiesAndMask, "__setitem__", killed_on_the_tenth_mask)
    with pytest.raises(KeyboardInterrupt):
        run(model, stack, store)
    assert record_of(store)["done"] == [[0, 9]]
    monkeypatch.setattr(_zarr_store.ProbabilitiesAndMask, "__setitem__", write)
    tiles_predicted.clear()
    run(model, stack, store)
    assert sum(tiles_predicted) == 18
    assert_same(store, reference)


def test_a_run_killed_harder_resumes_from_its_last_record(
    model, stack, reference, tmp_path, tiles_predicted, monkeypatch
):
    """SIGKILL runs no handler: the record written every RECORD_SECONDS is what is left."""
    store = tmp_path / "out.zarr"
    save = _resume.TileRecord.save
    monkeypatch.setattr(_resume, "RECORD_SECONDS", 0.0)  # a record after every tile
    monkeypatch.setattr(_resume.TileRecord, "save", _killed_after(save, 7))
    with pytest.raises(SystemExit):
        run(model, stack, store)
    assert record_of(store)["done"] == [[0, 6]]  # the 7th save never happened
    monkeypatch.setattr(_resume.TileRecord, "save", save)
    tiles_predicted.clear()
    run(model, stack, store)
    assert sum(tiles_predicted) == 21
    assert_same(store, reference)


def _killed_after(save, saves: int):
    """``TileRecord.save`` that dies at its ``saves``-th call, as SIGKILL would: nothing
    else runs (its other calls, the interruption's, are skipped)."""
    calls = []

    def dying(self, strict=False):
        calls.append(len(self.done))
        if len(calls) < saves:
            save(self, strict)
        elif len(calls) == saves:
            raise SystemExit

    return dying


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"model": 1}, "with another model (checkpoint SHA-256 aaaaaaaaaaaa..., this one bbbb"),
        ({"tile_size": 56}, "with other options (tile_size 92, now 56)"),
        ({"test_time_augmentation": True}, "test_time_augmentation False, now True"),
        ({"input": 1}, "from another version of the input (changed: modification time)"),
    ],
)
def test_a_partial_store_of_another_model_option_or_input_is_discarded(
    model, stack, tmp_path, tiles_predicted, change, words
):
    store = tmp_path / "out.zarr"
    with pytest.raises(KeyboardInterrupt):
        run(model, stack, store, interrupt_at(9))
    provenance, options = dict(PROVENANCE), {}
    if "model" in change:
        provenance["model_sha256"], model = "b" * 64, lively_model(seed=1)
    elif "input" in change:
        provenance["input"] = {**PROVENANCE["input"], "mtime_ns": 3}
    else:
        options = change
    tiles_predicted.clear()
    seen: list = []
    run(model, stack, store, seen.append, provenance=provenance, **options)
    notices = [step.text for step in seen if isinstance(step, Notice)]
    partial = _resume.partial_path(store)
    assert len(notices) == 1 and notices[0].startswith(f"discarded {partial}: its tiles were ")
    assert words in notices[0]
    tiles = 27 if "tile_size" not in change else sum(tiles_predicted)
    assert sum(tiles_predicted) == tiles > 27 - 9
    expected = predict_to_zarr(
        stack, model, tmp_path / "fresh.zarr", **{"tile_size": TILE, **options}
    )
    assert_same(store, {name: array[:] for name, array in open_outputs(expected).items()})


def test_other_post_processing_options_still_resume_the_tiles(
    model, stack, tmp_path, tiles_predicted
):
    store = tmp_path / "out.zarr"
    with pytest.raises(KeyboardInterrupt):
        run(model, stack, store, interrupt_at(9))
    tiles_predicted.clear()
    changed = {"config": PredictConfig(fill_holes=False, min_instance_size=0)}
    run(model, stack, store, **changed)
    assert 0 < sum(tiles_predicted) < 27
    expected = predict_to_zarr(stack, model, tmp_path / "fresh.zarr", tile_size=TILE, **changed)
    assert_same(store, {name: array[:] for name, array in open_outputs(expected).items()})


def test_a_real_error_removes_the_partial_store(model, stack, tmp_path):
    store = tmp_path / "out.zarr"
    with pytest.raises(KeyboardInterrupt):
        run(model, stack, store, interrupt_at(9))

    def disk_full():
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space"):
        run(model, stack, store, interrupt_at(20, action=disk_full))
    assert list(tmp_path.iterdir()) == []


def test_without_provenance_or_with_resume_false_nothing_is_kept(model, stack, tmp_path):
    for options in ({"provenance": None}, {"resume": False}):
        with pytest.raises(KeyboardInterrupt):
            run(model, stack, tmp_path / "out.zarr", interrupt_at(9), **options)
        assert list(tmp_path.iterdir()) == []


def test_interrupted_before_any_tile_keeps_nothing(model, stack, tmp_path):
    with pytest.raises(KeyboardInterrupt):
        run(model, stack, tmp_path / "out.zarr", interrupt_at(0))
    assert list(tmp_path.iterdir()) == []


def test_a_second_run_does_not_touch_a_partial_store_in_use(model, stack, tmp_path):
    store = tmp_path / "out.zarr"
    with pytest.raises(KeyboardInterrupt):
        run(model, stack, store, interrupt_at(9))
    before = record_of(store)
    lock = lock_path(tmp_path, "out.zarr.partial")
    record = {"pid": os.getppid(), "host": socket.gethostname(), "time": time.time()}
    lock.write_text(json.dumps({**record, "started": None, "token": "another run"}))
    with pytest.raises(OutputsBusy, match="another napari-unet run"):
        run(model, stack, store)
    assert record_of(store) == before and lock.exists()


# ---- the command line ------------------------------------------------------------------
@pytest.mark.parametrize(("signal_number", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_predict_says_it_keeps_the_tiles_and_resumes_them(
    tmp_path, capsys, monkeypatch, signal_number, status
):
    """Ctrl-C (or SIGTERM, a job's time limit) at the 40th tile of 64; the same command
    resumes, saying so, and writes the store a run never interrupted writes."""
    checkpoint = save_model(lively_model(), tmp_path / "model.safetensors")
    image = tmp_path / "in" / "cells.tif"
    image.parent.mkdir()
    tifffile.imwrite(image, (discs_image() * 1000 + 2000).astype(np.uint16))
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal
    update = _progress.ProgressBar.update

    def pressing(self, fraction, detail=""):
        if detail == "40/64 tiles":
            signal.raise_signal(signal_number)
        update(self, fraction, detail)

    monkeypatch.setattr(_progress.ProgressBar, "update", pressing)
    zarr_output = ("--output-format", "zarr")
    try:
        assert cli_predict(image, checkpoint, tmp_path / "out", *zarr_output) == status
    finally:
        signal.signal(signal.SIGINT, previous)
    partial = tmp_path / "out" / ".cells_prediction.zarr.partial"
    err = capsys.readouterr().err
    assert f"the tiles predicted so far are kept in {partial}: the same command resumes" in err
    monkeypatch.setattr(_progress.ProgressBar, "update", update)
    assert cli_predict(image, checkpoint, tmp_path / "out", *zarr_output) == 0
    err = capsys.readouterr().err
    assert f"cells.tif: resuming: 40 of 64 tiles already predicted in {partial}\n" in err
    assert not partial.exists()
    assert cli_predict(image, checkpoint, tmp_path / "fresh", *zarr_output) == 0
    expected = open_outputs(tmp_path / "fresh" / "cells_prediction.zarr")
    assert_same(tmp_path / "out" / "cells_prediction.zarr", {k: a[:] for k, a in expected.items()})


def test_resume_false_discards_an_earlier_runs_kept_tiles(model, stack, tmp_path):
    """--overwrite: kept tiles may be of an input changed with the same size and time."""
    store = tmp_path / "out.zarr"
    with pytest.raises(KeyboardInterrupt):
        run(model, stack, store, interrupt_at(9))
    assert _resume.partial_path(store).exists()
    seen: list = []
    run(model, stack, store, seen.append, resume=False)
    assert not any(isinstance(step, Notice) for step in seen)  # nothing resumed
    assert not _resume.partial_path(store).exists() and store.exists()


def test_a_partial_store_that_cannot_be_read_is_removed(model, stack, tmp_path):
    """Interrupted while post-processing, its mask is rebuilt from the probabilities on
    resume; a damaged chunk there failed every later run and the store stayed."""
    store = tmp_path / "out.zarr"
    with pytest.raises(KeyboardInterrupt):
        run(model, stack, store, interrupt_at(1, stage="mask"))
    partial = _resume.partial_path(store)
    assert record_of(store)["post_processing"]
    chunks = sorted(
        path for path in (partial / "prob").rglob("*") if path.is_file()
        and not path.name.startswith((".z", "zarr"))
    )  # fmt: skip
    chunks[0].write_bytes(b"not a chunk")
    with pytest.raises(Exception):  # noqa: B017 - the codec's own error
        run(model, stack, store)
    assert not partial.exists()  # the next run starts afresh
    run(model, stack, store)
    assert zarr.open(str(store), mode="r")["mask"].shape[-2:] == stack.shape[-2:]


@pytest.mark.parametrize("done", [0, 9])
def test_a_run_whose_lock_was_taken_over_leaves_the_store_alone(model, stack, tmp_path, done):
    """Another run took the lock over (this one was thought dead) and began its own store:
    this run's Ctrl-C neither removes nor records into it."""
    store = tmp_path / "out.zarr"
    partial, lock = _resume.partial_path(store), lock_path(tmp_path, "out.zarr.partial")

    def taken_over():
        owner = {"pid": 1, "host": "other", "token": "B", "time": 0, "started": None}
        lock.write_text(json.dumps(owner))
        shutil.rmtree(partial)
        partial.mkdir()
        (partial / "theirs").write_text("the other run's tiles")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(model, stack, store, interrupt_at(done, action=taken_over))
    assert sorted(path.name for path in partial.iterdir()) == ["theirs"]
    assert json.loads(lock.read_text())["token"] == "B"  # still theirs


def test_kept_tiles_are_removed_once_the_store_is_up_to_date_and_left_to_a_zarr_run(
    tmp_path, capsys, monkeypatch
):
    """Kept tiles of an input whose zarr store is up to date would stay forever: a run
    removes them (unless another run holds them). A run writing TIFF files says they are
    kept, and a later zarr run resumes them."""
    checkpoint = save_model(lively_model(), tmp_path / "model.safetensors")
    image = tmp_path / "cells.tif"
    tifffile.imwrite(image, (discs_image() * 1000 + 2000).astype(np.uint16))
    out = tmp_path / "out"
    partial = out / ".cells_prediction.zarr.partial"
    zarr_output = ("--output-format", "zarr")
    update = _progress.ProgressBar.update

    def pressing(self, fraction, detail=""):
        if detail == "40/64 tiles":
            raise KeyboardInterrupt
        update(self, fraction, detail)

    monkeypatch.setattr(_progress.ProgressBar, "update", pressing)
    assert cli_predict(image, checkpoint, out, *zarr_output) == 130
    monkeypatch.setattr(_progress.ProgressBar, "update", update)
    assert cli_predict(image, checkpoint, out, "--output-format", "tiff") == 0
    said = capsys.readouterr().out
    assert f"the tiles an interrupted run kept in {partial} are left for a run with" in said
    assert partial.exists() and (out / "cells_mask.tif").exists()
    assert cli_predict(image, checkpoint, out, *zarr_output) == 0
    assert "resuming: 40 of 64 tiles" in capsys.readouterr().err and not partial.exists()
    partial.mkdir()  # as if an --overwrite run had been interrupted
    (partial / _resume.RECORD_NAME).write_text("{}")
    lock = lock_path(out, "cells_prediction.zarr.partial")
    record = {"pid": os.getppid(), "host": socket.gethostname(), "time": time.time()}
    lock.write_text(json.dumps({**record, "started": None, "token": "another run"}))
    assert cli_predict(image, checkpoint, out, *zarr_output) == 0
    assert "skipped" in capsys.readouterr().out and partial.exists()  # held: left alone
    lock.unlink()
    assert cli_predict(image, checkpoint, out, *zarr_output) == 0
    said = capsys.readouterr().out
    assert "skipped" in said and f"kept in {partial}: the outputs are up to date" in said
    assert not partial.exists()

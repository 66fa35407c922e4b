"""Batch prediction under concurrent runs, odd folders and formats, and job arrays."""

import json
import os
import shutil
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import tifffile
import zarr

from helpers import CLI_TILE, cli_predict
from napari_unet.io.batch import PredictOptions, run_batch
from napari_unet.io.outofcore import open_outputs

OPTIONS = PredictOptions(tile_size=CLI_TILE, device="cpu", threads=1)
KINDS = ("prob", "mask", "instances")


@pytest.fixture
def image(tmp_path):
    path = tmp_path / "in" / "img.tif"
    path.parent.mkdir()
    tifffile.imwrite(path, np.random.default_rng(0).integers(0, 4000, (50, 60), dtype=np.uint16))
    return path


def _lock(out, stem="img", **record):
    """Write the lock file another run would hold over the outputs of ``stem``."""
    out.mkdir(exist_ok=True)
    path = out / f".{stem}.napari-unet.lock"
    entries = {"pid": os.getpid(), "host": socket.gethostname(), "token": "x", "time": 0}
    path.write_text(json.dumps({**entries, **record}))
    return path


def _dead_pid():
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


# ---- two runs over the same outputs -----------------------------------------------------
@pytest.mark.parametrize("fmt", ["zarr", "tiff"])
def test_a_second_run_over_the_same_outputs_fails_and_leaves_the_first_whole(
    tmp_path, tiny_checkpoint, image, fmt
):
    """The second run starts while the first writes (deterministically: from the first's
    progress callback): it must neither remove the first's unfinished store nor write."""
    out, options = tmp_path / "out", OPTIONS.replace(output_format=fmt)
    second = []

    def start_second(path):
        def progress(step):
            if not second:
                second.extend(run_batch([image], tiny_checkpoint, out, options))

        return progress

    first = run_batch([image], tiny_checkpoint, out, options, progress=start_second)
    assert [result.status for result in second] == ["failed"]
    assert "another napari-unet run" in second[0].error and str(os.getpid()) in second[0].error
    assert [result.status for result in first] == ["done"]
    if fmt == "zarr":
        assert sorted(open_outputs(out / "img_prediction.zarr")) == sorted(KINDS)
    again = run_batch([image], tiny_checkpoint, out, options)
    assert [result.status for result in again] == ["skipped"]
    assert sorted(path.name for path in out.iterdir() if path.name.startswith(".")) == []


def test_a_live_lock_fails_the_input_and_spares_the_other_runs_store(
    tmp_path, tiny_checkpoint, image, capsys
):
    out = tmp_path / "out"
    lock = _lock(out, pid=os.getppid(), time=time.time())  # a live process of this host
    partial = out / f".img_prediction.zarr.{'0' * 32}.partial"  # the other run's store
    zarr.open_group(str(partial), mode="w")
    assert cli_predict(image, tiny_checkpoint, out, "--output-format", "zarr") == 2
    error = capsys.readouterr().err
    assert f"pid {os.getppid()} on {socket.gethostname()}" in error and str(lock) in error
    assert partial.exists() and lock.exists()
    assert not (out / "img_prediction.zarr").exists()


def test_the_lock_of_a_dead_process_is_taken_over(tmp_path, tiny_checkpoint, image):
    out = tmp_path / "out"
    lock = _lock(out, pid=_dead_pid())
    stale = out / f".img_prob.tif.{'0' * 32}.tmp"
    stale.write_bytes(b"half a tiff")
    assert cli_predict(image, tiny_checkpoint, out) == 0
    assert all((out / f"img_{kind}.tif").exists() for kind in KINDS)
    assert not lock.exists() and not stale.exists()


def test_a_lock_from_another_host_is_stale_only_when_no_longer_refreshed(
    tmp_path, tiny_checkpoint, image, capsys
):
    out = tmp_path / "out"
    lock = _lock(out, host="node-17.elsewhere", pid=1, time=time.time())
    assert cli_predict(image, tiny_checkpoint, out) == 2
    assert "pid 1 on node-17.elsewhere" in capsys.readouterr().err
    hour_ago = time.time() - 3600
    os.utime(lock, (hour_ago, hour_ago))
    assert cli_predict(image, tiny_checkpoint, out) == 0
    assert not lock.exists() and (out / "img_instances.tif").exists()


@pytest.mark.parametrize("fmt", ["zarr", "tiff"])
def test_a_run_whose_lock_was_taken_over_publishes_nothing(tmp_path, tiny_checkpoint, image, fmt):
    out = tmp_path / "out"

    def take_over(path):
        return lambda step: _lock(out, token="someone else", time=time.time())

    options = OPTIONS.replace(output_format=fmt)
    results = run_batch([image], tiny_checkpoint, out, options, progress=take_over)
    assert [result.status for result in results] == ["failed"]
    assert "took over the lock" in results[0].error
    assert [path.name for path in out.iterdir() if not path.name.startswith(".")] == []


def test_a_store_that_lost_its_arrays_is_not_published(tmp_path, tiny_checkpoint, image):
    out = tmp_path / "out"

    def remove_partial(path):  # what the other run of the review did
        def progress(step):
            for partial in out.glob(".*.partial"):
                shutil.rmtree(partial)

        return progress

    options = OPTIONS.replace(output_format="zarr")
    results = run_batch([image], tiny_checkpoint, out, options, progress=remove_partial)
    assert [result.status for result in results] == ["failed"]
    assert "nothing was published" in results[0].error
    assert not (out / "img_prediction.zarr").exists()


def test_a_rerun_recomputes_a_store_lacking_arrays(tmp_path, tiny_checkpoint, image, capsys):
    out = tmp_path / "out"
    assert cli_predict(image, tiny_checkpoint, out, "--output-format", "zarr") == 0
    shutil.rmtree(out / "img_prediction.zarr" / "prob")
    capsys.readouterr()
    assert cli_predict(image, tiny_checkpoint, out, "--output-format", "zarr") == 0
    printed = capsys.readouterr().out
    assert "skipped" not in printed and "lacked prob" in printed
    assert sorted(open_outputs(out / "img_prediction.zarr")) == sorted(KINDS)


# ---- the input folder as output folder ---------------------------------------------------
def test_the_input_folder_can_be_the_output_folder_again_and_again(
    tmp_path, tiny_checkpoint, image, capsys
):
    folder = image.parent
    tifffile.imwrite(folder / "cells_mask.tif", np.ones((40, 40), np.uint16))  # not ours
    assert cli_predict(folder, tiny_checkpoint, folder) == 0
    assert (folder / "cells_mask_instances.tif").exists()  # named like an output, an input
    capsys.readouterr()
    assert cli_predict(folder, tiny_checkpoint, folder) == 0
    printed = capsys.readouterr().out
    assert "left out 6 outputs" in printed and printed.count(": skipped") == 2
    (folder / "img_instances.tif").unlink()  # interrupted before its last output
    assert cli_predict(folder, tiny_checkpoint, folder) == 0
    printed = capsys.readouterr().out
    assert "img.tif: skipped" not in printed and "cells_mask.tif: skipped" in printed
    assert (folder / "img_instances.tif").exists()


# ---- the up-front check, formats -----------------------------------------------------------
def test_every_bad_input_is_reported_at_once(tmp_path, tiny_checkpoint, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    tifffile.imwrite(folder / "good.tif", np.zeros((40, 40), np.uint16))
    tifffile.imwrite(folder / "five.tif", np.zeros((2, 2, 2, 16, 16), np.uint8))
    (folder / "cut.tif").write_bytes(b"II*\x00garbage")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n")
    assert cli_predict(folder, tiny_checkpoint, tmp_path / "out") == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 4 and "3 of 4 inputs cannot be predicted" in errors[-1]
    for name in ("five.tif", "cut.tif", "broken.png"):
        assert sum(name in line for line in errors[:3]) == 1
    assert not (tmp_path / "out").exists()


def test_one_bad_input_among_several_says_nothing_was_predicted(tmp_path, tiny_checkpoint, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    tifffile.imwrite(folder / "good.tif", np.zeros((40, 40), np.uint16))
    (folder / "empty.tif").write_bytes(b"")
    assert cli_predict(folder, tiny_checkpoint, tmp_path / "out") == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 2 and "empty.tif" in errors[0]
    assert "1 of 2 inputs cannot be predicted (above); nothing was predicted" in errors[1]
    assert not (tmp_path / "out").exists()


def test_python_m_napari_unet_is_the_command(tmp_path):
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "napari_unet", "--help"], capture_output=True, text=True
    )
    assert done.returncode == 0 and "predict" in done.stdout


def test_a_folder_from_a_mac_drive_leaves_out_its_hidden_files(tmp_path, tiny_checkpoint):
    """macOS writes ``._<name>`` (AppleDouble) beside every file on drives it does not
    format itself; such a file is no image, and one made the whole folder refused."""
    folder = tmp_path / "in"
    folder.mkdir()
    tifffile.imwrite(folder / "cells.tif", np.zeros((40, 40), np.uint16))
    (folder / "._cells.tif").write_bytes(b"\x00\x05\x16\x07" + bytes(80))  # its header
    assert cli_predict(folder, tiny_checkpoint, tmp_path / "out") == 0
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == [
        f"cells_{kind}.tif" for kind in ("instances", "mask", "prob")
    ]


def test_a_broken_tiff_gets_one_line_of_ours_and_none_of_tifffiles(
    tmp_path, tiny_checkpoint, capsys, caplog
):
    broken = tmp_path / "offset.tif"
    broken.write_bytes(b"II*\x00\xff\xff\xff\x7f" + bytes(64))  # first page past the end
    assert cli_predict(broken, tiny_checkpoint, tmp_path / "out") == 2
    assert "unreadable, truncated or not a TIFF" in capsys.readouterr().err
    assert [record.getMessage() for record in caplog.records if "tifffile" in record.name] == []


def test_npy_arrays_are_inputs_and_other_files_are_named_for_what_they_are(
    tmp_path, tiny_checkpoint, capsys
):
    folder = tmp_path / "in"
    folder.mkdir()
    np.save(folder / "arr.npy", np.random.default_rng(1).integers(0, 9, (40, 50), np.uint8))
    assert cli_predict(folder, tiny_checkpoint, tmp_path / "out") == 0
    assert tifffile.imread(tmp_path / "out" / "arr_prob.tif").shape == (2, 40, 50)
    np.save(tmp_path / "objects.npy", np.array([{}], dtype=object), allow_pickle=True)
    (tmp_path / "notes.txt").write_text("not pixels")
    inputs = [tmp_path / "objects.npy", tmp_path / "notes.txt"]
    assert cli_predict(inputs, tiny_checkpoint, tmp_path / "out") == 2
    error = capsys.readouterr().err
    assert "objects.npy: not a NumPy array file, or one holding Python objects" in error
    assert "notes.txt: not an image format napari-unet reads (TIFF, PNG" in error


def test_an_output_that_is_a_file_is_named_so(tmp_path, tiny_checkpoint, image, capsys):
    (tmp_path / "afile").write_text("")
    assert cli_predict(image, tiny_checkpoint, tmp_path / "afile") == 2
    assert "--output " + str(tmp_path / "afile") + " is a file" in capsys.readouterr().err


def test_watershed_refusal_uses_the_command_lines_words(tmp_path, tiny_checkpoint, capsys):
    store = tmp_path / "huge.zarr"  # above the threshold, yet nothing written: all fill value
    zarr.open_array(str(store), mode="w", shape=(6000, 6000), chunks=(1000, 1000), dtype="u1")
    options = ("--instances", "watershed")
    assert cli_predict(store, tiny_checkpoint, tmp_path / "out", *options) == 2
    error = capsys.readouterr().err
    assert "use --instances components for images this large" in error
    assert "instances='components'" not in error and not (tmp_path / "out").exists()


# ---- job arrays ------------------------------------------------------------------------------
def _stems(folder):
    return {path.name.split("_")[0] for path in folder.glob("*_instances.tif")}


def test_shards_split_a_folder_disjointly_and_completely(tmp_path, tiny_checkpoint, monkeypatch):
    folder = tmp_path / "in"
    folder.mkdir()
    for index in range(5):
        tifffile.imwrite(folder / f"i{index}.tif", np.full((40, 40), index, np.uint16))
    shares = []
    for index in (1, 2, 3):
        out = tmp_path / f"out{index}"
        assert cli_predict(folder, tiny_checkpoint, out, "--shard", f"{index}/3") == 0
        shares.append(_stems(out))
    assert sorted(map(len, shares)) == [1, 2, 2]
    assert set().union(*shares) == {f"i{index}" for index in range(5)}
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "11")
    monkeypatch.setenv("SLURM_ARRAY_TASK_MIN", "10")
    monkeypatch.setenv("SLURM_ARRAY_TASK_COUNT", "3")
    assert cli_predict(folder, tiny_checkpoint, tmp_path / "slurm", "--shard", "slurm") == 0
    assert _stems(tmp_path / "slurm") == shares[1]


def test_shard_slurm_outside_an_array_says_so(
    tmp_path, tiny_checkpoint, image, capsys, monkeypatch
):
    for name in ("ID", "MIN", "COUNT", "MAX"):
        monkeypatch.delenv(f"SLURM_ARRAY_TASK_{name}", raising=False)
    assert cli_predict(image, tiny_checkpoint, tmp_path / "out", "--shard", "slurm") == 2
    assert "run it in a SLURM job array" in capsys.readouterr().err
    # --array=1-19:2: ten tasks 1, 3, ..., 19; as shards 1-10 of 10 half would never run
    for name, value in (("ID", "3"), ("MIN", "1"), ("COUNT", "10"), ("MAX", "19")):
        monkeypatch.setenv(f"SLURM_ARRAY_TASK_{name}", value)
    assert cli_predict(image, tiny_checkpoint, tmp_path / "out", "--shard", "slurm") == 2
    assert "consecutive" in capsys.readouterr().err


def test_a_run_over_several_inputs_ends_with_what_became_of_them(
    tmp_path, tiny_checkpoint, image, capsys
):
    second = image.with_name("other.tif")
    shutil.copy(image, second)
    out = tmp_path / "out"
    assert cli_predict([image, second], tiny_checkpoint, out) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        "2 inputs: 2 predicted, 0 skipped (outputs up to date), 0 failed"
    )
    third = image.with_name("third.tif")
    shutil.copy(image, third)
    assert cli_predict([image, second, third], tiny_checkpoint, out) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        "3 inputs: 1 predicted, 2 skipped (outputs up to date), 0 failed"
    )
    assert cli_predict(image, tiny_checkpoint, out) == 0  # one input: its own line says it
    assert "inputs:" not in capsys.readouterr().out


def test_an_input_that_fails_to_read_is_named_once(tmp_path, tiny_checkpoint, image, capsys):
    data = image.read_bytes()
    cut = image.with_name("cut.tif")
    cut.write_bytes(data[: len(data) // 2])
    assert cli_predict(cut, tiny_checkpoint, tmp_path / "out") == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("napari-unet predict: error:") and error.count("cut.tif") == 1


# ---- a local cluster interrupted --------------------------------------------------------
def test_an_interrupted_local_cluster_leaves_no_lock_or_unfinished_store(
    tmp_path, tiny_checkpoint, monkeypatch
):
    """Ctrl-C closes the local cluster, whose workers die mid-file before their own
    clean-up: the driver removes their locks and unfinished stores, and spares the
    store of a file another live run holds."""
    import contextlib

    from napari_unet.io import batch

    names = ("done", "killed", "other")
    paths = [tmp_path / "in" / f"{name}.tif" for name in names]
    paths[0].parent.mkdir()
    for path in paths:
        tifffile.imwrite(path, np.zeros((40, 40), np.uint16))
    out = tmp_path / "out"
    unfinished = {name: out / f".{name}_prediction.zarr.{'0' * 32}.partial" for name in names}

    def killed_mid_file(client, jobs, checkpoint, output, options, report):
        report(batch.FileResult(jobs[0], "done"))
        _lock(out, "killed", pid=_dead_pid())  # a worker the cluster's close killed
        _lock(out, "other", pid=os.getppid(), time=time.time())  # another run, alive
        for store in unfinished.values():
            zarr.open_group(str(store), mode="w")
        raise KeyboardInterrupt

    monkeypatch.setattr(batch, "client_for", lambda *_: contextlib.nullcontext(None))
    monkeypatch.setattr(batch, "_run_on_cluster", killed_mid_file)
    with pytest.raises(KeyboardInterrupt):
        run_batch(paths, tiny_checkpoint, out, OPTIONS, workers=2)
    left = sorted(path.name for path in out.iterdir())
    # "done" was reported finished: not the driver's to touch (a real one leaves nothing)
    expected = [unfinished["done"].name, unfinished["other"].name, ".other.napari-unet.lock"]
    assert left == sorted(expected)


def test_ctrl_c_says_the_unfinished_outputs_were_removed(
    tmp_path, tiny_checkpoint, image, capsys, monkeypatch
):
    from napari_unet.io import batch

    def interrupted(*_, **__):
        raise KeyboardInterrupt

    monkeypatch.setattr(batch, "run_batch", interrupted)
    assert cli_predict(image, tiny_checkpoint, tmp_path / "out") == 130
    err = capsys.readouterr().err
    assert err.strip() == "napari-unet predict: interrupted; unfinished outputs removed"
    status = cli_predict(image, tiny_checkpoint, tmp_path / "out", "--scheduler", "tcp://x:1")
    assert status == 130
    assert "the scheduler's workers may still finish" in capsys.readouterr().err


def test_a_path_the_consoles_code_page_lacks_is_printed_escaped(
    tmp_path, tiny_checkpoint, monkeypatch
):
    """Windows encodes redirected output in the console's code page, strictly: "ł" in a
    path made print() raise and failed the batch; it is escaped instead."""
    import io

    folder = tmp_path / "łódź"
    folder.mkdir()
    tifffile.imwrite(folder / "cells.tif", np.zeros((40, 40), np.uint16))
    tifffile.imwrite(folder / "more.tif", np.zeros((40, 40), np.uint16))
    raw = io.BytesIO()
    monkeypatch.setattr("sys.stdout", io.TextIOWrapper(raw, encoding="cp1252"))
    assert cli_predict(folder, tiny_checkpoint, tmp_path / "out") == 0
    sys.stdout.flush()
    printed = raw.getvalue().decode("cp1252")
    # ó is in cp1252, ł and ź are not
    assert "\\u0142ód\\u017a" in printed and "2 inputs: 2 predicted" in printed

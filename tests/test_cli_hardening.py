"""The command line never loses work or damages files it was not asked to write."""

import os
import signal
from collections import namedtuple

import numpy as np
import pytest
import tifffile

from napari_unet import ModelConfig, load_model, save_model
from napari_unet.checkpoint import new_model
from napari_unet.cli import main


@pytest.fixture
def checkpoint(tmp_path):
    model = new_model(ModelConfig(base_features=4, depth=2), seed=0)
    return save_model(model, tmp_path / "model.safetensors")


@pytest.fixture
def image(tmp_path):
    path = tmp_path / "img.tif"
    tifffile.imwrite(path, np.random.default_rng(0).integers(0, 4000, (40, 40), dtype=np.uint16))
    return path


def _train_args(tmp_path):
    image = np.random.default_rng(0).random((48, 48)).astype(np.float32)
    labels = np.ones((48, 48), np.uint8)
    labels[10:30, 10:30] = 2
    tifffile.imwrite(tmp_path / "im.tif", image)
    tifffile.imwrite(tmp_path / "lab.tif", labels)
    files = ["--images", str(tmp_path / "im.tif"), "--labels", str(tmp_path / "lab.tif")]
    return ["train", *files, "--new", "--features", "4", "--depth", "2", "--padding", "same"]


def test_write_probe_never_follows_a_symlink(tmp_path, checkpoint, image):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    out = tmp_path / "out"
    out.mkdir()
    (out / ".napari-unet-write-test").symlink_to(victim)
    assert main(["predict", str(image), "--model", str(checkpoint), "--output", str(out)]) == 0
    assert victim.read_text() == "precious"
    assert (out / ".napari-unet-write-test").is_symlink()


def test_sigterm_during_train_writes_the_best_weights(tmp_path, capsys, monkeypatch):
    from napari_unet import _commands

    reports = []

    def terminate_at_second_report(self, fraction, detail=""):
        reports.append(detail)
        if len(reports) == 2:
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(_commands.ProgressBar, "update", terminate_at_second_report)
    previous = signal.getsignal(signal.SIGTERM)
    out = tmp_path / "stopped.safetensors"
    status = main([*_train_args(tmp_path), "--output", str(out), "--iterations", "1000"])
    assert status == 128 + signal.SIGTERM
    assert "interrupted" in capsys.readouterr().out
    assert load_model(out).metadata["training_history"][-1]["iterations"] < 1000
    assert signal.getsignal(signal.SIGTERM) == previous


def test_train_output_that_is_a_folder_is_refused_before_training(tmp_path, capsys):
    folder = tmp_path / "models"
    folder.mkdir()
    status = main([*_train_args(tmp_path), "--output", str(folder), "--iterations", "2"])
    assert status == 2
    error = capsys.readouterr().err
    assert "is a folder; give a file name" in error and "training" not in error.lower()


def test_train_refuses_a_full_disk_before_training(tmp_path, capsys, monkeypatch):
    import shutil

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9, 1000))
    status = main([*_train_args(tmp_path), "--output", str(tmp_path / "m.safetensors")])
    assert status == 2
    assert "not enough space" in capsys.readouterr().err


def test_failed_save_keeps_the_weights_in_a_temporary_folder(tmp_path, capsys, monkeypatch):
    from napari_unet import checkpoint as checkpoint_module

    real_save = checkpoint_module.save_model
    out = tmp_path / "m.safetensors"

    def full_disk(model, path, **kwargs):
        if path == out:
            raise OSError(28, "No space left on device")
        return real_save(model, path, **kwargs)

    monkeypatch.setattr(checkpoint_module, "save_model", full_disk)
    status = main([*_train_args(tmp_path), "--output", str(out), "--iterations", "2"])
    assert status == 2 and not out.exists()
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert "No space left on device" in error
    kept = error.split("the trained weights were saved to ")[1]
    assert load_model(kept).metadata["training_history"][-1]["iterations"] == 2
    os.remove(kept)
    os.rmdir(os.path.dirname(kept))

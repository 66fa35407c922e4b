"""Shared pytest fixtures (shared plain helpers are in helpers.py)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import numpy as np
import pytest

from helpers import discs_image, tiny_model

_NO_ACCELERATOR = pytest.MonkeyPatch()


def pytest_configure(config: pytest.Config) -> None:
    """One torch thread: the tests use tiny arrays, and on a busy 2-core machine two
    threads stall each other (measured 9x slower), which makes test times erratic.

    No GPU either, for every fixture and test and the command lines the tests start: the
    tests compare values computed on the CPU (a model left on CUDA by a fine-tune,
    bit-equal results) and must pass alike on a workstation with a GPU. A test that
    patches these itself (test_devices.py) overrides this. The CUDA path is checked on a
    GPU machine by ``benchmarks/gpu_check.sh`` (the annotation loop and a resumed
    out-of-core prediction on CUDA)."""
    import torch

    from napari_unet.core import devices

    torch.set_num_threads(1)
    os.environ["CUDA_VISIBLE_DEVICES"] = ""
    _NO_ACCELERATOR.setattr(torch.cuda, "is_available", lambda: False)
    _NO_ACCELERATOR.setattr(devices, "_mps_available", lambda: False)


def pytest_unconfigure(config: pytest.Config) -> None:
    _NO_ACCELERATOR.undo()


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Every test starts with one torch thread, whatever an earlier test set."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def shared_data() -> Path:
    """The real-data folder (``NAPARI_UNET_DATA`` or ``../shared/data``).

    Skips the test, saying where it looked, only when the folder is absent.
    """
    from napari_unet.io.data import data_dir

    folder = data_dir()
    if not folder.is_dir() and os.environ.get("CI"):
        pytest.fail(f"real data folder {folder} not found (CI must provide ../shared/data)")
    if not folder.is_dir():
        pytest.skip(
            f"real data folder {folder} not found; set NAPARI_UNET_DATA to the folder "
            "holding isbi2012-em/ and dsb2018-nuclei/"
        )
    return folder


@pytest.fixture
def rng() -> np.random.Generator:
    """A seeded random generator, so tests are reproducible."""
    return np.random.default_rng(20150518)


@pytest.fixture
def full_disk(tmp_path, monkeypatch) -> Path:
    """An output path whose checkpoint save fails with a full disk (other paths save)."""
    from napari_unet.core import checkpoint

    real_save, out = checkpoint.save_model, tmp_path / "m.safetensors"

    def failing_save(model, path, **kwargs):
        if path == out:
            raise OSError(28, "No space left on device")
        return real_save(model, path, **kwargs)

    monkeypatch.setattr(checkpoint, "save_model", failing_save)
    return out


@pytest.fixture
def no_network(monkeypatch):
    """Any connection attempt fails: export, test and import must work offline."""

    def refuse(self, address):
        raise OSError(f"network disabled in tests (tried {address})")

    monkeypatch.setattr(socket.socket, "connect", refuse)


@pytest.fixture
def tiny_checkpoint(tmp_path) -> Path:
    """:func:`helpers.tiny_model` saved as ``model.safetensors`` in the test's folder."""
    from napari_unet import save_model

    return save_model(tiny_model(), tmp_path / "model.safetensors")


@pytest.fixture
def notifications():
    """Every napari notification dispatched during the test."""
    from napari.utils.notifications import notification_manager

    seen = []
    notification_manager.notification_ready.connect(seen.append)
    yield seen
    notification_manager.notification_ready.disconnect(seen.append)


@pytest.fixture
def dock(make_napari_viewer):
    """A viewer with the discs image and the U-Net dock holding a tiny fresh model."""
    from napari_unet._widgets import UNetWidget

    viewer = make_napari_viewer()
    viewer.add_image(discs_image(), name="discs")
    widget = UNetWidget(viewer)
    viewer.window.add_dock_widget(widget, name="U-Net")
    widget.model.use_model(tiny_model(), "tiny")
    finetune = widget.finetune
    finetune.settings.iterations.value = 15
    finetune.settings.seconds.value = 120
    finetune.settings.learning_rate.value = 1e-2
    finetune.settings.elastic.value = False
    finetune.settings.device.value = "cpu"
    widget.predict.device.value = "cpu"
    return viewer, widget

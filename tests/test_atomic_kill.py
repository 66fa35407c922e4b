"""A process killed (SIGKILL) at random moments while saving never leaves a broken checkpoint."""

import os
import signal

import numpy as np
import torch

from napari_unet import ModelConfig, load_model, save_model
from napari_unet.core.checkpoint import new_model

# tiny tensors: the forked writer never enters a parallel (OpenMP) region
CONFIG = ModelConfig(base_features=4, depth=2)


def _writer(path, models, done: int) -> None:
    """In a forked child: save the two models alternately until killed, writing one byte
    to the pipe ``done`` after each save has returned."""
    try:
        for index in range(1_000_000):
            save_model(models[index % 2], path, description=f"model {index % 2} save {index}")
            os.write(done, b".")
    finally:
        os._exit(0)


def _read_exactly(fd: int, count: int) -> int:
    """Read ``count`` bytes from ``fd`` (fewer only when the writer is gone); how many came."""
    received = 0
    while received < count:
        chunk = os.read(fd, count - received)
        if not chunk:
            break
        received += len(chunk)
    return received


def test_sigkill_during_saves_leaves_old_or_new_checkpoint(tmp_path):
    path = tmp_path / "model.safetensors"
    models = [new_model(CONFIG, seed=seed) for seed in (0, 1)]
    save_model(models[0], path, description="model 0 save -1")
    rng = np.random.default_rng(0)
    for _ in range(40):
        wait_for = int(rng.integers(1, 6))  # saves to see finish before the kill
        reader, writer = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(reader)
            _writer(path, models, writer)
        os.close(writer)
        try:
            assert _read_exactly(reader, wait_for) == wait_for  # the writer is saving
            os.kill(pid, signal.SIGKILL)  # during (or between) the saves that follow
            os.waitpid(pid, 0)
            finished = wait_for + _read_exactly(reader, 1 << 20)  # every save that returned
        finally:
            os.close(reader)
        loaded = load_model(path)  # must always load
        _, index, _, save = loaded.metadata["description"].split()
        index, save = int(index), int(save)
        # the last save that returned, or the next one if the kill came between its rename
        # and its byte: never an older file, never a mix of two
        assert save in (finished - 1, finished), (save, finished)
        assert index == save % 2
        for key, value in models[index].state_dict().items():
            assert torch.equal(loaded.state_dict()[key], value)
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "model.safetensors"]
    # a killed writer may leave its own temporary file, never a broken target
    assert all(name.startswith(".model.safetensors.") for name in leftovers)

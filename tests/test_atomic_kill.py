"""A process killed (SIGKILL) at random moments while saving never leaves a broken checkpoint."""

import os
import signal
import time

import numpy as np
import torch

from napari_unet import ModelConfig, load_model, save_model
from napari_unet.core.checkpoint import new_model

# tiny tensors: the forked writer never enters a parallel (OpenMP) region
CONFIG = ModelConfig(base_features=4, depth=2)


def _writer(path, models) -> None:
    """In a forked child: save the two models alternately until killed."""
    try:
        for index in range(1_000_000):
            save_model(models[index % 2], path, description=f"model {index % 2}")
    finally:
        os._exit(0)


def test_sigkill_during_saves_leaves_old_or_new_checkpoint(tmp_path):
    path = tmp_path / "model.safetensors"
    models = [new_model(CONFIG, seed=seed) for seed in (0, 1)]
    save_model(models[0], path, description="model 0")
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(40):
        pid = os.fork()
        if pid == 0:
            _writer(path, models)
        time.sleep(float(rng.uniform(0.001, 0.03)))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        loaded = load_model(path)  # must always load
        index = int(loaded.metadata["description"].split()[1])
        seen.add(index)
        for key, value in models[index].state_dict().items():
            assert torch.equal(loaded.state_dict()[key], value)
    assert seen == {0, 1}  # the kills did land between different saves
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "model.safetensors"]
    # a killed writer may leave its own temporary file, never a broken target
    assert all(name.startswith(".model.safetensors.") for name in leftovers)

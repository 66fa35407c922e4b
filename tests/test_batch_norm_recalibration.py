"""Batch-norm statistics after training: recalibrated for the kept weights when asked,
the training's running averages otherwise, untouched by a stopped run."""

import threading

import numpy as np
import torch

from helpers import FAST, random_discs
from napari_unet import ModelConfig, TrainConfig
from napari_unet.core.checkpoint import new_model
from napari_unet.training import loop
from napari_unet.training.loop import finetune, train
from napari_unet.training.sampling import prepare_training_data


def _batch_norm_model():
    return new_model(ModelConfig(base_features=4, depth=1, padding="same", batch_norm=True), seed=0)


def test_batch_norm_statistics_are_recalibrated_for_the_final_weights():
    # A constant image: every (mirrored, rotated, flipped) patch is the same constant
    # patch, so the recalibrated statistics of the first batch norm are exactly the
    # per-channel mean and variance of the first convolution's output on that patch.
    image = np.full((64, 64), 7.0, np.float32)
    scribbles = np.zeros((64, 64), np.uint8)
    scribbles[10, 10:20], scribbles[40, 10:20] = 1, 2
    model = _batch_norm_model()
    config = FAST.replace(patch_size=32, bn_recalibration=3, learning_rate=1e-2)
    train(model, [image], [scribbles], config)
    first_conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    first_norm = next(m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    patch = prepare_training_data([image], [scribbles], model)[0].image[None, :, :32, :32]
    patch = np.repeat(patch, config.batch_size, axis=0)  # the batches the statistics saw
    with torch.no_grad():
        features = first_conv(torch.from_numpy(patch))
    torch.testing.assert_close(first_norm.running_mean, features.mean((0, 2, 3)))
    torch.testing.assert_close(
        first_norm.running_var, features.var((0, 2, 3), unbiased=True), rtol=1e-4, atol=1e-6
    )
    assert int(first_norm.num_batches_tracked) == 3
    assert first_norm.momentum == 0.1  # put back after the cumulative average
    assert model.metadata["training_history"][-1]["bn_recalibration_passes"] == 3
    assert not model.training


def test_stopping_skips_the_recalibration_and_keeps_the_statistics():
    image, _, scribbles = random_discs()
    model = _batch_norm_model()
    stop = threading.Event()
    config = TrainConfig(seconds=60, batch_size=2, bn_recalibration=3)
    for step in finetune(model, [image], [scribbles], config, stop=stop):
        if step.iteration == 2:
            stop.set()
    first_norm = next(m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert int(first_norm.num_batches_tracked) in (0, 1, 2)  # the best weights' statistics
    assert float(first_norm.running_var.min()) > 0
    assert first_norm.momentum == 0.1
    assert model.metadata["training_history"][-1]["bn_recalibration_passes"] == 0


def test_by_default_the_running_averages_of_training_are_kept(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("recalibrated although bn_recalibration is 0")

    monkeypatch.setattr(loop, "recalibrate_batch_norm", fail)
    image, _, scribbles = random_discs()
    model = _batch_norm_model()
    train(model, [image], [scribbles], FAST)
    assert TrainConfig().bn_recalibration == 0
    assert model.metadata["training_history"][-1]["bn_recalibration_passes"] == 0

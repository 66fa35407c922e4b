"""The headless API's defaults are the safe ones the README documents."""

from __future__ import annotations

import numpy as np
import torch

import napari_unet as nu
from helpers import tiny_model
from napari_unet._train_config import TrainConfig
from napari_unet.config import PredictConfig, WeightConfig
from napari_unet.core.inference import default_tile_size
from napari_unet.training.loop import finetune


def _tiny():
    return tiny_model().eval()


def test_predict_without_a_tile_size_tiles_a_large_image_as_the_widget_does():
    model, rng = _tiny(), np.random.default_rng(0)
    size = default_tile_size(model) * 2
    image = rng.random((size, size), dtype=np.float32)
    passes = []
    hook = model.register_forward_pre_hook(lambda _module, args: passes.append(args[0].shape))
    try:
        tiled = nu.predict(image, model, device="cpu")
    finally:
        hook.remove()
    assert len(passes) > 1 and max(shape[-1] for shape in passes) <= default_tile_size(model)
    whole = nu.predict(image, model, device="cpu", tile_size=None)
    np.testing.assert_allclose(tiled, whole, atol=1e-4)


def test_predict_takes_a_torch_tensor():
    model, image = _tiny(), np.random.default_rng(1).random((40, 52), dtype=np.float32)
    expected = nu.predict(image, model, device="cpu")
    np.testing.assert_allclose(nu.predict(torch.from_numpy(image), model, device="cpu"), expected)


def test_numpy_scalars_in_the_configs_are_saved_as_numbers(tmp_path):
    model = _tiny()
    image = np.random.default_rng(2).random((48, 48), dtype=np.float32)
    labels = np.zeros((48, 48), np.uint8)
    labels[5:10, 5:40], labels[30:34, 10:30] = 1, 2
    config = TrainConfig(seconds=None, iterations=np.int64(2), seed=np.int64(3), device="cpu")
    weights = WeightConfig(w0=np.float32(10))
    for _ in finetune(model, [image], [labels], config, weights=weights):
        pass
    path = nu.save_model(model, tmp_path / "m.safetensors", note=np.float32(0.5))
    loaded = nu.load_model(path)
    assert loaded.metadata["note"] == 0.5
    run = loaded.metadata["training_history"][-1]
    assert run["train_config"]["seed"] == 3 and isinstance(run["train_config"]["seed"], int)
    assert run["weight_config"]["w0"] == 10.0


def test_mask_steps_give_predicts_mask_for_a_model():
    model = _tiny()
    model.metadata.update(background_threshold=0.85, close_gaps=False)
    steps = nu.mask_steps(model, PredictConfig())
    assert steps.background_threshold == 0.85 and steps.close_boundaries is False
    assert nu.mask_steps(model) == steps  # no config: Predict's defaults
    off = nu.mask_steps(model, PredictConfig(close_boundaries=False, fill_holes=False))
    assert off == (False, 0.5, False)

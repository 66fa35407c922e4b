"""A fine-tuned model's background threshold is carried over from the starting model."""

import copy

import numpy as np
import pytest
import torch
from scipy import ndimage

import napari_unet as nu
from helpers import as_trained, tiny_model
from napari_unet.training.calibration import carried_threshold

IMAGE = ndimage.gaussian_filter(np.random.default_rng(0).random((72, 72)), 2).astype(np.float32)


def _model(threshold: float | None):
    model = as_trained(tiny_model())
    if threshold is not None:
        model.metadata["background_threshold"] = threshold
    return model


def _centred(model):
    """``model`` with its background bias set so that the median p(background) is 0.65."""
    median = float(np.median(nu.predict(IMAGE, model, tile_size=None)[0]))
    with torch.no_grad():
        model.head.bias[0] += np.log(0.65 / 0.35) - np.log(median / (1 - median))
    return model


def _strokes() -> np.ndarray:
    strokes = np.zeros(IMAGE.shape, np.uint8)
    strokes[10, 5:30], strokes[50, 30:60] = 1, 2
    return strokes


def test_an_unchanged_model_keeps_its_threshold():
    model = _centred(_model(0.65))
    carried = carried_threshold(model, copy.deepcopy(model), [IMAGE], [_strokes()], "cpu")
    assert carried == pytest.approx(0.65, abs=2e-3)


@pytest.mark.parametrize("shift, direction", [(0.5, 1), (-0.5, -1)])
def test_a_model_surer_of_the_background_gets_a_higher_threshold(shift, direction):
    start = _centred(_model(0.65))
    reference = carried_threshold(start, copy.deepcopy(start), [IMAGE], [_strokes()], "cpu")
    tuned = copy.deepcopy(start)
    with torch.no_grad():
        tuned.head.bias[0] += shift  # every background probability rises (or falls)
    carried = carried_threshold(start, tuned, [IMAGE], [_strokes()], "cpu")
    if direction > 0:
        assert carried > reference + 0.05
    else:
        assert 0.5 <= carried < reference - 0.05
    # the tuned model at the carried threshold calls as many far pixels background
    far = ~ndimage.binary_dilation(_strokes() > 0, np.ones((3, 3), bool), iterations=5)
    before = nu.predict(IMAGE, start, tile_size=None)[0][far] > start.info.background_threshold
    after = nu.predict(IMAGE, tuned, tile_size=None)[0][far] > carried
    assert abs(before.mean() - after.mean()) < 0.01


def test_a_threshold_that_would_fall_below_half_stays_half():
    start = _centred(_model(0.52))
    tuned = copy.deepcopy(start)
    with torch.no_grad():
        tuned.head.bias[0] -= 2.0
    assert carried_threshold(start, tuned, [IMAGE], [_strokes()], "cpu") == 0.5


def test_finetune_carries_the_threshold_only_for_models_that_have_one():
    config = nu.TrainConfig(seconds=None, iterations=3, device="cpu", patch_size=44, batch_size=1)
    for threshold in (0.7, None):
        model = _model(threshold)
        starting = copy.deepcopy(model)
        nu.train(model, [IMAGE], [_strokes()], config)
        if threshold is None:
            assert "background_threshold" not in model.metadata
            assert model.info.background_threshold == 0.5
        else:
            expected = carried_threshold(starting, model, [IMAGE], [_strokes()], "cpu")
            assert model.info.background_threshold == pytest.approx(expected)
            assert 0.5 <= model.info.background_threshold < 1

"""A new model's background threshold, estimated from its strokes' intensities."""

import copy

import numpy as np
import pytest
import torch
from scipy import ndimage

import napari_unet as nu
from helpers import tiny_model
from napari_unet.config import TRAINED_ITERATIONS
from napari_unet.training import calibration
from napari_unet.training.calibration import (
    OBJECT_STROKE_QUANTILE,
    carried_threshold,
    stroke_share_threshold,
)

SIZE = 96


def _membrane_image() -> tuple[np.ndarray, np.ndarray]:
    """Bright noisy cells between dark 4-px membranes every 24 px: image, true membrane."""
    membrane = np.zeros((SIZE, SIZE), bool)
    for start in range(10, SIZE, 24):
        membrane[start : start + 4, :] = True
        membrane[:, start : start + 4] = True
    noise = np.random.default_rng(0).normal(0, 0.1, membrane.shape)
    return (np.where(membrane, 0.2, 0.8) + noise).astype(np.float32), membrane


def _strokes(membrane: np.ndarray) -> np.ndarray:
    """1-px background strokes on membrane centres, object strokes in cell centres."""
    strokes = np.zeros(membrane.shape, np.uint8)
    strokes[11, 20:80] = 1  # along the membrane at rows 10-13
    strokes[40:80, 59] = 1  # along the membrane at columns 58-61
    for row in (23, 47, 71):  # a short stroke in the middle of each cell
        for column in (23, 47, 71):
            strokes[row, column - 6 : column + 6] = 2
    return strokes


def _model_with_median(image: np.ndarray, median_background: float):
    """A small new model whose background probabilities have this median on ``image``."""
    model = tiny_model(padding="same")
    median = float(np.median(nu.predict(image, model, tile_size=None)[0]))
    with torch.no_grad():
        model.head.bias[0] += np.log(median_background / (1 - median_background)) - np.log(
            median / (1 - median)
        )
    return model


def test_the_threshold_calls_the_share_of_pixels_darker_than_the_object_strokes():
    image, membrane = _membrane_image()
    strokes = _strokes(membrane)
    model = _model_with_median(image, 0.65)
    threshold = stroke_share_threshold(model, [image], [strokes], "cpu")
    assert 0.5 < threshold < 1
    # the share the strokes say: pixels darker than nearly all object strokes
    smooth = ndimage.gaussian_filter((image - np.percentile(image, 1)), 1.0)
    cut = np.quantile(smooth[strokes == 2], OBJECT_STROKE_QUANTILE)
    estimated = np.mean(smooth[strokes == 0] < cut)
    # the membranes (30 %), the pixels next to them that the smoothing darkens, and a
    # tenth of the interior: more than the membranes, far less than everything
    assert membrane[strokes == 0].mean() < estimated < 0.7
    background = nu.predict(image, model, tile_size=None)[0][strokes == 0]
    assert np.mean(background > threshold) == pytest.approx(estimated, abs=0.01)


def test_bright_background_strokes_count_the_brighter_pixels():
    image, membrane = _membrane_image()
    strokes = _strokes(membrane)
    model = _model_with_median(image, 0.65)
    inverted = (1.0 - image).astype(np.float32)
    assert stroke_share_threshold(model, [inverted], [strokes], "cpu") == pytest.approx(
        stroke_share_threshold(model, [image], [strokes], "cpu"), abs=0.02
    )


def test_no_threshold_when_intensity_does_not_tell_the_classes_apart():
    image = np.random.default_rng(1).random((SIZE, SIZE)).astype(np.float32)
    _, membrane = _membrane_image()
    model = _model_with_median(image, 0.65)
    assert stroke_share_threshold(model, [image], [_strokes(membrane)], "cpu") == 0.5


def test_no_threshold_without_strokes_of_both_classes_or_for_other_models():
    image, membrane = _membrane_image()
    strokes = _strokes(membrane)
    model = _model_with_median(image, 0.65)
    only_background = np.where(strokes == 1, 1, 0).astype(np.uint8)
    assert stroke_share_threshold(model, [image], [only_background], "cpu") == 0.5
    three_classes = tiny_model(n_classes=3)
    assert stroke_share_threshold(three_classes, [image], [strokes], "cpu") == 0.5


def test_a_model_that_calls_little_background_keeps_half():
    image, membrane = _membrane_image()
    model = _model_with_median(image, 0.05)
    assert stroke_share_threshold(model, [image], [_strokes(membrane)], "cpu") == 0.5


@pytest.fixture
def beyond_chance(monkeypatch):
    """A run's kept loss counts as beyond that of a guess: its new model is estimated
    (these runs barely change the model, whose loss stays at chance, where it would get
    no estimate: test_chance_threshold.py)."""
    monkeypatch.setattr(calibration, "loss_at_chance", lambda model: False)


def test_finetune_gives_a_new_model_the_threshold_of_its_strokes(beyond_chance):
    image, membrane = _membrane_image()
    strokes = _strokes(membrane)
    # a new model that calls most pixels background (as one trained on strokes half
    # background does on an image with little), barely changed by three small steps
    model = _model_with_median(image, 0.9)
    assert not model.info.training_history
    config = nu.TrainConfig(seconds=None, iterations=3, device="cpu", patch_size=48, seed=0)
    config = config.replace(batch_size=1, learning_rate=1e-6)
    nu.train(model, [image], [strokes], config)
    expected = stroke_share_threshold(model, [image], [strokes], "cpu")
    assert expected > 0.5
    assert model.info.background_threshold == pytest.approx(expected)
    assert model.info.close_gaps is False  # too thick boundaries: Predict leaves gaps open
    # once the model has trained enough, a run is a fine-tune: the threshold is carried
    # over, not estimated again
    model.metadata["training_history"][-1]["iterations"] = TRAINED_ITERATIONS
    tuned = copy.deepcopy(model)
    nu.train(tuned, [image], [strokes], config.replace(iterations=2, learning_rate=1e-3))
    carried = carried_threshold(model, tuned, [image], [strokes], "cpu")
    assert tuned.info.background_threshold == pytest.approx(carried)
    assert tuned.info.close_gaps is False


def test_a_new_model_without_a_threshold_keeps_closing_gaps(beyond_chance):
    image, membrane = _membrane_image()
    model = _model_with_median(image, 0.05)  # calls little background: nothing to thin
    config = nu.TrainConfig(seconds=None, iterations=2, device="cpu", patch_size=48, seed=0)
    nu.train(model, [image], [_strokes(membrane)], config.replace(batch_size=1, learning_rate=1e-6))
    assert model.info.training_history
    assert model.info.background_threshold == 0.5
    assert model.info.close_gaps is True
    assert "close_gaps" not in model.metadata


def test_a_run_abandoned_midway_leaves_a_new_model_without_a_threshold():
    image, membrane = _membrane_image()
    model = _model_with_median(image, 0.9)
    config = nu.TrainConfig(seconds=None, iterations=50, device="cpu", patch_size=48, seed=0)
    steps = nu.finetune(model, [image], [_strokes(membrane)], config, report_every=1)
    next(steps)
    steps.close()
    assert "background_threshold" not in model.metadata


def test_no_threshold_from_dense_labels():
    image, membrane = _membrane_image()
    dense = np.where(membrane, 1, 2).astype(np.uint8)
    dense[::3] = 0  # a third unpainted: still mostly labelled
    model = _model_with_median(image, 0.9)
    assert stroke_share_threshold(model, [image], [dense], "cpu") == 0.5
    sparse = _strokes(membrane)
    assert stroke_share_threshold(model, [image], [sparse], "cpu") > 0.5

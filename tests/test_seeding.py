"""A new model whose most probable class finds no object gets its decision moved
(``training.seeding``): objects are seeded at the midpoint of 0.5 and its threshold from
the strokes, in its weights, so every path that predicts finds them."""

import math

import numpy as np
import pytest
import torch

import napari_unet as nu
from helpers import membrane_image, membrane_strokes, tiny_model
from napari_unet.core.checkpoint import load_model, save_model
from napari_unet.core.postprocess import class_mask, prediction_mask
from napari_unet.training import calibration
from napari_unet.training.calibration import stroke_share_estimate, threshold_for_share
from napari_unet.training.seeding import (
    MIN_OBJECT_SHARE,
    move_decision,
    moved_threshold,
    seed_level,
)

SIZE = 96
IMAGES = [membrane_image(seed, SIZE) for seed in range(2)]
STROKES = [membrane_strokes(SIZE) for _ in IMAGES]
#: Three steps too small to change the model: only the calibration after them acts.
STILL = nu.TrainConfig(
    seconds=None, iterations=3, device="cpu", patch_size=48, seed=0, batch_size=1
).replace(learning_rate=1e-6)
#: Enough for a tiny model to tell the membranes from the cells.
LEARNING = STILL.replace(iterations=40, batch_size=2, learning_rate=1e-2)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _logit(p):
    return np.log(p / (1.0 - p))


def test_the_level_is_the_midpoint_only_when_almost_no_pixel_is_called_object():
    rng = np.random.default_rng(0)
    everything_background = rng.uniform(0.55, 0.95, 10_000)
    assert seed_level(everything_background, 0.25, 0.78) == pytest.approx(0.64)
    # objects on 60 % of the pixels where the strokes expect 75 %: left alone
    most_objects = np.where(rng.random(10_000) < 0.6, 0.3, 0.8)
    assert seed_level(most_objects, 0.25, 0.78) == 0.5
    # just under and just over MIN_OBJECT_SHARE of the expected object share
    for found, moved in (
        (MIN_OBJECT_SHARE * 0.75 - 0.01, True),
        (MIN_OBJECT_SHARE * 0.75 + 0.01, False),
    ):
        values = np.where(np.arange(10_000) < found * 10_000, 0.4, 0.9)
        level = seed_level(values, 0.25, 0.8)
        # moved: at least the midpoint (here raised to the threshold: nothing lies between)
        assert (level >= 0.65) is moved and (level == 0.5) is not moved
    assert seed_level(everything_background, 0.25, 0.5) == 0.5  # no threshold: nothing to do
    assert seed_level(everything_background, 1.0, 0.78) == 0.5  # no objects expected
    assert seed_level(np.array([]), 0.25, 0.78) == 0.5  # no pixel to judge by


def test_the_level_rises_until_the_moved_model_finds_objects():
    # every pixel above the midpoint (0.675): it would seed nothing, so the level rises to
    # where MIN_OBJECT_SHARE of the expected objects lie below it
    values = np.random.default_rng(1).uniform(0.7, 0.95, 10_000)
    level = seed_level(values, 0.25, 0.85)
    wanted = MIN_OBJECT_SHARE * 0.75
    assert 0.675 < level < 0.85
    assert np.mean(values <= level) == pytest.approx(wanted, abs=1e-3)
    # never past the threshold (values that do not fit it: the threshold read elsewhere)
    assert seed_level(np.full(100, 0.95), 0.25, 0.8) == 0.8


def test_moving_the_decision_shifts_every_probability_by_the_levels_odds():
    model = tiny_model(padding="same")
    before = nu.predict(IMAGES[0], model, tile_size=None)[0].astype(np.float64)
    move_decision(model, 0.64)
    after = nu.predict(IMAGES[0], model, tile_size=None)[0].astype(np.float64)
    np.testing.assert_allclose(after, _sigmoid(_logit(before) - _logit(0.64)), atol=1e-5)
    assert moved_threshold(0.8, 0.64) == pytest.approx(_sigmoid(_logit(0.8) - _logit(0.64)))
    # the threshold moves with the probabilities: the same pixels lie above it
    level, threshold = (float(np.quantile(before, q)) for q in (0.3, 0.7))
    model = tiny_model(padding="same")
    move_decision(model, level)
    after = nu.predict(IMAGES[0], model, tile_size=None)[0]
    moved = moved_threshold(threshold, level)
    assert moved > 0.5
    assert np.mean((after > moved) != (before > threshold)) < 1e-3
    assert moved_threshold(0.64, 0.64) == 0.5
    assert (
        moved_threshold(0.999999, 0.5) == pytest.approx(0.999999)
        and moved_threshold(0.999999, 0.5) < 1
    )
    assert moved_threshold(0.55, 0.7) == 0.5  # never under 0.5


def _learnt_but_all_background():
    """A tiny model that tells the membranes from the cells, its background bias then
    raised until it calls nearly every pixel background (as ISBI's seed 3 did)."""
    model = tiny_model(padding="same")
    nu.train(model, IMAGES, STROKES, LEARNING)
    probability = nu.predict(IMAGES[0], model, tile_size=None)[0]
    with torch.no_grad():  # the lowest 1 % of the pixels at 0.55
        model.head.bias[0] += _logit(0.55) - _logit(float(np.quantile(probability, 0.01)))
    return model


def _true_membrane() -> np.ndarray:
    """Where :func:`helpers.membrane_image` draws its membranes."""
    membrane = np.zeros((SIZE, SIZE), bool)
    for start in range(10, SIZE, 24):
        membrane[start : start + 4, :] = True
        membrane[:, start : start + 4] = True
    return membrane


@pytest.fixture
def beyond_chance(monkeypatch):
    """The tiny runs here count as beyond a guess, as a model that has learnt does."""
    monkeypatch.setattr(calibration, "loss_at_chance", lambda model: False)


def test_a_new_model_that_finds_no_object_is_moved_and_then_finds_the_cells(beyond_chance):
    model = _learnt_but_all_background()
    membrane = _true_membrane()
    before = nu.predict(IMAGES[0], model, tile_size=None)
    assert (class_mask(before) == 2).mean() < 0.01  # no object to grow from
    model.metadata["training_history"] = []  # a new model's run: estimated from its strokes
    nu.train(model, IMAGES, STROKES, STILL)
    level = model.metadata["training_history"][-1]["moved_decision"]
    assert 0.5 < level < 1
    assert model.info.training_history[-1].moved_decision == level
    threshold = model.info.background_threshold
    assert 0.5 < threshold < 1 and model.info.close_gaps is False
    after = nu.predict(IMAGES[0], model, tile_size=None)
    shown = prediction_mask(after, close_boundaries=False, background_threshold=threshold)
    # Predict's mask now holds the cells: most true cell pixels object, few membrane ones
    assert (shown[~membrane] == 2).mean() > 0.5
    assert (shown[membrane] == 2).mean() < 0.1
    # the moved model's own estimate is the moved threshold (the move is in its weights)
    assert threshold_for_share(*stroke_share_estimate(model, IMAGES, STROKES, "cpu")) == (
        pytest.approx(threshold, abs=0.01)
    )


def test_the_moved_decision_travels_with_the_checkpoint(beyond_chance, tmp_path):
    model = _learnt_but_all_background()
    model.metadata["training_history"] = []
    nu.train(model, IMAGES, STROKES, STILL)
    path = save_model(model, tmp_path / "moved.safetensors")
    loaded = load_model(path)
    moved = model.info.training_history[-1].moved_decision
    assert moved is not None
    assert loaded.info.training_history[-1].moved_decision == moved
    np.testing.assert_array_equal(
        nu.predict(IMAGES[1], loaded, tile_size=None), nu.predict(IMAGES[1], model, tile_size=None)
    )


def test_a_model_whose_most_probable_class_finds_objects_is_not_moved(beyond_chance):
    model = tiny_model(padding="same")
    nu.train(model, IMAGES, STROKES, LEARNING)
    assert (class_mask(nu.predict(IMAGES[0], model, tile_size=None)) == 2).mean() > 0.3
    weights = model.head.bias.detach().clone()
    model.metadata["training_history"] = []
    nu.train(model, IMAGES, STROKES, STILL)
    assert "moved_decision" not in model.metadata["training_history"][-1]
    assert model.info.training_history[-1].moved_decision is None
    # three steps at 1e-6 barely change the bias; a move would shift it by logit(level) > 0
    assert torch.allclose(model.head.bias.detach(), weights, atol=1e-4)


def test_a_trained_model_is_never_moved(beyond_chance):
    model = _learnt_but_all_background()
    model.metadata["training_history"] = [{"iterations": 300}]
    model.metadata["background_threshold"] = 0.7
    bias = float(model.head.bias.detach()[0])
    nu.train(model, IMAGES, STROKES, STILL.replace(distillation=0.0))
    assert "moved_decision" not in model.metadata["training_history"][-1]
    assert math.isclose(float(model.head.bias.detach()[0]), bias, abs_tol=1e-4)


def test_a_model_without_a_run_on_record_is_not_moved(beyond_chance):
    """``finetune`` records its run before calibrating; a caller that calibrates a model
    with no history gets its threshold, and no move it could not record."""
    model = _learnt_but_all_background()
    model.metadata["training_history"] = []
    bias = model.head.bias.detach().clone()
    calibration.set_threshold_after_run(model, None, False, (IMAGES, STROKES), ("cpu", None))
    assert model.info.background_threshold > 0.5
    assert torch.equal(model.head.bias.detach(), bias)

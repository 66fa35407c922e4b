"""A new model whose run ends at chance (its kept loss that of a guess) gets no threshold
from its strokes: the threshold and ``close_gaps`` go back to their defaults, and nothing
is predicted for an estimate. Other runs are calibrated as before."""

import threading

import numpy as np
import pytest
import torch

import napari_unet as nu
from helpers import as_trained, membrane_image, membrane_strokes, tiny_model
from napari_unet.training import calibration, loop
from napari_unet.training.calibration import carried_threshold, stroke_share_threshold
from napari_unet.training.history import last_run_loss, loss_at_chance

SIZE = 96
#: Three steps too small to change anything: the run ends where the model started.
STILL = nu.TrainConfig(
    seconds=None, iterations=3, device="cpu", patch_size=48, seed=0, batch_size=1
).replace(learning_rate=1e-6)
#: Enough to tell the membranes from the cells (kept loss about 0.5).
LEARNING = STILL.replace(iterations=30, batch_size=2, learning_rate=1e-2)


IMAGES = [membrane_image(seed, SIZE) for seed in range(2)]
STROKES = [membrane_strokes(SIZE) for _ in IMAGES]


def _calling_most_pixels_background(model):
    """``model`` with its background bias raised: median p(background) 0.9. Its strokes
    would give it a threshold above 0.5, and its loss is above that of a guess."""
    median = float(np.median(nu.predict(IMAGES[0], model, tile_size=None)[0]))
    with torch.no_grad():
        model.head.bias[0] += np.log(0.9 / 0.1) - np.log(median / (1 - median))
    return model


@pytest.fixture
def predictions(monkeypatch):
    """Counts the calibration's predictions."""
    calls = {"count": 0}
    real = calibration.predict

    def counted(*args, **kwargs):
        calls["count"] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(calibration, "predict", counted)
    return calls


def test_a_new_model_left_at_chance_gets_no_threshold_from_its_strokes(predictions):
    model = _calling_most_pixels_background(tiny_model(padding="same"))
    assert stroke_share_threshold(model, IMAGES, STROKES, "cpu") > 0.5  # what it would get
    predictions["count"] = 0
    nu.train(model, IMAGES, STROKES, STILL)
    assert loss_at_chance(model) and last_run_loss(model) > np.log(2)
    assert predictions["count"] == 0  # no estimate was made
    assert "background_threshold" not in model.metadata and "close_gaps" not in model.metadata
    assert model.info.background_threshold == 0.5 and model.info.close_gaps is True


@pytest.mark.parametrize("cancelled", [False, True])
def test_a_model_still_learning_loses_its_last_estimate_at_chance(predictions, cancelled):
    model = _calling_most_pixels_background(tiny_model(padding="same"))
    model.metadata["training_history"] = [{"iterations": 40}]  # its first run, cut short
    model.metadata["background_threshold"] = 0.8  # what that run's strokes gave
    model.metadata["close_gaps"] = False
    cancel = threading.Event()
    if cancelled:  # the second press of Stop: nothing to predict here anyway
        cancel.set()
    nu.train(model, IMAGES, STROKES, STILL, cancel=cancel)
    assert loss_at_chance(model)
    assert predictions["count"] == 0
    assert model.info.background_threshold == 0.5 and model.info.close_gaps is True


def test_a_new_model_beyond_chance_is_still_estimated_from_its_strokes(predictions):
    model = _calling_most_pixels_background(tiny_model(padding="same"))
    nu.train(model, IMAGES, STROKES, LEARNING)
    assert not loss_at_chance(model)
    assert predictions["count"] == len(IMAGES)
    expected = stroke_share_threshold(model, IMAGES, STROKES, "cpu")
    assert model.info.background_threshold == expected  # bit for bit
    assert model.info.close_gaps is (expected == 0.5)


def test_a_trained_model_at_chance_still_carries_its_threshold(predictions):
    model = _calling_most_pixels_background(as_trained(tiny_model(padding="same")))
    model.metadata["background_threshold"] = 0.7
    starting = as_trained(tiny_model(padding="same"))
    starting.load_state_dict(model.state_dict())
    starting.metadata = dict(model.metadata)
    nu.train(model, IMAGES, STROKES, STILL.replace(distillation=0.0))
    assert loss_at_chance(model)  # a fine-tune: the rule is for new models only
    assert predictions["count"] == 2 * len(IMAGES)
    expected = carried_threshold(starting.eval(), model, IMAGES, STROKES, "cpu")
    assert model.info.background_threshold == expected != 0.7


def test_sets_threshold_lives_in_calibration_and_is_still_found_in_loop():
    assert loop.sets_threshold is calibration.sets_threshold
    assert calibration.sets_threshold(tiny_model())  # new: from its strokes (or reset)
    trained = as_trained(tiny_model())
    assert not calibration.sets_threshold(trained)
    trained.metadata["background_threshold"] = 0.7
    assert calibration.sets_threshold(trained)

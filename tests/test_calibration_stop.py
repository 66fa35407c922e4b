"""The threshold calibration after a run honours the run's ``cancel`` flag (the dock's
second press of Stop).

A stopped run is calibrated (its threshold matters: a fine-tuned ``em-membranes`` with
its starting threshold has thinner membranes); once ``cancel`` is set, before or during
the calibration, whose predictions end at their next batch of tiles, the model keeps
the background threshold (and ``close_gaps``) it had before the run. A run that is not
cancelled is calibrated exactly as before.

These three-iteration runs end at chance, where a new model gets no estimate at all
(test_chance_threshold.py); here they count as beyond it (``beyond_chance``), the
calibration being the point.
"""

import copy
import threading

import numpy as np
import pytest
import torch

import napari_unet as nu
from helpers import as_trained, membrane_image, membrane_strokes, tiny_model
from napari_unet.core.inference import Cancelled
from napari_unet.training import calibration
from napari_unet.training.calibration import carried_threshold, stroke_share_threshold

SIZE = 96
CONFIG = nu.TrainConfig(
    seconds=None, iterations=3, device="cpu", patch_size=48, seed=0, batch_size=1
)


IMAGES = [membrane_image(seed, SIZE) for seed in range(3)]
STROKES = [membrane_strokes(SIZE) for _ in IMAGES]


def _new_model():
    """A new model that calls most pixels background: its strokes give it a threshold."""
    model = tiny_model(padding="same")
    median = float(np.median(nu.predict(IMAGES[0], model, tile_size=None)[0]))
    with torch.no_grad():
        model.head.bias[0] += np.log(0.9 / 0.1) - np.log(median / (1 - median))
    return model


def _trained_model():
    model = as_trained(tiny_model(padding="same"))
    model.metadata["background_threshold"] = 0.7
    return model


@pytest.fixture(autouse=True)
def beyond_chance(monkeypatch):
    """The runs' kept loss counts as beyond that of a guess: new models are estimated."""
    monkeypatch.setattr(calibration, "loss_at_chance", lambda model: False)


@pytest.fixture
def predictions(monkeypatch):
    """Counts the calibration's predictions; ``cancel_at`` (when set) is set by the first."""
    calls = {"count": 0, "cancel_at": None}
    real = calibration.predict

    def counted(*args, **kwargs):
        calls["count"] += 1
        if calls["cancel_at"] is not None:
            calls["cancel_at"].set()  # the user presses Stop again while it runs
        return real(*args, **kwargs)

    monkeypatch.setattr(calibration, "predict", counted)
    return calls


@pytest.mark.parametrize("make_model", [_new_model, _trained_model])
def test_a_cancel_during_the_calibration_ends_it_and_keeps_the_threshold(predictions, make_model):
    model = make_model()
    before = {key: model.metadata.get(key) for key in ("background_threshold", "close_gaps")}
    cancel = threading.Event()
    predictions["cancel_at"] = cancel
    nu.train(model, IMAGES, STROKES, CONFIG, cancel=cancel)
    assert predictions["count"] == 1  # not one per image (and model): it ended at once
    assert model.info.training_history[-1].iterations == CONFIG.iterations  # recorded
    after = {key: model.metadata.get(key) for key in ("background_threshold", "close_gaps")}
    assert after == before
    assert model.info.training_history[-1].moved_decision is None  # no move either


@pytest.mark.parametrize("make_model", [_new_model, _trained_model])
def test_a_run_stopped_during_its_iterations_is_still_calibrated(predictions, make_model):
    model = make_model()
    starting = as_trained(tiny_model(padding="same"))  # the trained model's copy, for the check
    starting.load_state_dict(model.state_dict())
    starting.metadata = dict(model.metadata)
    stop = threading.Event()
    config = CONFIG.replace(iterations=20)
    for step in nu.finetune(model, IMAGES, STROKES, config, stop=stop):
        if step.iteration == 2:
            stop.set()
    assert model.info.training_history[-1].iterations == 2
    assert predictions["count"] == len(IMAGES) * (1 if make_model is _new_model else 2)
    if make_model is _new_model:  # all background: its decision was moved (training.seeding),
        # and the moved model's own estimate is its threshold (to float rounding)
        assert model.info.training_history[-1].moved_decision is not None
        expected = stroke_share_threshold(model, IMAGES, STROKES, "cpu")
        assert model.metadata.get("background_threshold", 0.5) == pytest.approx(expected, abs=1e-6)
    else:
        expected = carried_threshold(starting.eval(), model, IMAGES, STROKES, "cpu")
        assert model.metadata.get("background_threshold", 0.5) == expected


def test_a_run_not_stopped_is_calibrated_exactly_as_without_a_stop_flag(predictions):
    new, trained = _new_model(), _trained_model()
    without_flag = copy.deepcopy(new)
    starting = trained.__class__(trained.config)
    starting.load_state_dict(trained.state_dict())
    starting.metadata = dict(trained.metadata)
    stop = threading.Event()  # never set
    nu.train(new, IMAGES, STROKES, CONFIG, stop=stop)
    nu.train(trained, IMAGES, STROKES, CONFIG, stop=lambda: False)
    assert predictions["count"] == len(IMAGES) * 3  # every image, and both models carried
    nu.train(without_flag, IMAGES, STROKES, CONFIG)  # the same run without a stop flag
    expected = without_flag.metadata["background_threshold"]
    assert expected > 0.5
    assert new.metadata["background_threshold"] == expected
    assert new.metadata["close_gaps"] is False
    moved = new.metadata["training_history"][-1].get("moved_decision")
    assert moved is not None  # all background: moved (training.seeding)
    assert moved == without_flag.metadata["training_history"][-1].get("moved_decision")
    for name, weights in without_flag.state_dict().items():
        assert torch.equal(new.state_dict()[name], weights), name
    carried = carried_threshold(starting.eval(), trained, IMAGES, STROKES, "cpu")
    assert trained.metadata["background_threshold"] == carried != 0.7


def test_the_calibration_functions_raise_cancelled_once_stopped():
    model = _new_model()
    with pytest.raises(Cancelled):
        stroke_share_threshold(model, IMAGES, STROKES, "cpu", stop=lambda: True)
    with pytest.raises(Cancelled):
        carried_threshold(_trained_model(), model, IMAGES, STROKES, "cpu", stop=lambda: True)

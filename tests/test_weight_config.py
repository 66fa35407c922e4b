"""WeightConfig refuses loss-weight settings that would make the weight map NaN or divide by 0."""

import math
import re

import numpy as np
import pytest

from napari_unet import WeightConfig
from napari_unet.training.weights import trained_weight_config, weight_map


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"sigma": 0}, "WeightConfig sigma must be a finite number of pixels > 0, got 0"),
        ({"sigma": -1.0}, "sigma must be a finite number of pixels > 0, got -1.0"),
        ({"sigma": math.nan}, "sigma must be a finite number of pixels > 0, got nan"),
        ({"sigma": math.inf}, "sigma must be a finite number of pixels > 0, got inf"),
        ({"sigma": "5"}, "sigma must be a finite number of pixels > 0, got '5'"),
        ({"sigma": None}, "sigma must be a finite number of pixels > 0, got None"),
        ({"sigma": True}, "sigma must be a finite number of pixels > 0, got True"),
        ({"w0": math.nan}, "WeightConfig w0 must be a finite number >= 0, got nan"),
        ({"w0": math.inf}, "w0 must be a finite number >= 0, got inf"),
        ({"w0": -0.5}, "w0 must be a finite number >= 0, got -0.5"),
        ({"w0": np.array([1.0, 2.0])}, "w0 must be a finite number >= 0"),
    ],
)
def test_invalid_weight_settings_are_refused(changes, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        WeightConfig(**changes)
    with pytest.raises(ValueError, match="WeightConfig"):
        WeightConfig().replace(**changes)


def test_invalid_weight_settings_from_a_checkpoint_are_refused():
    with pytest.raises(ValueError, match="sigma must be a finite number of pixels > 0, got 0"):
        WeightConfig.from_dict({"w0": 10, "sigma": 0})


@pytest.mark.parametrize(
    "w0, sigma", [(0, 5), (0.0, 1e-3), (10, 5), (np.float32(3), np.float64(2.5)), (1e6, 1e6)]
)
def test_valid_weight_settings_are_kept(w0, sigma):
    config = WeightConfig(w0=w0, sigma=sigma)
    assert (config.w0, config.sigma) == (w0, sigma)
    labels = np.ones((12, 12), np.uint8)
    labels[2:5, 2:5], labels[2:5, 6:9] = 2, 2
    assert np.isfinite(weight_map(labels, config)).all()


def test_a_recorded_invalid_weight_config_falls_back_to_an_earlier_run():
    """A checkpoint trained before sigma = 0 was refused still predicts its weight map."""
    good = {"w0": 3.0, "sigma": 2.0, "class_balance": False}
    history = [{"weight_config": good}, {"weight_config": {"w0": 10.0, "sigma": 0.0}}]
    assert trained_weight_config({"training_history": history}) == WeightConfig(**good)
    only_bad = {"training_history": [{"weight_config": {"w0": math.nan}}]}
    assert trained_weight_config(only_bad) == WeightConfig()

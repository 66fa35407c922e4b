"""WeightConfig refuses loss-weight settings that would make the weight map NaN or divide by 0."""

import math
import re

import numpy as np
import pytest

from helpers import as_trained, tiny_model
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


def test_class_balance_is_automatic_by_default():
    import numpy as np

    from napari_unet.training.weights import resolved_weight_config, weight_map

    assert WeightConfig().class_balance is None
    assert resolved_weight_config(None, trained=False).class_balance is True
    assert resolved_weight_config(None, trained=True).class_balance is False
    for explicit in (True, False):
        config = WeightConfig(class_balance=explicit)
        assert resolved_weight_config(config, trained=True).class_balance is explicit
        assert resolved_weight_config(config, trained=False).class_balance is explicit
    labels = np.ones((20, 20), np.uint8)
    labels[5:8, 5:8] = 2
    np.testing.assert_array_equal(
        weight_map(labels, WeightConfig()), weight_map(labels, WeightConfig(class_balance=True))
    )
    for bad in (1, "yes", 0.0):
        with pytest.raises(ValueError, match="class_balance must be True, False or None"):
            WeightConfig(class_balance=bad)


def test_finetune_records_the_class_balance_it_used():
    import numpy as np

    import napari_unet as nu

    image = np.random.default_rng(0).random((64, 64)).astype(np.float32)
    strokes = np.zeros((64, 64), np.uint8)
    strokes[10, 5:40], strokes[40, 10:50] = 1, 2
    config = nu.TrainConfig(seconds=None, iterations=2, device="cpu", patch_size=44, batch_size=1)
    model = tiny_model()
    nu.train(model, [image], [strokes], config)  # a first training: balanced
    assert model.info.trained_weight_config.class_balance is True
    nu.train(model, [image], [strokes], config)  # still learning: balanced again
    assert model.info.trained_weight_config.class_balance is True
    as_trained(model)
    nu.train(model, [image], [strokes], config)  # a fine-tune of a trained model: not
    assert model.info.trained_weight_config.class_balance is False
    nu.train(model, [image], [strokes], config, weights=WeightConfig(class_balance=True))
    assert model.info.trained_weight_config.class_balance is True


def test_train_command_class_balance_flags():
    from napari_unet.cli import build_parser

    parser = build_parser()
    base = ["train", "--images", "a.tif", "--labels", "b.tif", "--new", "--output", "o.safetensors"]
    assert parser.parse_args(base).class_balance is None
    assert parser.parse_args([*base, "--class-balance"]).class_balance is True
    assert parser.parse_args([*base, "--no-class-balance"]).class_balance is False
    with pytest.raises(SystemExit):
        parser.parse_args([*base, "--class-balance", "--no-class-balance"])

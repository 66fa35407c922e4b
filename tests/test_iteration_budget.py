"""A trained model's fine-tune stops after FINETUNE_ITERATIONS unless told otherwise."""

import numpy as np
import pytest

from helpers import as_trained, tiny_model
from napari_unet import TrainConfig
from napari_unet.config import FINETUNE_ITERATIONS
from napari_unet.training.loop import finetune
from napari_unet.training.schedule import with_iteration_budget


def _model(trained: bool):
    model = tiny_model()
    return as_trained(model) if trained else model


def _strokes(size=64):
    rng = np.random.default_rng(0)
    image = rng.normal(0, 1, (size, size)).astype(np.float32)
    annotation = np.zeros((size, size), np.uint8)
    annotation[10:14, 5:60], annotation[40:44, 5:60] = 1, 2
    image[40:44] += 3
    return image, annotation


@pytest.mark.parametrize(
    ("config", "trained", "expected"),
    [
        (TrainConfig(), True, FINETUNE_ITERATIONS),
        (TrainConfig(), False, None),
        (TrainConfig(iterations=7), True, 7),
        (TrainConfig(finetune_iterations=None), True, None),
        (TrainConfig(finetune_iterations=12), True, 12),
    ],
)
def test_the_iteration_budget_is_chosen_for_the_model(config, trained, expected):
    resolved = with_iteration_budget(config, _model(trained))
    assert resolved.iterations == expected
    assert resolved.seconds == config.seconds


def test_a_trained_model_stops_at_its_iteration_budget_before_the_time_budget():
    image, annotation = _strokes()
    model = _model(trained=True)
    config = TrainConfig(seconds=600, finetune_iterations=3, batch_size=1, seed=0)
    steps = [step.iteration for step in finetune(model, [image], [annotation], config)]
    assert steps[-1] == 3
    assert model.metadata["training_history"][-1]["iterations"] == 3


def test_a_new_model_is_not_capped_by_the_finetune_budget():
    image, annotation = _strokes()
    model = _model(trained=False)
    config = TrainConfig(seconds=None, iterations=5, finetune_iterations=2, batch_size=1)
    steps = [step.iteration for step in finetune(model, [image], [annotation], config)]
    assert steps[-1] == 5


@pytest.mark.parametrize("value", [0, -3])
def test_finetune_iterations_must_be_positive_or_none(value):
    with pytest.raises(ValueError, match="finetune_iterations must be positive"):
        TrainConfig(finetune_iterations=value)


def test_cli_train_defaults_and_no_iteration_budget():
    from napari_unet.cli import build_parser
    from napari_unet.cli.train import _train_config

    base = ["train", "--images", "a.tif", "--labels", "b.tif", "--model", "nuclei", "--output", "o"]
    default = _train_config(build_parser().parse_args(base))
    assert (default.seconds, default.iterations) == (60.0, None)
    assert default.finetune_iterations == FINETUNE_ITERATIONS
    unlimited = _train_config(build_parser().parse_args([*base, "--iterations", "0"]))
    assert (unlimited.seconds, unlimited.iterations, unlimited.finetune_iterations) == (
        60.0,
        None,
        None,
    )
    counted = _train_config(build_parser().parse_args([*base, "--iterations", "40"]))
    assert (counted.seconds, counted.iterations) == (None, 40)

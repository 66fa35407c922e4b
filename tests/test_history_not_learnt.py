"""A new model still at chance after a run is told to train further, also when it calls a
few pixels of the slice the other class (its loss is still that of a guess)."""

import math

import pytest

from helpers import tiny_model
from napari_unet.cli.train import _not_learnt_text
from napari_unet.config import TRAINED_ITERATIONS
from napari_unet.evaluation.review import ClassChanges
from napari_unet.training.history import CHANCE_LOSS_MARGIN, not_learnt_yet

TOTAL = 256 * 512
ONE_CLASS = ClassChanges(total=TOTAL, changed=0, gained={}, present={1: TOTAL})
ONE_PIXEL_FLIPPED = ClassChanges(
    total=TOTAL, changed=1, gained={2: 1}, present={1: TOTAL - 1, 2: 1}
)
BOTH = ClassChanges(total=TOTAL, changed=40000, gained={2: 40000}, present={1: 91072, 2: 40000})


def _model(kept_loss, runs=(50,), classes=2):
    model = tiny_model(n_classes=classes)
    history = [{"iterations": iterations} for iterations in runs]
    if kept_loss is not None:
        history[-1].update(kept_smoothed_loss=kept_loss, final_smoothed_loss=kept_loss)
    model.metadata["training_history"] = history
    return model


def test_a_new_model_at_chance_that_flips_a_few_pixels_has_not_learnt():
    # dsb2018 nuclei, seed 0, 50 iterations: 1 pixel of 131,072 called nucleus, loss 0.683
    assert not_learnt_yet(_model(0.68344), ONE_PIXEL_FLIPPED)
    assert not_learnt_yet(_model(0.70954), BOTH)  # a guess, whatever the shares
    assert not_learnt_yet(_model(0.68344), ONE_CLASS)


def test_a_new_model_that_has_learnt_is_not_flagged():
    # the same model after 80 iterations: loss 0.607, 31 % nucleus (IoU 0.57)
    assert not not_learnt_yet(_model(0.60718), BOTH)
    assert not not_learnt_yet(_model(0.60718), ONE_PIXEL_FLIPPED)
    assert not_learnt_yet(_model(0.60718), ONE_CLASS)  # all one class: as before
    assert not not_learnt_yet(_model(math.log(2) - CHANCE_LOSS_MARGIN - 1e-3), BOTH)


def test_only_a_model_still_learning_before_its_run_is_flagged():
    trained = _model(0.69, runs=(TRAINED_ITERATIONS, 50))  # a fine-tune
    assert not not_learnt_yet(trained, ONE_PIXEL_FLIPPED)
    assert not not_learnt_yet(trained, ONE_CLASS)
    assert not_learnt_yet(_model(0.69, runs=(40, 50)), ONE_PIXEL_FLIPPED)  # its second run


def test_without_a_recorded_loss_only_one_class_counts():
    assert not not_learnt_yet(_model(None), ONE_PIXEL_FLIPPED)
    assert not_learnt_yet(_model(None), ONE_CLASS)
    assert not not_learnt_yet(_model(float("nan")), ONE_PIXEL_FLIPPED)


@pytest.mark.parametrize("loss, flagged", [(1.09, True), (0.69, False)])
def test_chance_is_the_log_of_the_number_of_classes(loss, flagged):
    three = ClassChanges(total=30, changed=3, gained={3: 3}, present={1: 20, 2: 7, 3: 3})
    assert not_learnt_yet(_model(loss, classes=3), three) is flagged


def test_the_command_line_says_why():
    said = _not_learnt_text(_model(0.68344), ONE_PIXEL_FLIPPED, "nuclei.tif")
    assert said.startswith("the model's loss (0.683) is still about that of a guess (0.693)")
    assert said.endswith("train it further (--model with this output)")
    said = _not_learnt_text(_model(0.68344), ONE_CLASS, "nuclei.tif")
    assert said.startswith("the model still calls all of nuclei.tif one class: it has not")
    # 150 iterations and a loss no longer a guess's: trained, so a next run would fine-tune it
    said = _not_learnt_text(_model(0.5, runs=(150,)), ONE_CLASS, "nuclei.tif")
    assert said.endswith(
        "a next run would only fine-tune it: train a new model longer (--new --seconds)"
    )


def test_the_dock_says_why_when_the_model_at_chance_shows_two_classes():
    from types import SimpleNamespace

    from napari_unet._widgets._finetune_text import run_summary
    from napari_unet.training.history import TrainProgress

    progress = TrainProgress(iteration=50, loss=0.69, smoothed_loss=0.69, elapsed=12.0, fraction=1)
    request = SimpleNamespace(model=_model(0.68344), compare_plane=())
    said = run_summary(progress, request, ONE_PIXEL_FLIPPED, stopped=False)
    assert "Its training loss (0.683) is still about that of a guess (0.693)" in said
    assert "Press Start again to train it further" in said
    said = run_summary(
        progress, SimpleNamespace(model=_model(0.60718), compare_plane=()), BOTH, stopped=False
    )
    assert "guess" not in said and "not learnt" not in said

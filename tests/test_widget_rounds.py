"""Repeated fine-tunes on one annotation layer start again from the model they began with."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers import annotate, as_trained, run, tiny_model
from napari_unet._widgets import model_state
from napari_unet._widgets._finetune_request import NOTHING_NEW
from napari_unet.config import SCRATCH_LEARNING_RATE, TRAINED_ITERATIONS
from napari_unet.training import distillation

pytestmark = pytest.mark.gui


def _weights(model) -> dict[str, torch.Tensor]:
    return {name: value.detach().clone() for name, value in model.state_dict().items()}


def _same(first, second) -> bool:
    """Equal up to float rounding (multithreaded convolutions are not bit-reproducible)."""
    return all(torch.allclose(first[name], second[name], atol=1e-4) for name in first)


def _distance(first, second) -> float:
    """Largest absolute difference of two state dicts."""
    return max(float((first[name] - second[name]).abs().max()) for name in first)


def _as_trained(model):
    """``model`` with a training run in its history (as a bundled or saved model has)."""
    return as_trained(model)


def test_a_second_run_restarts_from_the_base_with_all_strokes(qtbot, dock):
    viewer, widget = dock
    state, finetune = model_state(viewer), widget.finetune
    _as_trained(state.model)
    annotate(viewer, widget)
    base = _weights(state.model)
    run(qtbot, finetune, finetune.start_finetune)
    first = _weights(state.model)
    assert not _same(first, base)
    state.repeat_of = None  # as after a run cut short: a repeat is not refused
    run(qtbot, finetune, finetune.start_finetune)
    second = _weights(state.model)
    # same strokes, same seed, started again from the base: the same result as run 1,
    # not run 1 trained further. With two CPU threads the convolutions' sums come in
    # another order from run to run, and 15 steps at lr 1e-2 carry that past 1e-4: the
    # two runs must be far closer to each other than run 1 is to the base
    assert _distance(second, first) < 0.05 * _distance(first, base)
    assert len(state.model.metadata["training_history"]) == 2  # the base's run and this one
    assert "Starting again" not in finetune.status.text()  # the final status replaced it
    # go back gives the result of the first run (the snapshot taken before the second)
    state.go_back()
    assert _same(_weights(state.model), first)


def test_a_new_models_later_runs_start_from_its_first_trained_run(qtbot, dock, monkeypatch):
    monkeypatch.setattr(distillation, "TRAINED_ITERATIONS", 15)  # the dock's runs: 15 each
    viewer, widget = dock
    state, finetune = model_state(viewer), widget.finetune
    annotate(viewer, widget)  # the dock's model was never trained
    run(qtbot, finetune, finetune.start_finetune)
    first = _weights(state.model)
    first_run = state.model.metadata["training_history"][0]
    run(qtbot, finetune, finetune.start_finetune)  # fine-tunes the first run's result
    second = _weights(state.model)
    assert not _same(second, first)
    assert len(state.model.metadata["training_history"]) == 2
    assert finetune.start_finetune() is None  # again from the first run's result: the same
    assert finetune.status.text() == NOTHING_NEW
    state.repeat_of = None  # as after a run cut short: a repeat is not refused
    run(qtbot, finetune, finetune.start_finetune)
    history = state.model.metadata["training_history"]
    assert len(history) == 2 and history[0] == first_run
    assert _same(_weights(state.model), second)


def test_a_complete_run_on_the_same_strokes_and_settings_is_not_repeated(qtbot, dock):
    viewer, widget = dock
    state, finetune = model_state(viewer), widget.finetune
    _as_trained(state.model)
    layer = annotate(viewer, widget)
    run(qtbot, finetune, finetune.start_finetune)
    first, history = _weights(state.model), len(state.history)
    assert finetune.start_finetune() is None  # it would make the same model
    assert finetune.status.text() == NOTHING_NEW and finetune.worker is None
    assert _same(_weights(state.model), first) and len(state.history) == history
    finetune.settings.iterations.value = 16  # other settings: another model
    run(qtbot, finetune, finetune.start_finetune)
    finetune.settings.iterations.value = 15
    run(qtbot, finetune, finetune.start_finetune)  # not the last run's settings
    assert finetune.start_finetune() is None
    layer.data[0, :3] = 1  # a new stroke: something to learn
    layer.refresh()
    run(qtbot, finetune, finetune.start_finetune)
    finetune.settings.from_base.value = False  # training the last result further differs
    run(qtbot, finetune, finetune.start_finetune)


def test_a_run_stopped_or_cut_short_may_be_repeated(qtbot, dock):
    viewer, widget = dock
    state, finetune = model_state(viewer), widget.finetune
    _as_trained(state.model)
    annotate(viewer, widget)
    finetune.settings.iterations.value = 10_000
    finetune.settings.seconds.value = 1  # the time budget ends it first
    run(qtbot, finetune, finetune.start_finetune)
    assert state.repeat_of is None
    run(qtbot, finetune, finetune.start_finetune)  # would train more: allowed


def test_a_new_model_still_learning_trains_on_as_a_new_one(qtbot, dock):
    """A first run too short to train it (fewer than TRAINED_ITERATIONS iterations) leaves
    the model still learning: each later run continues its training, as a new model's."""
    viewer, widget = dock
    state, finetune = model_state(viewer), widget.finetune
    finetune.settings.learning_rate.value = None  # auto: as chosen for the model
    annotate(viewer, widget)
    weights = []
    for _ in range(3):
        run(qtbot, finetune, finetune.start_finetune)
        weights.append(_weights(state.model))
    history = state.model.metadata["training_history"]
    assert [run["iterations"] for run in history] == [15, 15, 15]  # none undone
    assert not any(run["distilled"] for run in history)
    assert {run["train_config"]["learning_rate"] for run in history} == {SCRATCH_LEARNING_RATE}
    assert not _same(weights[2], weights[1]) and not _same(weights[1], weights[0])


def test_without_the_option_runs_train_the_last_result_further(qtbot, dock):
    viewer, widget = dock
    state, finetune = model_state(viewer), widget.finetune
    finetune.settings.from_base.value = False
    annotate(viewer, widget)
    base = _weights(state.model)
    run(qtbot, finetune, finetune.start_finetune)
    first = _weights(state.model)
    run(qtbot, finetune, finetune.start_finetune)
    assert not _same(_weights(state.model), first)
    # trained further: beyond the bound the restart from the base is held to above
    assert _distance(_weights(state.model), first) >= 0.05 * _distance(first, base)
    assert len(state.model.metadata["training_history"]) == 2


def test_after_go_back_the_restored_model_is_the_new_base(qtbot, dock):
    viewer, widget = dock
    state, finetune = model_state(viewer), widget.finetune
    annotate(viewer, widget)
    run(qtbot, finetune, finetune.start_finetune)
    state.go_back()  # the untrained model again: a new base
    restored = _weights(state.model)
    run(qtbot, finetune, finetune.start_finetune)
    trained = _weights(state.model)
    state.go_back()
    assert _same(_weights(state.model), restored)
    assert not _same(trained, restored)


def _start_and_stop(finetune):
    worker = finetune.start_finetune()
    finetune.stop()  # before the worker runs its first iteration
    return worker


def test_a_run_that_trains_nothing_keeps_the_last_result(qtbot, dock):
    """A restart resets the weights to the base before the worker starts; a run stopped
    (or failing) before its first iteration must put the last result back."""
    viewer, widget = dock
    state, finetune = model_state(viewer), widget.finetune
    _as_trained(state.model)
    layer = annotate(viewer, widget)
    base = _weights(state.model)
    run(qtbot, finetune, finetune.start_finetune)
    first = _weights(state.model)
    history = len(state.history)
    layer.data[0, :3] = 1  # a new stroke: not the complete run's strokes again
    layer.refresh()
    run(qtbot, finetune, lambda: _start_and_stop(finetune))
    assert "Stopped before the first iteration" in finetune.status.text()
    assert _same(_weights(state.model), first) and not _same(first, base)
    assert len(state.history) == history  # no snapshot left behind
    layer.data[0:3, 0:3] = 7  # a class the model does not have: refused before training
    layer.refresh()
    assert finetune.start_finetune() is None and finetune.worker is None
    said = finetune.status.text()
    assert said.startswith("“discs annotations” holds label 7 (9 px), but this model knows")
    assert "Erase those strokes" in said and "Failed" not in said
    assert _same(_weights(state.model), first) and len(state.history) == history


def test_the_model_says_what_it_was_trained_on_after_a_fine_tune(qtbot, dock):
    viewer, widget = dock
    state, finetune = model_state(viewer), widget.finetune
    assert state.model.metadata.get("description") in (None, "freshly initialised U-Net")
    annotate(viewer, widget)
    run(qtbot, finetune, finetune.start_finetune)
    assert state.model.metadata["description"] == "U-Net trained from scratch on discs"
    run(qtbot, finetune, finetune.start_finetune)  # again on the same image: not repeated
    assert state.model.metadata["description"] == "U-Net trained from scratch on discs"
    assert "trained from scratch on discs" in widget.model.info.text()


def test_the_option_is_disabled_while_the_model_is_still_learning(qtbot, dock, monkeypatch):
    """A model still learning ignores "Start each run from the model you began with"
    (test_a_new_model_still_learning_trains_on_as_a_new_one): the option says so."""
    monkeypatch.setattr(distillation, "TRAINED_ITERATIONS", 15)  # one dock run trains it
    viewer, widget = dock
    finetune = widget.finetune
    option = finetune.settings.from_base
    assert not option.enabled and "until it has learnt" in option.tooltip
    assert f"or {TRAINED_ITERATIONS} in all" in option.tooltip
    widget.model.use_model(as_trained(tiny_model(seed=1)), "trained")
    assert option.enabled and "drifts" in option.tooltip
    widget.model.use_model(tiny_model(seed=2), "new")
    assert not option.enabled
    annotate(viewer, widget)
    run(qtbot, finetune, finetune.start_finetune)  # 15 iterations: trained now
    assert option.enabled and option.value
    model_state(viewer).go_back()  # the new model again
    assert not option.enabled


def _lively(qtbot, viewer, widget):
    """The dock's model, as trained, with a mask of both classes, predicted."""
    from napari_unet import predict as predict_image

    model = _as_trained(model_state(viewer).model)
    with torch.no_grad():  # a model whose mask holds both classes (a fresh one: background)
        model.head.weight *= 200
        model.head.bias.zero_()
        probabilities = predict_image(np.asarray(viewer.layers["discs"].data), model)
        model.head.bias[1] -= float(np.median(np.log(probabilities[1] / probabilities[0])))
    run(qtbot, widget.predict, widget.predict.run_prediction)
    return viewer.layers["discs mask"]


def test_an_uncorrected_copy_of_the_models_own_mask_is_refused(qtbot, dock):
    """Start from the prediction, then Start with nothing corrected: a run would teach the
    model its own mask (and drift elsewhere). Removing the mask changes nothing; one
    correction and it trains."""
    from napari_unet._widgets._finetune_request import OWN_MASK

    viewer, widget = dock
    state, finetune = model_state(viewer), widget.finetune
    mask = _lively(qtbot, viewer, widget)
    assert widget.annotate.copy_prediction() > 0
    layer = widget.annotate.annotation_layer
    background = tuple(np.argwhere(np.asarray(mask.data) == 1)[0])
    viewer.layers.remove(mask)
    assert finetune.start_finetune() is None
    assert finetune.status.text() == OWN_MASK and finetune.worker is None
    layer.data[background] = 2  # the user says this pixel is an object
    run(qtbot, finetune, finetune.start_finetune)
    assert len(state.model.metadata["training_history"]) == 2


def test_a_copy_of_a_mask_corrected_by_hand_is_not_refused(qtbot, dock):
    viewer, widget = dock
    mask = _lively(qtbot, viewer, widget)
    background = tuple(np.argwhere(np.asarray(mask.data) == 1)[0])
    mask.data_setitem(tuple(np.array([at]) for at in background), np.array([2], np.uint8))
    assert widget.annotate.copy_prediction() > 0  # holds the correction made on the mask
    run(qtbot, widget.finetune, widget.finetune.start_finetune)
    assert len(model_state(viewer).model.metadata["training_history"]) == 2

"""Repeated fine-tunes on one annotation layer start again from the model they began with."""

from __future__ import annotations

import pytest
import torch

from napari_unet._widgets import model_state
from test_widgets import annotate, dock, run  # noqa: F401  (fixture)

pytestmark = pytest.mark.gui


def _weights(model) -> dict[str, torch.Tensor]:
    return {name: value.detach().clone() for name, value in model.state_dict().items()}


def _same(first, second) -> bool:
    """Equal up to float rounding (multithreaded convolutions are not bit-reproducible)."""
    return all(torch.allclose(first[name], second[name], atol=1e-4) for name in first)


def _as_trained(model):
    """``model`` with a training run in its history (as a bundled or saved model has)."""
    model.metadata["training_history"] = [{"iterations": 1}]
    return model


def test_a_second_run_restarts_from_the_base_with_all_strokes(qtbot, dock):
    viewer, widget = dock
    state, finetune = model_state(viewer), widget.finetune
    _as_trained(state.model)
    annotate(viewer, widget)
    base = _weights(state.model)
    run(qtbot, finetune, finetune.start_finetune)
    first = _weights(state.model)
    assert not _same(first, base)
    run(qtbot, finetune, finetune.start_finetune)
    second = _weights(state.model)
    # same strokes, same seed, started again from the base: the same result as run 1,
    # not run 1 trained further
    assert _same(second, first)
    assert len(state.model.metadata["training_history"]) == 2  # the base's run and this one
    assert "Starting again" not in finetune.status.text()  # the final status replaced it
    # go back gives the result of the first run (the snapshot taken before the second)
    state.go_back()
    assert _same(_weights(state.model), first)


def test_a_new_models_later_runs_start_from_its_first_trained_run(qtbot, dock):
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
    run(qtbot, finetune, finetune.start_finetune)  # again from the first run's result
    history = state.model.metadata["training_history"]
    assert len(history) == 2 and history[0] == first_run
    assert _same(_weights(state.model), second)


def test_without_the_option_runs_train_the_last_result_further(qtbot, dock):
    viewer, widget = dock
    state, finetune = model_state(viewer), widget.finetune
    finetune.settings.from_base.value = False
    annotate(viewer, widget)
    run(qtbot, finetune, finetune.start_finetune)
    first = _weights(state.model)
    run(qtbot, finetune, finetune.start_finetune)
    assert not _same(_weights(state.model), first)
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

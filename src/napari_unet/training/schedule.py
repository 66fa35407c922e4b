"""The learning rate of a fine-tune: chosen for the model, then changed over the budget.

A :class:`~napari_unet.config.TrainConfig` whose ``learning_rate`` is None gets
:data:`~napari_unet.config.SCRATCH_LEARNING_RATE` for a model that was never trained and
:data:`~napari_unet.config.FINETUNE_LEARNING_RATE` for one that was
(:func:`with_learning_rate`); :func:`learning_rate_at` then follows ``lr_schedule`` from
that rate as the budget is used. :func:`~napari_unet.training.loop.finetune` calls both, and
:func:`with_iteration_budget` and :func:`learning_floor` for when a run ends.
"""

from __future__ import annotations

import math

import torch

from ..config import (
    FINETUNE_LEARNING_RATE,
    SCRATCH_LEARNING_RATE,
    TRAINED_ITERATIONS,
    TrainConfig,
)
from ..core.model import UNet
from .distillation import has_been_trained


def with_learning_rate(config: TrainConfig, model: UNet) -> TrainConfig:
    """``config`` with its automatic learning rate (None) chosen for ``model``."""
    if config.learning_rate is not None:
        return config
    trained = has_been_trained(model)
    return config.replace(
        learning_rate=FINETUNE_LEARNING_RATE if trained else SCRATCH_LEARNING_RATE
    )


def with_iteration_budget(config: TrainConfig, model: UNet) -> TrainConfig:
    """``config`` with ``finetune_iterations`` as its iteration budget for a trained ``model``.

    Only when ``config.iterations`` is None; a model that was never trained keeps its
    budget as given.
    """
    if config.iterations is not None or config.finetune_iterations is None:
        return config
    if not has_been_trained(model):
        return config
    return config.replace(iterations=config.finetune_iterations)


def learning_floor(config: TrainConfig, model: UNet) -> int:
    """Iterations a run must reach before its time budget may end it: what ``model`` still
    lacks of :data:`~napari_unet.config.TRAINED_ITERATIONS` if it is still learning and
    ``config`` has a time budget and no iteration budget; 0 otherwise.

    Such a run goes on past ``config.seconds`` until it has done these iterations, but not
    past :data:`~napari_unet.config.LEARNING_FLOOR_CAP` times ``config.seconds``.
    """
    if config.iterations is not None or not config.seconds or has_been_trained(model):
        return 0
    history = model.info.training_history
    done = sum(run.iterations for run in history if isinstance(run.iterations, int))
    return max(0, TRAINED_ITERATIONS - done)


def initial_learning_rate(config: TrainConfig) -> float:
    """``config.learning_rate``, once :func:`with_learning_rate` has chosen it for the model.

    Raises
    ------
    ValueError
        The automatic learning rate (None), not chosen yet.
    """
    if config.learning_rate is None:
        raise ValueError("the automatic learning rate (None) is chosen by train() first")
    return config.learning_rate


def learning_rate_at(config: TrainConfig, fraction: float) -> float:
    """The learning rate of ``config.lr_schedule`` once ``fraction`` of the budget is used."""
    rate = initial_learning_rate(config)
    if config.lr_schedule == "linear":
        return rate * (1.0 - fraction)
    if config.lr_schedule == "cosine":
        return rate * 0.5 * (1.0 + math.cos(math.pi * fraction))
    return rate


def set_learning_rate(optimizer: torch.optim.Optimizer, learning_rate: float) -> None:
    """Give every parameter group of ``optimizer`` this learning rate."""
    for group in optimizer.param_groups:
        group["lr"] = learning_rate

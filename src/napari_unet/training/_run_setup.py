"""What one :func:`~napari_unet.training.loop.finetune` run holds, and the checks and
copies made before it starts.

Used by :mod:`napari_unet.training.loop` only; the loop itself (and every name that
tests and benchmarks patch on it) stays there.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch

from ..config import AugmentConfig, TrainConfig, WeightConfig
from ..core.model import UNet
from .calibration import sets_threshold
from .distillation import Teacher, has_been_trained
from .run_state import BestWeights, LoopState
from .sampling import PatchSampler, TrainingImage
from .schedule import with_iteration_budget, with_learning_rate
from .weights import resolved_weight_config

__all__ = ["Run", "resolved_options", "starting_copy", "training_teacher"]


@dataclass
class Run:
    """Everything a fine-tuning run keeps from its start to its end.

    Attributes
    ----------
    config, augment, weights : TrainConfig, AugmentConfig, WeightConfig
        The options as resolved for the model (:func:`resolved_options`).
    was_trained : bool
        Whether the model had been trained before this run.
    data : list of TrainingImage
        The normalised images with their annotations and loss weights.
    device : torch.device
    teacher : Teacher or None
        The frozen starting model distilled from (:func:`training_teacher`).
    starting : UNet or None
        The model before training, when its background threshold is carried over
        (:func:`starting_copy`).
    sampler, optimizer, scaler
        The patch sampler, the Adam optimiser and the (AMP) gradient scaler.
    best : BestWeights
    state : LoopState
    """

    config: TrainConfig
    augment: AugmentConfig
    weights: WeightConfig
    was_trained: bool
    data: list[TrainingImage]
    device: torch.device
    teacher: Teacher | None
    starting: UNet | None
    sampler: PatchSampler
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    best: BestWeights
    state: LoopState


def resolved_options(
    model: UNet,
    config: TrainConfig | None,
    augment: AugmentConfig | None,
    weights: WeightConfig | None,
    report_every: int,
) -> tuple[TrainConfig, AugmentConfig, WeightConfig, bool]:
    """The options a run on ``model`` trains with, and whether the model was trained.

    The config gets the model's learning rate and iteration budget when it names none,
    the weights the configuration for a trained or a new model.

    Returns
    -------
    config, augment, weights, was_trained

    Raises
    ------
    ValueError
        No budget at all (neither seconds nor iterations), or ``report_every`` < 1.
    """
    config = with_iteration_budget(with_learning_rate(config or TrainConfig(), model), model)
    augment = augment or AugmentConfig()
    was_trained = has_been_trained(model)
    weights = resolved_weight_config(weights, was_trained)
    if config.seconds is None and config.iterations is None:
        raise ValueError("give a time budget (seconds) or an iteration count")
    if report_every < 1:
        raise ValueError(f"report_every must be >= 1, got {report_every}")
    return config, augment, weights, was_trained


def training_teacher(model: UNet, config: TrainConfig, device) -> Teacher | None:
    """A frozen copy of a trained model to distil from, or None (off, or nothing to keep)."""
    if config.distillation <= 0 or not has_been_trained(model):
        return None
    return Teacher(model.to(device))


def starting_copy(model: UNet, teacher: Teacher | None) -> UNet | None:
    """The model before training, if its background threshold must be carried over."""
    if not sets_threshold(model):  # called for trained models only
        return None
    return teacher.model if teacher is not None else copy.deepcopy(model).eval()

"""Keeping what a trained model knew while it learns from a few strokes.

Strokes say nothing about the pixels between them. Trained on strokes alone, a
model drifts there (nuclei swell, touching objects merge: BENCHMARKS.md, the
annotation loop). During fine-tuning a frozen copy of the starting model (the
*teacher*) predicts every training patch, and on unpainted pixels the model is
pulled towards the teacher's probabilities (knowledge distillation, "learning
without forgetting"). Near a stroke
that contradicts the teacher, the teacher is known to be wrong, so its pixels
within ``margin`` of such a stroke are left to the strokes alone.

The teacher's separations matter most: a gap of one or two background pixels
between touching objects decides whether they stay two objects, and it is what
drifts first. :func:`teacher_border_weights` weights those pixels by the
paper's border term computed on the teacher's own objects.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from scipy import ndimage
from torch.nn import functional as F

from .._train_config import LEARNT_ITERATIONS, TRAINED_ITERATIONS
from ..core.model import UNet
from ..core.postprocess import prediction_mask
from .weights import border_term

__all__ = [
    "CHANCE_LOSS_MARGIN",
    "Teacher",
    "distillation_loss",
    "distillation_mask",
    "has_been_trained",
    "learning_before_last_run",
    "run_at_chance",
    "sharpened",
    "still_learning",
    "teacher_border_weights",
]


#: A new model whose kept weights' smoothed training loss is at least ln(n_classes) less
#: this (0.673 for two classes) is still at chance. New models (``NEW_MODEL_CONFIG``) on
#: dsb2018 nuclei (256 x 512, 18 % nucleus) with simulated scribbles, seeds 0-3: after
#: 5-50 iterations losses 0.683-0.714 (seed 3 through 120), and three of them called the
#: image one class but for 1, 7 and 2,500 pixels (IoU <= 0.1); 0.676 at 50-60
#: iterations (nucleus IoU 0.33-0.43, every p(background) within 0.06 of 0.5);
#: 0.607-0.658 at 60-80 iterations (IoU 0.49-0.64); 0.41-0.53 at 100-120 (IoU 0.68-0.78).
CHANCE_LOSS_MARGIN = 0.02


def has_been_trained(model: UNet) -> bool:
    """True if ``model`` has knowledge worth keeping: not :func:`still_learning` by the
    training runs in its history.

    A run that records no iteration count (an imported history) counts as enough.
    """
    history = getattr(model, "metadata", {}).get("training_history") or []
    return not still_learning(history, _n_classes(model))


def learning_before_last_run(model: UNet) -> bool:
    """Whether ``model`` was still learning before its last recorded run (so that run
    trained it as a new model's): :func:`still_learning` of the runs before it."""
    history = model.metadata.get("training_history") or []
    return still_learning(history[:-1], _n_classes(model))


def still_learning(runs: Sequence[Any], n_classes: int = 2) -> bool:
    """Whether training runs (``training_history`` records) leave a model still learning:
    no run; fewer than :data:`~napari_unet.config.TRAINED_ITERATIONS` in all, unless
    :data:`~napari_unet.config.LEARNT_ITERATIONS` or more and the last run's kept loss
    is not a guess's (:func:`run_at_chance`). A run that records no iteration count
    counts as enough."""
    total = 0
    for run in runs:
        iterations = run.get("iterations") if isinstance(run, dict) else None
        if not isinstance(iterations, int):
            return False
        total += iterations
    if total >= TRAINED_ITERATIONS:
        return False
    return total < LEARNT_ITERATIONS or run_at_chance(runs[-1], n_classes)


def run_at_chance(run: dict[str, Any], n_classes: int) -> bool:
    """Whether a run's kept smoothed loss (its final one when it kept none) is within
    :data:`CHANCE_LOSS_MARGIN` of ln(``n_classes``) or above: a guess's. False when it
    recorded no finite loss."""
    loss = run.get("kept_smoothed_loss")
    loss = run.get("final_smoothed_loss") if loss is None else loss
    if not isinstance(loss, int | float) or not math.isfinite(loss):
        return False
    return loss >= math.log(n_classes) - CHANCE_LOSS_MARGIN


def _n_classes(model: Any) -> int:
    return int(getattr(getattr(model, "config", None), "n_classes", 2))


class Teacher:
    """A frozen copy of a model, predicting class probabilities for training batches.

    Parameters
    ----------
    model : UNet
        Copied (weights and all) at construction; later changes to ``model`` do
        not reach the teacher.
    """

    def __init__(self, model: UNet) -> None:
        self.model = copy.deepcopy(model).eval()
        for parameter in self.model.parameters():
            parameter.requires_grad_(False)

    @torch.no_grad()
    def probabilities(self, inputs: torch.Tensor) -> torch.Tensor:
        """(N, C, O, O) float32 softmax of the teacher for (N, C_in, S, S) ``inputs``."""
        return torch.softmax(self.model(inputs).float(), dim=1)


def distillation_mask(
    teacher_probabilities: torch.Tensor, labels: torch.Tensor, margin: int
) -> torch.Tensor:
    """Per-pixel weight of the distillation term.

    Parameters
    ----------
    teacher_probabilities : (N, C, Y, X) float tensor
    labels : (N, Y, X) int tensor, 0 = unlabelled, k = class index k - 1
    margin : int
        Pixels within this (chessboard) distance of a painted pixel whose label
        differs from the teacher's most probable class get weight 0.

    Returns
    -------
    (N, Y, X) float tensor
        0 on painted pixels and near contradicting strokes, 1 elsewhere. Not
        weighted by the teacher's confidence: its least confident pixels are the
        thin gaps between touching objects, the ones most worth keeping
        (BENCHMARKS.md, annotation loop).
    """
    top_class = teacher_probabilities.argmax(dim=1)
    contradicted = (labels > 0) & (labels != top_class + 1)
    if margin > 0 and bool(contradicted.any()):
        contradicted = (
            F.max_pool2d(contradicted[:, None].float(), 2 * margin + 1, stride=1, padding=margin)[
                :, 0
            ]
            > 0
        )
    return ((labels == 0) & ~contradicted).float()


def teacher_border_weights(
    teacher_probabilities: torch.Tensor, w0: float, sigma: float = 5.0, close_gaps: bool = True
) -> torch.Tensor:
    """``1 + w0 * exp(-(d1 + d2)**2 / (2 sigma**2))`` on the teacher's background.

    The paper's border term, with ``d1``, ``d2`` the distances to the nearest and
    second nearest of the teacher's objects (connected components of each
    foreground class of the mask Predict would show for it: the most probable class
    with gaps in boundaries closed, :func:`~napari_unet.core.postprocess.prediction_mask`),
    so the background pixels that separate the teacher's touching objects weigh up to
    ``1 + w0``, also across a faint spot of its boundary (ISBI loop benchmark: Rand error
    no worse than the starting model in 12/12 rounds against 9/12 with the plain most
    probable class; BENCHMARKS.md).

    Parameters
    ----------
    teacher_probabilities : (N, C, Y, X) float tensor
    w0, sigma : float
        Amplitude and width (pixels) of the border term; ``w0 = 0`` gives ones.
    close_gaps : bool
        Close the gaps as Predict does for the teacher (``model.info.close_gaps``);
        False: its objects are those of the most probable class.

    Returns
    -------
    (N, Y, X) float32 tensor on the device of ``teacher_probabilities``.
    """
    probabilities = teacher_probabilities.float().cpu().numpy()
    weights = np.ones((probabilities.shape[0], *probabilities.shape[2:]), np.float32)
    if w0 <= 0:
        return torch.from_numpy(weights).to(teacher_probabilities.device)
    for index, patch in enumerate(probabilities):
        classes = prediction_mask(patch, close_boundaries=close_gaps, fill_holes=False) - 1
        objects = np.zeros(classes.shape, np.int32)
        for value in np.unique(classes[classes > 0]):
            labelled, _ = ndimage.label(classes == value)
            objects[labelled > 0] = labelled[labelled > 0] + objects.max()
        weights[index] += border_term(objects, w0, sigma, mask=classes == 0)
    return torch.from_numpy(weights).to(teacher_probabilities.device)


def sharpened(probabilities: torch.Tensor, temperature: float) -> torch.Tensor:
    """Probabilities raised to ``1 / temperature`` and renormalised over classes (dim 1).

    ``temperature = 1`` returns the input; below 1 the teacher's most probable
    class gains, so a pixel it calls background at 0.6 (a thin gap between
    touching objects) becomes a firm target instead of one the student may
    cross at little cost; towards 0 it approaches the teacher's hard labels.
    """
    if temperature == 1:
        return probabilities
    logits = probabilities.clamp(min=1e-8).log() / temperature
    return torch.softmax(logits, dim=1)


def distillation_loss(
    logits: torch.Tensor, teacher_probabilities: torch.Tensor, weights: torch.Tensor
) -> torch.Tensor:
    """Weighted mean KL divergence from the teacher's to the model's probabilities.

    Parameters
    ----------
    logits : (N, C, Y, X) float tensor, the model's output
    teacher_probabilities : (N, C, Y, X) float tensor
    weights : (N, Y, X) float tensor, from :func:`distillation_mask`

    Returns
    -------
    torch.Tensor
        ``sum(w * KL) / sum(w)``, 0 when every weight is 0.
    """
    log_student = F.log_softmax(logits.float(), dim=1)
    log_teacher = teacher_probabilities.clamp(min=1e-8).log()
    per_pixel = (teacher_probabilities * (log_teacher - log_student)).sum(dim=1)
    return (weights * per_pixel).sum() / weights.sum().clamp(min=1e-8)

"""What a training run reports while it runs and records in the model when it ends.

:class:`TrainProgress` is what :func:`~napari_unet.training.loop.finetune` yields;
:func:`record_run` appends the finished run to ``model.metadata["training_history"]``,
which checkpoints store and the Model widget and ``napari-unet info`` show (typed:
:class:`~napari_unet.core.metadata.TrainingRun`, in ``model.info.training_history``).
"""

from __future__ import annotations

import datetime
import math
from dataclasses import dataclass, field

import numpy as np

from ..core.contrast import training_skewness
from ..core.metadata import TrainingRun
from .distillation import CHANCE_LOSS_MARGIN, learning_before_last_run, run_at_chance
from .sampling import annotated_pixels

__all__ = [
    "CHANCE_LOSS_MARGIN",
    "TrainProgress",
    "chance_loss",
    "guess_loss_text",
    "last_run_loss",
    "loss_at_chance",
    "not_learnt_yet",
    "note_on_last_run",
    "record_run",
]


@dataclass
class TrainProgress:
    """One report from :func:`finetune`.

    Attributes
    ----------
    iteration : int
        Iterations done.
    loss, smoothed_loss : float
        Last batch's loss and its moving average
        (:data:`~napari_unet.training.run_state.LOSS_SMOOTHING`).
    elapsed : float
        Seconds since training started.
    fraction : float
        Share of the budget (time or iterations) used, in [0, 1].
    learning_rate : float
        Learning rate of the last iteration (see ``TrainConfig.lr_schedule``).
    preview : numpy.ndarray or None
        (n_classes, Y, X) probabilities of the preview image, when one was due.
    history : list of (int, float)
        ``(iteration, loss)`` of every iteration so far. One list shared by all
        the reports of a run and growing with it (copy it to keep a snapshot).
    """

    iteration: int
    loss: float
    smoothed_loss: float
    elapsed: float
    fraction: float
    learning_rate: float = math.nan
    preview: np.ndarray | None = None
    history: list[tuple[int, float]] = field(default_factory=list)


def record_run(model, data, state, best, configs, distilled: bool) -> None:
    """Append a finished run (its budget, kept weights, data and options) to the model's history.

    The starting model's ``source`` (a bundled name) becomes its ``parent``.
    """
    if state.iteration == 0:
        return
    config, augment, weights = configs
    run = TrainingRun(
        date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        iterations=state.iteration,
        seconds=round(state.elapsed, 2),
        bn_recalibration_passes=state.recalibrated,
        final_smoothed_loss=round(state.smoothed, 5),
        kept_weights_iteration=best.iteration,
        kept_smoothed_loss=round(best.loss, 5),
        distilled=distilled,
        annotated_pixels={str(k): v for k, v in annotated_pixels(data).items()},
        images=tuple(tuple(item.image.shape) for item in data),
        image_skewness=round(training_skewness(item.image for item in data), 3),
        train_config=config.to_dict(),
        augment_config=augment.to_dict(),
        weight_config=weights.to_dict(),
    )
    metadata = model.metadata
    if metadata.get("source"):
        metadata["parent"] = metadata.pop("source")
    metadata["training_history"] = [*metadata.get("training_history", []), run.to_dict()]


def not_learnt_yet(model, changes) -> bool:
    """Whether the last run trained ``model`` as a new model (it was still learning:
    :func:`~napari_unet.training.distillation.learning_before_last_run`) and left it
    at chance: calling every compared pixel one class (``changes``: a
    :class:`~napari_unet.evaluation.review.ClassChanges` with its ``present`` classes;
    its strokes held two), or with the training loss of a guess
    (:func:`loss_at_chance`), however few pixels it calls another class.

    Callers saying why can tell the two apart by ``len(changes.present) == 1``.
    """
    if not learning_before_last_run(model):
        return False
    return len(changes.present) == 1 or loss_at_chance(model)


def loss_at_chance(model) -> bool:
    """Whether the weights ``model`` kept in its last recorded run had a smoothed training
    loss (:func:`last_run_loss`) within :data:`CHANCE_LOSS_MARGIN` of ln(n_classes) or
    above it: the loss of a guess (every class equally likely, whatever the loss
    weights); False when the run recorded no loss
    (:func:`~napari_unet.training.distillation.run_at_chance` of that run)."""
    history = model.metadata.get("training_history") or []
    return bool(history) and run_at_chance(history[-1], model.config.n_classes)


def last_run_loss(model) -> float | None:
    """The smoothed training loss of the weights ``model`` kept in its last recorded run
    (its final one when it recorded no kept one); None when it has none (or not finite)."""
    history = model.info.training_history
    if not history:
        return None
    run = history[-1]
    loss = run.final_smoothed_loss if run.kept_smoothed_loss is None else run.kept_smoothed_loss
    return float(loss) if loss is not None and math.isfinite(loss) else None


def cut_short(model) -> tuple[int, int] | None:
    """``(iterations, budget)`` of the last recorded run when it ended before its iteration
    budget (its time budget, or a stop, ended it first); None otherwise or without one."""
    history = model.info.training_history
    if not history:
        return None
    budget = (history[-1].train_config or {}).get("iterations")
    done = history[-1].iterations
    if not isinstance(budget, int) or not isinstance(done, int) or done >= budget:
        return None
    return done, budget


def guess_loss_text(model) -> str:
    """How the last run's loss compares with a guess's, for messages: "loss (0.683) is
    still about that of a guess (0.693)" (the loss from :func:`last_run_loss`)."""
    return (
        f"loss ({last_run_loss(model):.3f}) is still about that of a guess "
        f"({chance_loss(model):.3f})"
    )


def chance_loss(model) -> float:
    """ln(n_classes): the cross-entropy of a model that calls every class equally likely."""
    return math.log(model.config.n_classes)


def note_on_last_run(model, **values) -> bool:
    """Add ``values`` (e.g. ``image_layer``, a :class:`TrainingRun` field) to the model's
    latest recorded run; False, changing nothing, when it has none."""
    history = model.metadata.get("training_history")
    if not history:
        return False
    history[-1].update(TrainingRun(**values).to_dict())
    return True

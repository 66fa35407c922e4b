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

from ..core.metadata import TrainingRun
from .distillation import learning_before_last_run
from .sampling import annotated_pixels

__all__ = ["TrainProgress", "not_learnt_yet", "note_on_last_run", "record_run"]


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
    calling every compared pixel one class (``changes``: a
    :class:`~napari_unet.evaluation.review.ClassChanges` with its ``present`` classes);
    its strokes held two, so it has not learnt to tell them apart yet."""
    return len(changes.present) == 1 and learning_before_last_run(model)


def note_on_last_run(model, **values) -> bool:
    """Add ``values`` (e.g. ``image_layer``, a :class:`TrainingRun` field) to the model's
    latest recorded run; False, changing nothing, when it has none."""
    history = model.metadata.get("training_history")
    if not history:
        return False
    history[-1].update(TrainingRun(**values).to_dict())
    return True

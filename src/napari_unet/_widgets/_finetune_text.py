"""What the Fine-tune section says: its starting and progress lines, its summary (the
refusals before a run are in :mod:`._stroke_refusals`)."""

from __future__ import annotations

from typing import Any

from qtpy.QtWidgets import QProgressBar

from .._words import counted, percent
from ..config import LEARNING_FLOOR_CAP, TRAINED_ITERATIONS
from ..evaluation.review import ClassChanges, class_names, with_strokes
from ..training.distillation import has_been_trained, learning_before_last_run
from ..training.history import (
    cut_short,
    guess_loss_text,
    last_run_loss,
    loss_at_chance,
    not_learnt_yet,
)
from ._finetune_job import FinetuneUpdate, TrainingRequest
from ._geometry import ImageGeometry
from ._state import run_words


def late_strokes_words(pixels: int) -> str:
    """The status line's sentence on ``pixels`` painted (or erased) during a run, which
    it did not train on; "" for none."""
    if not pixels:
        return ""
    return (
        f" {counted(pixels, 'pixel')} of strokes changed during the run were not part of "
        "it: press Start to train on them too."
    )


def run_summary(
    progress: Any,
    request: TrainingRequest | None,
    changes: ClassChanges | None,
    stopped: bool,
    skipped: bool = False,
    late: int = 0,
) -> str:
    """The status line after a run that trained: how it ended, what changed, what to do.

    Parameters
    ----------
    progress : napari_unet.training.loop.TrainProgress
        The run's last progress.
    request : TrainingRequest or None
        What the run trained on.
    changes : ClassChanges or None
        How the slice compared changed class (None: not compared).
    stopped : bool
        Whether the user stopped the run.
    skipped : bool
        Whether Stop was pressed twice, skipping the comparison of the slice in view.
    late : int
        Pixels of strokes changed while the run went on (:func:`late_strokes_words`).

    Returns
    -------
    str
    """
    ended = "Stopped after" if stopped else "Done:"
    text = f"{ended} {counted(progress.iteration, 'iteration')} in {progress.elapsed:.0f} s."
    late_words = late_strokes_words(late)
    kept = f" The model keeps its best weights (smoothed loss {kept_loss(progress, request):.3g})."
    if skipped and changes is None and request is not None and request.compare_plane is not None:
        text += f" {SKIPPED}"
    if changes is not None and request is not None:
        text += _changes_text(request, changes)
        if not_learnt_yet(request.model, changes):  # no Go back prompt: before was a guess too
            names = class_names(request.model)
            return text + kept + _not_learnt_text(request.model, changes, names) + late_words
    text += kept
    if request is not None:
        text += _model_after_run_text(progress, request.model, stopped)
    return text + late_words + GO_BACK_PROMPT


def _changes_text(request: TrainingRequest, changes: ClassChanges) -> str:
    """What the run changed on the compared plane: how many of its painted pixels the
    model's most probable class matches now (and before), and how many pixels changed
    class; on a slice without strokes, where they are."""
    plane = request.compare_plane
    where = f"slice {', '.join(map(str, plane))} (in view when the run started)" if plane else ""
    model, names = request.model, class_names(request.model)
    first_run = len(model.info.training_history) == 1  # before: random weights
    level = model.info.background_threshold  # said by threshold_text for a learning model
    threshold = None if learning_before_last_run(model) else (names.get(1, "background"), level)
    changed = changes.describe_shares(names) if first_run else changes.describe(names)
    said = with_strokes(changed, changes.strokes, first_run=first_run, threshold=threshold)
    if plane and changes.strokes is None and plane not in request.planes:
        painted = "; ".join(", ".join(map(str, other)) for other in request.planes[:3])
        more = ", …" if len(request.planes) > 3 else ""
        slices = "slice" if len(request.planes) == 1 else "slices"
        said += (
            f" (no strokes there: they are on {slices} {painted}{more}; have one of those in "
            "view at Start to see how the model does on them)"
        )
    return f" On {where or 'the image'}, {said}."


def _model_after_run_text(progress: Any, model: Any, stopped: bool) -> str:
    """The part of :func:`run_summary` about the trained ``model``: its threshold, whether
    the run was cut short, and whether it is still learning or has learnt enough now."""
    text = threshold_text(model) + cut_short_text(progress, model, stopped)
    if not has_been_trained(model):
        text += f" Still learning ({_so_far(model)}): the next run continues where this one ended."
    elif learning_before_last_run(model):  # this run took it past the mark
        text += (
            f" It has learnt enough now ({_total(model)} iterations in all): the "
            "next runs fine-tune it, keeping what it predicts where you did not paint."
        )
    return text


def _not_learnt_text(model: Any, changes: ClassChanges, names: dict[int, str]) -> str:
    """Why a new model has not learnt yet (:func:`~napari_unet.training.history.not_learnt_yet`)
    and what to do; no Go back prompt (the button stays): the model before was a guess too."""
    if len(changes.present) == 1:
        (only,) = changes.present
        why = f" The model still calls all of it {names.get(only, f'class {only}')}:"
    else:  # its training loss is still a guess's (training.history.loss_at_chance)
        why = f" Its training {guess_loss_text(model)}:"
    return f"{why} it has not learnt to tell the classes apart yet. {_next_step(model)}"


SKIPPED = "(Comparison with the model before skipped.)"
"""Where the status line says what a run changed, when Stop was pressed twice."""


def _next_step(model: Any) -> str:
    """What to do about a new model that has not learnt yet (see ``run_summary``)."""
    if not has_been_trained(model):
        return (
            "Press Start again to train it further: until a new model has trained "
            f"{TRAINED_ITERATIONS} iterations, each run continues where the last ended "
            f"({_so_far(model)})."
        )
    return (  # its next run would be a careful fine-tune towards what it predicts now
        f"It has trained {_total(model)} iterations, so a next run would only fine-tune it: "
        "go back and train again with a longer time budget, or make a new model."
    )


def _so_far(model: Any) -> str:
    """How far a model still learning is: "120 of 300 iterations so far", as its training
    history records them."""
    return f"{_total(model)} of {TRAINED_ITERATIONS} iterations so far"


def _total(model: Any) -> int:
    """The iterations of a model's training history (runs that record them)."""
    history = model.info.training_history
    return sum(run.iterations for run in history if isinstance(run.iterations, int))


def progress_line(update: FinetuneUpdate, request: TrainingRequest | None) -> str:
    """The status line while a run trains: iterations (of the iteration budget), the loss,
    seconds (of the time budget when it alone ends the run); past its time, a new model
    says that it trains on to :data:`~napari_unet.config.TRAINED_ITERATIONS` iterations."""
    budget = request.iteration_budget if request is not None else None
    seconds = request.train.seconds if request is not None else None
    count = f"Iteration {update.iteration}" + (f" of {budget}" if budget else "")
    clock = f"{update.elapsed:.0f} of {seconds:g} s" if seconds and not budget else ""
    clock = clock or f"{update.elapsed:.0f} s"
    floor = request.floor if request is not None else 0
    if seconds and not budget and update.iteration < floor:  # the time may not end it yet
        clock += f" (a new model: up to {LEARNING_FLOOR_CAP * seconds:g} s)"
    if seconds and update.elapsed > seconds and update.iteration < floor:
        clock = (
            f"{update.elapsed:.0f} s: a new model trains on past {seconds:g} s until it has "
            f"trained {TRAINED_ITERATIONS} iterations (at most {LEARNING_FLOOR_CAP * seconds:g} s)"
        )
    return f"{count} · loss {update.loss:.3g} (smoothed {update.smoothed_loss:.3g}) · {clock}"


def cut_short_text(progress: Any, model: Any, stopped: bool) -> str:
    """A sentence when the time budget ended a run before its iteration budget (a busy or
    slow machine: the annotation-loop benchmark checks 100 iterations), or when a new
    model trained on past it (towards its learning floor); "" otherwise."""
    history = model.info.training_history
    seconds = (history[-1].train_config or {}).get("seconds") if history else None
    past = isinstance(seconds, (int, float)) and progress.elapsed > seconds + 1
    if past and not stopped and learning_before_last_run(model):
        return (
            f" It trained past the {seconds:g} s budget: a new model trains on until it has "
            f"trained {TRAINED_ITERATIONS} iterations in all, to learn enough to be kept."
        )
    short = cut_short(model)
    if stopped or short is None or short[0] != progress.iteration:  # not this run's record
        return ""
    return (
        f" The time budget ended it after {short[0]} of its {short[1]} iterations "
        "(a slow or busy machine: a longer time budget lets it finish)."
    )


def finished_notice(progress: Any, request: TrainingRequest | None, *, stopped: bool) -> str:
    """The notification at the end of a run that trained, short enough for napari's toast:
    a new model's runs train it, a trained model's fine-tune it. The loss is left to the
    status line (a fine-tune's adds the distillation), except to say that a run that
    trained a model still learning has not learnt yet: its loss is still a guess's."""
    training = request is not None and learning_before_last_run(request.model)
    verb = ("Training" if training else "Fine-tuning") + " stopped"
    if not stopped:
        verb = "Trained" if training else "Fine-tuned"
    done = f"{verb}: {counted(progress.iteration, 'iteration')}"
    if training and request is not None and loss_at_chance(request.model):
        loss = kept_loss(progress, request)
        return f"{done}; not learnt yet (its loss, {loss:.3g}, is still a guess's)."
    if stopped and training and request is not None and not has_been_trained(request.model):
        return f"{done}; still learning: Start goes on."  # a Stop at 60 s, on a busy CPU
    return f"{done}. Now run Predict."  # short: a toast shows about 45 characters


def kept_loss(progress: Any, request: TrainingRequest | None) -> float:
    """The smoothed loss of the weights the run kept (its best), as its history records
    it (:func:`~napari_unet.training.history.last_run_loss`); the last iteration's
    smoothed loss when it records none."""
    kept = last_run_loss(request.model) if request is not None else None
    return float(progress.smoothed_loss if kept is None else kept)


def threshold_text(model: Any) -> str:
    """After a run that trained a model still learning (its first, say): the background
    threshold its strokes gave, if any."""
    info = model.info
    if (
        not info.training_history
        or info.background_threshold == 0.5
        or not learning_before_last_run(model)
    ):
        return ""
    background = class_names(model).get(1, "background")
    gaps = "" if info.close_gaps else ", and gaps in boundaries stay as they are"
    moved = info.training_history[-1].moved_decision
    started = (
        f" It had called nearly every pixel {background}, so its decision was moved: objects "
        f"now start where it is least sure of {background}."
        if moved is not None
        else ""
    )
    return (
        f" From your strokes, Predict now calls a pixel {background} only where the model is "
        f"at least {percent(info.background_threshold, whole=True)} sure of it (objects grow "
        f"up to there{gaps}).{started}"
    )


GO_BACK_PROMPT = " Worse than before? Go back:"
"""How the status line after a run ends, above the Go back button."""


FAILED = "Failed: "  # how the status line of a run that failed begins; its error follows
NOTHING_TRAINED = "Stopped before the first iteration; the model is unchanged."
"""The status line (and warning) after a run stopped before it trained."""


def starting_line(restarted: bool) -> str:
    """The status line as a run starts (``restarted``: from the model before the first
    fine-tune on these annotations)."""
    if restarted:
        return (
            "Starting again from the model before the first fine-tune on these annotations, "
            "with all their strokes…"
        )
    return "Preparing the annotations…"


def stopping_line(calibrates: bool) -> str:
    """The status line after Stop, for a model whose threshold the run sets (``calibrates``)
    or not: what a second Stop skips."""
    if calibrates:
        return (
            "Stopping… (setting the model's threshold and comparing the slice in view: "
            "press Stop again to skip both)"
        )
    return "Stopping… (press Stop again to skip comparing the slice in view)"


def went_back_line(name: str, training: bool) -> str:
    """The status line after Go back to the model ``name``, from before a run (``training``:
    a training run of a model still learning)."""
    return (
        f"Back to “{name}”, the model before this {run_words(training)}; "
        "the one it made is dropped. A mask predicted with the dropped model, if any, shows "
        "its results until you Predict again."
    )


def closed_panel_notice(training: bool) -> str:
    """The notice when the section was closed during a run (``training``: a training run of
    a model still learning)."""
    run = "Training" if training else "Fine-tuning"
    return (
        f"{run} stopped: its panel was closed. The model keeps the best weights "
        "so far; the Model section can go back to the model before."
    )


def line_for_new_model(said: str, last_summary: str | None, go_back: bool, name: str) -> str | None:
    """The status line once the model ``name`` became current, when the line ``said`` was the
    last run's (``last_summary``, or ending in its Go back prompt; ``go_back``: that run can
    still be undone) or a Go back's to another model; None: ``said`` still applies."""
    summary = said.endswith(GO_BACK_PROMPT) or (last_summary is not None and said == last_summary)
    if summary and not go_back:
        return (
            f"“{name}” is the current model now; the last run's is in "
            "the Model section's earlier models."
        )
    back_to_other = said.startswith("Back to “") and not said.startswith(f"Back to “{name}”")
    if back_to_other or said.startswith(FAILED):  # a run that failed before it trained
        return f"“{name}” is the current model now."
    return None


RUNNING_FORMAT = "%p%"
"""The Fine-tune section's bar while a run goes: the share of its budget done."""


def show_run_end(
    bar: QProgressBar, iterations: int, *, stopped: bool = False, failed: bool = False
) -> None:
    """Say on the Fine-tune section's ``bar`` how a run that trained ``iterations`` ended.

    Finished: full, "100%". Stopped by the user: full, "Stopped after N iterations" (the
    model keeps what it learnt, as after a finished run). Failed: where the run left it,
    "Failed after N iterations". A run that trained nothing (stopped, cancelled or failed
    before its first iteration) resets it.
    """
    if iterations == 0:
        bar.reset()
        bar.setFormat(RUNNING_FORMAT)
        return
    trained = counted(iterations, "iteration")
    if failed:
        bar.setFormat(f"Failed after {trained}")
        return
    bar.setValue(bar.maximum())
    bar.setFormat(f"Stopped after {trained}" if stopped else "100%")


def progress_of(update: FinetuneUpdate | ClassChanges | str) -> tuple[float | None, str]:
    """What a fine-tune's update says of its progress (see :class:`JobProgress`)."""
    if isinstance(update, FinetuneUpdate):
        return update.fraction, f"iteration {update.iteration}"
    return (None, update) if isinstance(update, str) else (None, "")


def colour_notice(geometry: ImageGeometry, in_channels: int) -> str:
    """At Start, for an RGB image and a one-channel model: that the run learns from the
    image's luminance, and how to learn from its colours; "" otherwise."""
    if not (geometry.rgb and in_channels == 1):
        return ""
    return (
        "The image is RGB and this model takes one channel: the run learns from its luminance "
        "(0.299 R + 0.587 G + 0.114 B). To learn from the colours, make a new model with 3 "
        "input channels (Model section) and train that one."
    )

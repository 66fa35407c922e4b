"""The model shared by all U-Net widgets of one viewer, with a short history.

Every widget asks :func:`model_state` for the :class:`ModelState` of its viewer,
so the Model, Annotate, Fine-tune and Predict widgets work on the same model
whether they sit in one dock (:class:`~napari_unet._widgets.UNetWidget`) or were
opened one by one. The states live in a :class:`weakref.WeakKeyDictionary`
keyed by the viewer, so a closed viewer takes its state (and its models) along.
"""

from __future__ import annotations

import copy
import datetime
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qtpy.QtCore import QObject, Signal

from ..config import NEW_MODEL_CONFIG
from ..core.checkpoint import bundled_models, load_model, new_model
from ..core.model import UNet
from ..training.distillation import has_been_trained

HISTORY_LENGTH = 5
"""How many earlier models "go back" can return to."""

PREFERRED_BUNDLED = ("nuclei", "em-membranes")
"""Bundled models tried first, in this order, when no model was chosen yet."""

DEFAULT_NEW_CONFIG = NEW_MODEL_CONFIG
"""A new model (also when nothing is bundled): :data:`~napari_unet.config.NEW_MODEL_CONFIG`,
as ``napari-unet train --new`` makes it."""

FINE_TUNED_MARK, UNTRAINED_MARK, TRAINED_MARK = " (fine-tuned)", " (untrained)", " (trained)"
"""How a model's name says it was fine-tuned here, was never trained, or was trained here
from new (its untrained mark becomes this)."""

NEW_MODEL_NAME = f"new model{UNTRAINED_MARK}"


@dataclass(frozen=True)
class LastRun:
    """What the last fine-tune showed when it ended, for a Fine-tune section opened later.

    Attributes
    ----------
    summary : str
        Its status line (how it ended, what changed, what to do).
    iterations : tuple of int
    losses, smoothed : tuple of float
        Its loss curve: every plotted iteration, its loss and the moving average.
    """

    summary: str
    iterations: tuple[int, ...]
    losses: tuple[float, ...]
    smoothed: tuple[float, ...]


@dataclass
class HistoryEntry:
    """An earlier model kept for "go back".

    Attributes
    ----------
    label : str
        What it was, e.g. ``"nuclei before fine-tune at 14:02:11"`` or, before a run
        that trained a model still learning, ``"new model (untrained) before training
        at 14:02:11"``.
    name : str
        The model's name at that time.
    model : UNet
        The model itself (a copy on the CPU when taken before a run).
    training : bool
        Taken before a run that trained the model (still learning: a new model's
        first runs), not before a fine-tune of a trained model.
    """

    label: str
    name: str
    model: UNet
    training: bool = False

    @property
    def back_notice(self) -> str:
        """The notification after going back to it: "Back to “nuclei” (before fine-tune
        at 14:02:11)."."""
        when = self.label[len(self.name) :].strip() if self.label.startswith(self.name) else ""
        when = when.removeprefix("(").removesuffix(")")
        return f"Back to “{self.name}” ({when})." if when else f"Back to “{self.name}”."


class ModelState(QObject):
    """The current model of a viewer, its name, a short history and a busy flag.

    Signals
    -------
    model_changed
        Another model became current, or the current one was changed in place
        (fine-tuned, its metadata edited).
    history_changed
        An entry was added to or taken from :attr:`history`.
    busy_changed(str)
        A long task started (its name) or ended (``""``).
    went_back(HistoryEntry)
        "Go back" undid the last run (:attr:`offered_go_back`): the model of this history
        entry is current again; emitted after ``model_changed``.
    last_run_kept(QObject)
        A Fine-tune section (the argument) kept its run's status line and loss curve in
        :attr:`last_run`; any other Fine-tune section shows them too.
    """

    model_changed = Signal()
    history_changed = Signal()
    busy_changed = Signal(str)
    went_back = Signal(object)
    last_run_kept = Signal(object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._model: UNet | None = None
        # the current model is the default one, loaded on first use, and no task used it
        # yet: another model replacing it does not put it in the history (the user never
        # had it; the Model section can load it again)
        self._unused_default = False
        self.name = ""
        self.history: list[HistoryEntry] = []
        self.busy = ""
        # the history entry Fine-tune's Go back offers (the model before its last run): kept
        # here, not in the widget, so that a dock closed and opened again still offers it
        self.offered_go_back: HistoryEntry | None = None
        # what that fine-tune's section showed (its status line and loss curve)
        self.last_run: LastRun | None = None
        # the annotation layer (weakly: removing it frees it), its base, its fine-tuned model
        self._rounds: tuple[weakref.ref, UNet, UNet] | None = None
        self.repeat_of: str | None = None  # the fingerprint of the last complete run
        # the folder a model file was last loaded from or saved to: the Model section's
        # file dialogs start there (kept here, so a dock closed and opened again has it)
        self.last_folder: Path | None = None

    # ---- the current model --------------------------------------------------
    @property
    def model(self) -> UNet:
        """The current model; the default one is loaded on first use."""
        if self._model is None:
            self._model, self.name = default_model()
            self._unused_default = True
        return self._model

    @property
    def has_model(self) -> bool:
        """Whether a model was chosen or loaded already."""
        return self._model is not None

    def set_model(self, model: UNet, name: str) -> None:
        """Make ``model`` current; the replaced one goes to the history (unless it is the
        default model, shown but never used: nothing predicted with it or trained)."""
        if self._model is not None and not self._unused_default:
            self._push(HistoryEntry(f"{self.name} (replaced {_now()})", self.name, self._model))
        self._model, self.name, self._unused_default = model, name, False
        self.model_changed.emit()

    def remember(self, reason: str, training: bool = False) -> None:
        """Keep a CPU copy of the current model, e.g. ``reason="before fine-tune"``
        (``training``: before a run that trains it, see :attr:`HistoryEntry.training`)."""
        snapshot = copy.deepcopy(self.model).cpu()
        label = f"{self.name} {reason} at {_now()}"
        self._push(HistoryEntry(label, self.name, snapshot, training))

    def forget_last(self) -> None:
        """Drop the newest history entry (a snapshot that turned out to be unneeded)."""
        if self.history:
            self.history.pop()
            self.history_changed.emit()

    def untrained_run(self, restarted: bool) -> None:
        """A fine-tune ended before its first iteration: drop its snapshot and, when
        :meth:`prepare_finetune` had reset the weights to the base, put back the ones
        the model had (the snapshot), so that nothing is lost."""
        if restarted and self.history:
            snapshot = self.history[-1].model
            self.model.load_state_dict(snapshot.state_dict())
            self.model.metadata = copy.deepcopy(snapshot.metadata)
        self.forget_last()

    def go_back(self) -> HistoryEntry | None:
        """Make the newest history entry current again; None when the history is empty."""
        if not self.history:
            return None
        entry = self.history.pop()
        self._model, self.name, self._unused_default = entry.model, entry.name, False
        undone = entry is self.offered_go_back  # the last run, which Go back offered
        if undone:
            self.offered_go_back = None
        self.history_changed.emit()
        self.model_changed.emit()
        if undone:
            self.went_back.emit(entry)
        return entry

    def prepare_finetune(self, annotations: object, from_base: bool = True) -> bool:
        """Keep a snapshot for "go back"; restart from the base of these annotations.

        The base is the model before the first fine-tune on ``annotations`` (an
        annotation layer). While the current model is what fine-tuning on the
        same annotations made of it, and ``from_base`` is set, a new run starts
        again from the base with all the strokes instead of training the last
        result further: fine-tuning on top of fine-tuning learnt the early strokes
        over and over and drifted (F1 0.879 -> 0.62 after 3 rounds; BENCHMARKS.md,
        annotation loop). Another model, a "go back" or other annotations make the
        current model the new base. A base that is still learning (never trained, or
        trained too briefly) is replaced by the result of its run: training a new model
        again from scratch on more strokes made it worse (annotation loop, new models),
        fine-tuning that result does not.

        Returns
        -------
        bool
            True if the current model's weights were reset to the base.
        """
        training = not has_been_trained(self.model)  # a restart's base is trained: a fine-tune
        self.remember(f"before {'training' if training else 'fine-tune'}", training)
        rounds = self._rounds
        key = weakref.ref(annotations)
        if from_base and rounds and rounds[0]() is annotations and rounds[2] is self.model:
            base = rounds[1]
            if not has_been_trained(base):  # the first run's result is the base from now on
                self._rounds = (key, self.history[-1].model, self.model)
                return False
            self.model.load_state_dict(base.state_dict())  # copied onto the model's device
            self.model.metadata = copy.deepcopy(base.metadata)
            return True
        self._rounds = (key, self.history[-1].model, self.model)
        return False

    def restarts(self, annotations: Any, from_base: bool) -> bool:
        """Whether a run on ``annotations`` would start again from their trained base
        (what :meth:`prepare_finetune` does), without doing it."""
        rounds = self._rounds
        return bool(
            from_base
            and rounds
            and rounds[0]() is annotations
            and rounds[2] is self.model
            and has_been_trained(rounds[1])
        )

    def _push(self, entry: HistoryEntry) -> None:
        self.history = [*self.history, entry][-HISTORY_LENGTH:]
        self.history_changed.emit()

    # ---- one long task at a time --------------------------------------------
    def begin_task(self, task: str) -> bool:
        """Claim the model for ``task``; False when another task holds it."""
        if self.busy:
            return False
        self._unused_default = False  # a task uses the model: the user had it
        self.busy = task
        self.busy_changed.emit(task)
        return True

    def end_task(self) -> None:
        """Release the model."""
        self.busy = ""
        self.busy_changed.emit("")


def default_model() -> tuple[UNet, str]:
    """The first available preferred bundled model, else any bundled one, else a new one."""
    bundled = bundled_models()
    names = [name for name in PREFERRED_BUNDLED if name in bundled] + sorted(bundled)
    if names:
        return load_model(names[0]), names[0]
    return new_model(DEFAULT_NEW_CONFIG), NEW_MODEL_NAME


_STATES: weakref.WeakKeyDictionary[Any, ModelState] = weakref.WeakKeyDictionary()


def real_viewer(viewer: Any) -> Any:
    """The viewer itself when napari handed a widget a ``PublicOnlyProxy`` of it.

    Each widget napari creates gets its own proxy; the shared state must be
    keyed by the one viewer behind them.
    """
    return getattr(viewer, "__wrapped__", viewer)


def model_state(viewer: Any) -> ModelState:
    """The :class:`ModelState` of ``viewer``, created on first use."""
    viewer = real_viewer(viewer)
    state = _STATES.get(viewer)
    if state is None:
        state = _STATES[viewer] = ModelState()
    return state


def trained_name(name: str, *, fine_tuned: bool = False) -> str:
    """A model's name once a run changed it here.

    A run that trained a model still learning (a new model, also one saved and loaded
    again before it had trained enough) marks it " (trained)": "new model (untrained)"
    becomes "new model (trained)", "new-model-trained.safetensors" gets the mark too. A
    fine-tune of a trained model (``fine_tuned``) marks it " (fine-tuned)": "nuclei"
    becomes "nuclei (fine-tuned)", "new model (trained)" "new model (trained)
    (fine-tuned)". A name that ends with the mark already stays as it is.

    Parameters
    ----------
    name : str
        The model's name before the run.
    fine_tuned : bool
        Whether the run fine-tuned a trained model (see
        :func:`~napari_unet.training.distillation.learning_before_last_run`).
    """
    name = name.removesuffix(UNTRAINED_MARK)
    if fine_tuned:
        return name if name.endswith(FINE_TUNED_MARK) else name + FINE_TUNED_MARK
    return name if name.endswith((FINE_TUNED_MARK, TRAINED_MARK)) else name + TRAINED_MARK


def run_words(training: bool) -> str:
    """What the Fine-tune section calls a run: a "training run" of a model still learning,
    a "fine-tune" of a trained one."""
    return "training run" if training else "fine-tune"


def _now() -> str:
    return datetime.datetime.now().strftime("%H:%M:%S")

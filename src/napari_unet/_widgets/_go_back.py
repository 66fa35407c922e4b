"""A "go back" button for the Fine-tune section: undo the last run in one click."""

from __future__ import annotations

from typing import Any

from magicgui.widgets import PushButton
from napari.utils.notifications import show_info
from qtpy.QtCore import QObject, Signal

from ..training.distillation import has_been_trained
from ._state import ModelState, run_words


class GoBackButton(QObject):
    """Returns to the model a run started from, while nothing came after it.

    The Model section's "Go back" returns to whatever model is newest in the
    history; this button is enabled only while that is the snapshot taken before
    the run :meth:`offer` was called for (no other model loaded since, no task
    running), so it always undoes exactly that run. It names the run as it was: a
    "training run" of a model still learning (a new model), else a "fine-tune"
    (:attr:`~napari_unet._widgets._state.HistoryEntry.training`).

    Parameters
    ----------
    state : ModelState
    parent : QObject
        The section it belongs to (disconnects it from ``state`` when deleted).

    Attributes
    ----------
    button : magicgui.widgets.PushButton
    """

    went_back = Signal(object)
    """Emitted with the history entry once the model before the offered run is current
    again (by this button or the Model section's "Go back")."""

    def __init__(self, state: ModelState, parent: QObject) -> None:
        super().__init__(parent)
        self.state = state
        self.button = PushButton()
        self.button.changed.connect(self.go_back)
        for signal in (state.history_changed, state.busy_changed, state.model_changed):
            signal.connect(self.refresh)
        state.went_back.connect(self.went_back)
        self.refresh()

    def offer(self) -> None:
        """Offer going back to the newest history entry (the snapshot before a run)."""
        self.state.offered_go_back = self.state.history[-1] if self.state.history else None
        self.refresh()

    @property
    def available(self) -> bool:
        """Whether going back would undo the offered run, and nothing else."""
        history = self.state.history
        return (
            self.state.offered_go_back is not None
            and not self.state.busy
            and bool(history)
            and history[-1] is self.state.offered_go_back
        )

    @property
    def run(self) -> str:
        """What the button undoes (see :func:`run_words`): the offered run, else the run
        that Start would make of the current model."""
        offered, state = self.state.offered_go_back, self.state
        if offered is not None:
            return run_words(offered.training)
        return run_words(state.has_model and not has_been_trained(state.model))

    def refresh(self, *_: Any) -> None:
        """Enable the button exactly while going back is :attr:`available`; name the run."""
        self.button.enabled = self.available
        run = self.run
        self.button.text = f"Go back to the model before this {run}"
        self.button.tooltip = (
            f"Undo the {run}: the model becomes what it was before it, and the {run}'s "
            "model is dropped (save it first to keep it)."
        )

    def go_back(self, *_: Any) -> bool:
        """Make the model before the run current again; False if that is not possible."""
        if not self.available:
            return False
        entry = self.state.go_back()  # clears the offer (ModelState.went_back)
        self.refresh()
        if entry is not None:
            show_info(entry.back_notice)
        return entry is not None

"""A "go back" button for the Fine-tune section: undo the last fine-tune in one click."""

from __future__ import annotations

from typing import Any

from magicgui.widgets import PushButton
from napari.utils.notifications import show_info
from qtpy.QtCore import QObject, Signal

from ._state import ModelState


class GoBackButton(QObject):
    """Returns to the model a fine-tune started from, while nothing came after it.

    The Model section's "Go back" returns to whatever model is newest in the
    history; this button is enabled only while that is the snapshot taken before
    the fine-tune :meth:`offer` was called for (no other model loaded since, no
    task running), so it always undoes exactly that fine-tune.

    Parameters
    ----------
    state : ModelState
    parent : QObject
        The section it belongs to (disconnects it from ``state`` when deleted).

    Attributes
    ----------
    button : magicgui.widgets.PushButton
    """

    went_back = Signal(str)
    """Emitted with the model's name once the model before the offered fine-tune is
    current again (by this button or the Model section's "Go back")."""

    def __init__(self, state: ModelState, parent: QObject) -> None:
        super().__init__(parent)
        self.state = state
        self.button = PushButton(text="Go back to the model before this fine-tune")
        self.button.tooltip = "Undo the fine-tune: the model becomes what it was before it."
        self.button.changed.connect(self.go_back)
        for signal in (state.history_changed, state.busy_changed, state.model_changed):
            signal.connect(self.refresh)
        state.went_back.connect(self.went_back)
        self.refresh()

    def offer(self) -> None:
        """Offer going back to the newest history entry (the snapshot before a fine-tune)."""
        self.state.offered_go_back = self.state.history[-1] if self.state.history else None
        self.refresh()

    @property
    def available(self) -> bool:
        """Whether going back would undo the offered fine-tune, and nothing else."""
        history = self.state.history
        return (
            self.state.offered_go_back is not None
            and not self.state.busy
            and bool(history)
            and history[-1] is self.state.offered_go_back
        )

    def refresh(self, *_: Any) -> None:
        """Enable the button exactly while going back is :attr:`available`."""
        self.button.enabled = self.available

    def go_back(self, *_: Any) -> bool:
        """Make the model before the fine-tune current again; False if that is not possible."""
        if not self.available:
            return False
        entry = self.state.go_back()  # clears the offer (ModelState.went_back)
        self.refresh()
        if entry is not None:
            show_info(f"Back to {entry.label}")
        return entry is not None

"""A section in a scroll area: a tab of the U-Net dock, or a dock of its own.

A section taller than its dock scrolls instead of growing napari's window: with the
four sections opened as separate docks, the window grew past the screen and cut the
Annotate section's texts.
"""

from __future__ import annotations

import napari
from qtpy.QtCore import QEvent, Qt
from qtpy.QtWidgets import QFrame, QScrollArea, QWidget

from ._annotate import AnnotateWidget
from ._finetune import FinetuneWidget
from ._model import ModelWidget
from ._predict import PredictWidget
from ._tasks import taken_out_of_its_dock

#: The least height (px) of a section in a dock of its own: Qt gives the docks added
#: below another only their minimum, which for a bare scroll area shows no control.
DOCK_MIN_HEIGHT = 150


class SectionScroll(QScrollArea):
    """Holds one section; scrolls vertically, never horizontally.

    Parameters
    ----------
    section : QWidget
        The section shown (also :attr:`section`).
    """

    def __init__(self, section: QWidget, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.section = section
        self.setWidgetResizable(True)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setWidget(section)

    def fit_width(self) -> None:
        """Stay at least as wide as the section's controls need.

        A scroll area narrower than the section's widest row would cut its controls
        off on the right. Called once shown, with napari's style applied (its fonts and
        paddings make the rows wider than at construction).
        """
        bar = self.verticalScrollBar()
        bar_width = bar.sizeHint().width() if bar is not None else 0
        needed = self.section.minimumSizeHint().width() + bar_width
        self.setMinimumWidth(needed + 2 * self.frameWidth())


class SectionDock(SectionScroll):
    """A section in a dock of its own (the manifest's Model, Annotate, Fine-tune and
    Predict widgets); closing the dock stops the section's jobs.

    Subclasses name the section's class in :attr:`section_class`.
    """

    section_class: type[QWidget]

    def __init__(self, viewer: napari.viewer.Viewer, parent: QWidget | None = None) -> None:
        super().__init__(self.section_class(viewer), parent)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setMinimumHeight(min(DOCK_MIN_HEIGHT, self.section.sizeHint().height()))

    def event(self, event: QEvent | None) -> bool:
        """Closing the dock stops the section's jobs; showing it fits its width."""
        if taken_out_of_its_dock(self, event):
            stop_jobs = getattr(self.section, "stop_jobs", None)
            if stop_jobs is not None:
                stop_jobs()
        if event is not None and event.type() == QEvent.Type.Show:
            self.fit_width()
        return super().event(event)


class ModelDock(SectionDock):
    """The Model section in a dock of its own (``.section``: :class:`ModelWidget`)."""

    section_class = ModelWidget


class AnnotateDock(SectionDock):
    """The Annotate section in a dock of its own (``.section``: :class:`AnnotateWidget`)."""

    section_class = AnnotateWidget


class FinetuneDock(SectionDock):
    """The Fine-tune section in a dock of its own (``.section``: :class:`FinetuneWidget`)."""

    section_class = FinetuneWidget


class PredictDock(SectionDock):
    """The Predict section in a dock of its own (``.section``: :class:`PredictWidget`)."""

    section_class = PredictWidget

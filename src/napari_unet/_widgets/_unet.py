"""All four sections in one dock, in the order of the loop: model, annotate, fine-tune, predict."""

from __future__ import annotations

import napari
from qtpy.QtCore import QEvent
from qtpy.QtWidgets import QTabWidget, QVBoxLayout, QWidget

from ._annotate import AnnotateWidget
from ._finetune import FinetuneWidget
from ._model import ModelWidget
from ._predict import PredictWidget
from ._section_scroll import SectionScroll
from ._tasks import taken_out_of_its_dock


class UNetWidget(QWidget):
    """The U-Net dock: Model, Annotate, Fine-tune and Predict as tabs sharing one model.

    Parameters
    ----------
    viewer : napari.viewer.Viewer

    Attributes
    ----------
    model, annotate, finetune, predict : QWidget
        The four sections (:class:`ModelWidget`, :class:`AnnotateWidget`,
        :class:`FinetuneWidget`, :class:`PredictWidget`).
    tabs : QTabWidget
    """

    def __init__(self, viewer: napari.viewer.Viewer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = ModelWidget(viewer)
        self.annotate = AnnotateWidget(viewer)
        self.finetune = FinetuneWidget(viewer)
        self.predict = PredictWidget(viewer)
        self.tabs = QTabWidget()
        sections = [
            (self.model, "1 Model"),
            (self.annotate, "2 Annotate"),
            (self.finetune, "3 Fine-tune"),
            (self.predict, "4 Predict"),
        ]
        for section, title in sections:
            self.tabs.addTab(SectionScroll(section), title)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.tabs)

    def show_section(self, section: QWidget) -> None:
        """Bring one of the four sections to the front."""
        for index in range(self.tabs.count()):
            scroll = self.tabs.widget(index)
            if isinstance(scroll, SectionScroll) and scroll.section is section:
                self.tabs.setCurrentIndex(index)

    def event(self, event: QEvent | None) -> bool:
        """Closing the dock stops the sections' jobs (see :func:`taken_out_of_its_dock`);
        showing it fits its width to the sections (:meth:`fit_sections`)."""
        if taken_out_of_its_dock(self, event):
            self.finetune.stop_jobs()
            self.predict.stop_jobs()
        if event is not None and event.type() == QEvent.Type.Show:
            self.fit_sections()
        return super().event(event)

    def fit_sections(self) -> None:
        """Keep every section at least as wide as its controls need (see
        :meth:`SectionScroll.fit_width`)."""
        for index in range(self.tabs.count()):
            scroll = self.tabs.widget(index)
            if isinstance(scroll, SectionScroll):
                scroll.fit_width()

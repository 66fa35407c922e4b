"""The Fine-tune section's "Show loss weights": the paper's weight map of the annotations."""

from __future__ import annotations

import threading
from collections.abc import Callable, Generator

import napari
import numpy as np
from magicgui.widgets import PushButton
from napari.qt.threading import GeneratorWorker
from napari.utils.notifications import show_error, show_warning
from qtpy.QtCore import QObject, Signal
from qtpy.QtWidgets import QWidget

from ..config import WeightConfig
from ..training.weights import weight_map
from ._layers import WEIGHT_COLORMAP, LayerCombo, annotated_planes, show_output
from ._preview import selection_kept
from ._tasks import JobResult, start_job


class LossWeights(QObject):
    """Computes the loss weights of the chosen annotations in a worker and shows them.

    Parameters
    ----------
    owner : QWidget
        The section it belongs to (its jobs stop when the section is deleted).
    pickers : tuple of LayerCombo
        The section's image and annotation pickers.
    weight_config : callable
        Returns the w0 and sigma chosen in the section.
    n_classes : callable
        Returns the model's class count, or None when no model is loaded yet: the
        annotations are then checked against it, as a fine-tune does.

    Attributes
    ----------
    button : magicgui.widgets.PushButton
    worker : GeneratorWorker or None
        The running computation.
    """

    finished = Signal()
    """Emitted when the loss weights asked for by :meth:`show` are shown (or failed)."""

    def __init__(
        self,
        owner: QWidget,
        pickers: tuple[LayerCombo, LayerCombo],
        weight_config: Callable[[], WeightConfig],
        n_classes: Callable[[], int | None],
    ) -> None:
        super().__init__(owner)
        self.owner = owner
        self.image_picker, self.annotation_picker = pickers
        self.weight_config, self.n_classes = weight_config, n_classes
        self.worker: GeneratorWorker | None = None
        self._output: tuple[napari.layers.Layer | None, dict] = (None, {})
        self.button = PushButton(text="Show loss weights")
        self.button.tooltip = "Show the paper's weight map of these annotations as a layer."
        self.button.changed.connect(self.show)

    def show(self, *_: object) -> GeneratorWorker | None:
        """Show the weight map the loss uses for the chosen annotations, as an Image layer."""
        if self.worker is not None:
            show_warning("The loss weights are being computed already.")
            return None
        labels_layer = self.annotation_picker.layer
        if labels_layer is None:
            show_error("Choose an annotation layer (see Annotate) first.")
            return None
        labels = np.array(labels_layer.data)  # a copy: the user may paint while it runs
        planes = annotated_planes(labels, labels.ndim - 2)
        if not planes:
            show_warning("The annotations are empty: paint some strokes first.")
            return None
        image = self.image_picker.layer
        self._output = (
            image if image is not None else labels_layer,
            {"scale": list(labels_layer.scale), "translate": list(labels_layer.translate)},
        )
        self.worker = start_job(
            self.owner,
            loss_weights_job(labels, planes, self.weight_config(), self.n_classes()),
            "Loss weights",
            threading.Event(),
            on_yield=lambda _fraction: None,
            on_result=self._show,
            on_finish=self._done,
            release=lambda: None,
        )
        self.button.enabled = False
        return self.worker

    def _show(self, result: JobResult) -> None:
        if result.error:
            show_error(result.error)
            return
        source, placement = self._output
        if source is None:
            return
        viewer = self.image_picker.viewer
        with selection_kept(viewer):  # the user's brush stays on the annotations
            layer = show_output(
                viewer,
                source,
                "loss weights",
                result.value,
                napari.layers.Image,
                placement=placement,
                colormap=WEIGHT_COLORMAP,  # black at 0: unweighted pixels add nothing
                contrast_limits=(0.0, max(float(result.value.max()), 1e-6)),
                blending="additive",
            )
            layer.visible = True  # Predict hides it under its mask

    def _done(self) -> None:
        self.worker = None
        self._output = (None, {})  # a removed image must not stay in memory
        self.button.enabled = True
        self.finished.emit()


def loss_weights_job(
    annotations: np.ndarray,
    planes: list[tuple[int, ...]],
    config: WeightConfig,
    n_classes: int | None = None,
) -> Generator[float, None, np.ndarray]:
    """The loss weights of every annotated plane (0 elsewhere), yielding the fraction done.

    ``n_classes`` is the model's class count when one is loaded: the annotations are checked
    against it, as a fine-tune does, instead of guessing whether they are an instance image.
    """
    weights = np.zeros(annotations.shape, dtype=np.float32)
    for done, plane in enumerate(planes, start=1):
        weights[plane] = weight_map(annotations[plane], config, n_classes=n_classes)
        yield done / len(planes)
    return weights

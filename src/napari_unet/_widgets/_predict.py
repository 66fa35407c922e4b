"""The Predict section: run the shared model on an image (or a stack, slice by slice)."""

from __future__ import annotations

import threading
import weakref
from typing import Any

import napari
import numpy as np
from magicgui.widgets import Container, PushButton
from napari.layers import Image
from napari.qt.threading import GeneratorWorker
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtCore import QEvent, Signal
from qtpy.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QVBoxLayout, QWidget

from ..config import PredictConfig
from ..core.continuity import lineage
from ._annotation_combo import annotation_of
from ._copied_mask import note_predicted
from ._evaluate import EvaluatePanel
from ._geometry import ImageGeometry, image_data
from ._last_mask import last_mask, remember_model
from ._layers import (
    bring_to_front,
    find_output,
    mask_colormap,
    placement_for,
)
from ._layers import show_output as put_output
from ._memory import memory_refusal
from ._predict_controls import PredictControls
from ._predict_job import (
    PredictionProgress,
    PredictionRequest,
    PredictionResult,
    predict_job,
)
from ._predict_outputs import hide_other_outputs, output_specs, show_changes
from ._predict_reuse import KnownProbabilities, LastProbabilities, NetworkInputs
from ._predict_text import (
    REUSED_WORDS,
    RUNNING_FORMAT,
    at_chance_text,
    cancelled_bar_text,
    cancelled_text,
    covered_words,
    done_head,
    memory_status,
    shown_words,
)
from ._state import model_state, real_viewer
from ._tasks import (
    PROGRESS_STEPS,
    JobResult,
    start_job,
    taken_out_of_its_dock,
)


class PredictWidget(QWidget, PredictControls):
    """Predict class masks, instances, probabilities and weight maps with the shared model.

    Parameters
    ----------
    viewer : napari.viewer.Viewer

    The settings start at :class:`~napari_unet.config.PredictConfig`'s defaults, as
    the options of ``napari-unet predict`` do, and are passed down as one
    :class:`~napari_unet.config.PredictConfig` (:meth:`predict_config`).

    Attributes
    ----------
    worker : GeneratorWorker or None
        The running prediction (see :meth:`run_prediction`).
    """

    finished = Signal()
    """Emitted (in the Qt thread) when a run has ended, however it ended."""

    def __init__(self, viewer: napari.viewer.Viewer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = real_viewer(viewer)
        self.state = model_state(self.viewer)
        self.worker: GeneratorWorker | None = None
        self._stop = threading.Event()
        # the image, its geometry, the model's lineage, whether a last mask was continued,
        # the model's name
        self._target: tuple[napari.layers.Image, ImageGeometry, list[str], bool, str] | None = None
        self._reading_note = ""
        self._planes_noted: set[str] = set()  # layers told their planes were read as slices
        self._lost = ""  # what became of the running job's image: "“cells” was removed"
        self._last_progress: PredictionProgress | None = None
        self._described: list[weakref.ref] = []  # the layers the status line names
        self._tile_sizes_of: Any = None  # the model config the tile choices were made for
        self._augmentation_of: Any = None  # weak reference to the model the TTA box followed
        self._inputs: NetworkInputs | None = None  # what the running job's probabilities need
        self.last_probabilities = LastProbabilities()  # a post-processing change reuses them
        defaults = PredictConfig()
        self.defaults = defaults
        self._create_controls(defaults)
        self.run_button = PushButton(text="Run")
        self.cancel_button = PushButton(text="Cancel")
        self.progress = QProgressBar()
        self.progress.setRange(0, PROGRESS_STEPS)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.evaluation = EvaluatePanel(self.viewer, self.image_picker)
        self._build_layout()
        self.run_button.changed.connect(self.run_prediction)
        self.cancel_button.changed.connect(self.cancel)
        self._follow_the_model()
        self._set_running(False)
        self.viewer.layers.events.removed.connect(self._on_layer_removed)

    def _build_layout(self) -> None:
        settings = Container(
            widgets=[
                self.image_picker.combo,
                self.tile_size,
                self.device,
                self.instance_method,
                self.min_size,
                self.fill_holes,
                self.close_boundaries,
                self.background_threshold,
                self.test_time_augmentation,
                self.with_weights,
                self.with_uncertainty,
            ]
        )
        settings.margins = (0, 0, 0, 0)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button.native)
        buttons.addWidget(self.cancel_button.native)
        layout = QVBoxLayout(self)
        layout.addWidget(settings.native)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addWidget(self.evaluation)
        layout.addStretch(1)

    def run_prediction(self, *_: Any) -> GeneratorWorker | None:
        """Start predicting in a worker thread; returns the worker (None if refused)."""
        if self.worker is not None:
            show_warning("A prediction is running already; cancel it first.")
            return None
        gathered = self._gather()
        if gathered is None:
            return None
        image, request = gathered
        model, geometry = request.model, request.geometry
        if not self.state.begin_task("predicting"):
            show_warning(f"The model is busy ({self.state.busy}); stop it or wait, then run.")
            return None
        continued = request.previous_mask is not None
        self._target = (image, geometry, lineage(model), continued, self.state.name)
        self._reading_note = self._once(image, geometry, model.config.in_channels)
        self._stop = threading.Event()
        self._last_progress, self._lost = None, ""
        image.events.data.connect(self._on_image_changed)  # until the run ends
        self.progress.setFormat(RUNNING_FORMAT)  # the last run's end is no longer said
        self._say("Starting…")
        self._set_running(True)
        self.worker = start_job(
            self,
            predict_job(request, self._stop),
            "Prediction",
            self._stop,
            on_yield=self._on_progress,
            on_result=self._on_result,
            on_finish=self._on_finish,
            release=self.state.end_task,
            bar=self.progress,
            progress_of=lambda update: (update.fraction, update.text),
        )
        return self.worker

    def cancel(self, *_: Any) -> None:
        """Stop the running prediction (within one batch of tiles)."""
        if self.worker is not None:
            self._stop.set()
            self.status.setText("Cancelling…")

    def stop_jobs(self) -> None:
        """Cancel the running prediction and scoring: the section was closed."""
        self.cancel()
        self.evaluation.stack.stop.set()

    def event(self, event: QEvent | None) -> bool:
        """A dock of its own that is closed cancels the prediction."""
        if taken_out_of_its_dock(self, event):
            self.stop_jobs()
        return super().event(event)

    def _gather(self) -> tuple[napari.layers.Image, PredictionRequest] | None:
        """The chosen image and what to predict of it; None, said, when it cannot be
        predicted (no image, a layout or channels the model cannot read, too little memory)."""
        image = self.image_picker.layer
        if image is None:  # a slip, not a failure: said where the user looks, as a warning
            said = "Open an image, or choose one above, to predict on."
            self._say(said)
            show_warning(said)
            return None
        model = self.state.model
        geometry = ImageGeometry.of(image, model.config.in_channels)
        problem = geometry.layout_problem(image.name) or geometry.channels_problem(
            image.name, model.config.in_channels
        )
        if problem:  # in the status line too: the last run's line would stay there
            self._not_started(f"Not started: {problem}")
            show_error(problem)
            return None
        previous_mask, annotation = last_mask(self.viewer, image, model, geometry.spatial_shape)
        config = self.predict_config()
        self._inputs = NetworkInputs.of(image, geometry, model, config)
        request = PredictionRequest(
            model=model,
            data=image_data(image),
            geometry=geometry,
            config=config,
            with_weights=self.with_weights.value,
            weight_config=model.info.trained_weight_config,
            with_uncertainty=self.with_uncertainty.value,
            previous_mask=previous_mask,
            annotation=annotation,
            known=self.last_probabilities.recall(self._inputs),
        )
        refusal = memory_refusal(request, image.name)
        if refusal:
            self._not_started(
                memory_status(refusal, self.smaller_tile_that_fits(request, image.name))
            )
            show_error(refusal)
            return None
        return image, request

    def _not_started(self, status: str) -> None:
        """Say why a run did not start, with the bar emptied: a last run's end ("100%",
        "Cancelled…") is not this one's."""
        self.progress.reset()
        self.progress.setFormat(RUNNING_FORMAT)
        self._say(status)

    def _on_progress(self, progress: PredictionProgress) -> None:
        self._last_progress = progress
        if not self._stop.is_set():  # "Cancelling…" stays
            self.status.setText(progress.text)

    def _on_result(self, result: JobResult) -> None:
        if result.cancelled or self._lost:  # as Fine-tune's bar after Stop: full
            self.progress.setValue(self.progress.maximum())
            self.progress.setFormat(cancelled_bar_text(self._last_progress))
            said = cancelled_text(self._last_progress)
            if self._lost:  # also when it ended after the last stop check
                said = f"{self._lost}: its prediction was cancelled."
            self._say(said)
            show_info(said if self._lost else "Prediction cancelled.")  # the toast says why
            return
        if result.error:  # the bar stays where the run failed
            self.progress.setFormat("Failed")
            self._say(f"Failed: {result.error}")
            show_error(result.error)
            return
        if self._target is not None:
            image, geometry, model_lineage, continued, model_name = self._target
            value = result.value
            contrast = value.contrast_note
            note = self._reading_note + (f" {contrast}" if contrast else "")
            if value.reused:  # the last run's probabilities, post-processed again
                note = REUSED_WORDS + note
            layers = self.show_outputs(value, image, geometry, note)
            remember_model(layers["mask"], model_lineage, continued, model_name)
            note_predicted(layers["mask"])
            if self._inputs is not None and value.contents is not None:
                known = KnownProbabilities(value.probabilities, value.contents, contrast)
                self.last_probabilities.keep(self._inputs, known, image, [layers["probabilities"]])
            if contrast:  # a result that may be worthless: said where it is seen too
                show_warning(f"“{image.name}”: {contrast}")

    def _on_finish(self) -> None:
        if self._target is not None:
            self._target[0].events.data.disconnect(self._on_image_changed)
        self.worker = None
        self._target = None
        self._set_running(False)
        self.finished.emit()

    def _set_running(self, running: bool) -> None:
        self.run_button.enabled = not running
        self.cancel_button.enabled = running

    def _once(self, image: Any, geometry: ImageGeometry, in_channels: int) -> str:
        """How the image was read (:meth:`ImageGeometry.reading_note`); that its few
        planes were read as slices only once a layer: a real 3-slice stack heard it every
        run."""
        if geometry.planes_may_be_channels:
            if image.unique_id in self._planes_noted:
                return ""
            self._planes_noted.add(image.unique_id)
        return geometry.reading_note(in_channels)

    def _say(self, text: str, *layers: napari.layers.Layer) -> None:
        """Show ``text`` in the status line, naming ``layers`` (it goes when they do)."""
        self.status.setText(text)
        self._described = [weakref.ref(layer) for layer in layers]

    def _on_image_changed(self, *_: Any) -> None:
        if self.worker is not None and self._target is not None:
            self._lose(f"“{self._target[0].name}” got new data")  # outputs of the old data

    def _lose(self, what: str) -> None:
        """The running job's image is gone or changed (``what``): cancel it, say so."""
        self._stop.set()
        self._lost = what
        self.status.setText(f"{what}: cancelling its prediction…")

    def _on_layer_removed(self, event: Any) -> None:
        """A layer the status line names was deleted: the line goes with the image, and
        says so for an output."""
        removed = event.value
        self.last_probabilities.forget_layer(removed)
        if self.worker is not None:
            if self._target is not None and removed is self._target[0]:
                self._lose(f"“{removed.name}” was removed")  # no image to go with its outputs
            return
        named = [layer for layer in (ref() for ref in self._described) if layer is not None]
        if not any(layer is removed for layer in named):
            return
        image = named[0]
        if removed is image:
            self._say("")
            return
        text = f"“{removed.name}” was removed; Run predicts “{image.name}” again."
        self._say(text, *(layer for layer in named if layer is not removed))

    # ---- outputs ---------------------------------------------------------------
    def show_outputs(
        self,
        result: PredictionResult,
        image: napari.layers.Image,
        geometry: ImageGeometry,
        note: str = "",
    ) -> dict[str, napari.layers.Layer]:
        """Put the outputs into this plugin's output layers of ``image``; ``note`` ends
        the status line (how the image was read, see :meth:`ImageGeometry.reading_note`).

        The class mask is shown on top, under the image's annotation layer if it has one
        (which stays the active layer, so the brush paints corrections there);
        instances, probabilities (foreground, or every class along a first axis), the
        weight map and the uncertainty are added hidden.
        """
        placement = placement_for(geometry, image)
        outputs = output_specs(result, placement, placement_for(geometry, image, extra_axes=1))
        layers = {
            kind: put_output(self.viewer, image, kind, data, layer_type, placement=where, **display)
            for kind, (data, layer_type, where, display) in outputs.items()
        }
        layers["mask"].colormap = mask_colormap(result.probabilities.shape[0])
        layers["mask"].visible = True  # hidden by "Start from the prediction", say
        changes = show_changes(self.viewer, result, image, placement)
        hide_other_outputs(self.viewer, image)
        for kind in ("preview", "loss weights"):  # a fine-tune's layers would cover the mask
            over_mask = find_output(self.viewer, image, kind, Image)
            if over_mask is not None:
                over_mask.visible = False
        bring_to_front(self.viewer, layers["mask"])  # over a layer added since the last run
        strokes, covering = annotation_of(self.viewer, image), ""
        if strokes is not None:  # corrections are painted over the mask, to the layer that trains
            bring_to_front(self.viewer, strokes)
            covering = covered_words(strokes, geometry.plane_in_view(image, self.viewer))
        self.evaluation.clear()
        planes = int(np.prod(geometry.leading_shape))
        self._say(
            done_head(planes, int(result.instances.max()), self.state.name)
            + shown_words(layers["mask"].name, list(outputs))
            + at_chance_text(result.mask, self.state.model if self.state.has_model else None)
            + changes
            + covering
            + note,
            image,
            *layers.values(),
        )
        return layers

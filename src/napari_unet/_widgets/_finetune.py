"""The Fine-tune section: train the shared model on the painted strokes, watching it learn."""

from __future__ import annotations

import threading
from typing import Any

import napari
import numpy as np
from magicgui.widgets import Container, PushButton
from napari.qt.threading import GeneratorWorker
from napari.utils.notifications import show_error, show_info, show_warning
from napari.utils.theme import get_theme
from qtpy.QtCore import QEvent, QObject, QTimer, Signal
from qtpy.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QVBoxLayout, QWidget

from ..evaluation.review import ClassChanges
from ..training.distillation import has_been_trained
from ..training.loop import sets_threshold
from ._annotation_combo import AnnotationCombo
from ._finetune_job import FinetuneUpdate, TrainingRequest, finetune_job
from ._finetune_request import Refusal, painted_since, record_run, repeat_of, training_request
from ._finetune_settings import FinetuneSettings
from ._finetune_text import (
    FAILED,
    GO_BACK_PROMPT,
    NOTHING_TRAINED,
    RUNNING_FORMAT,
    closed_panel_notice,
    colour_notice,
    finished_notice,
    line_for_new_model,
    progress_line,
    progress_of,
    run_summary,
    show_run_end,
    starting_line,
    stopping_line,
    went_back_line,
)
from ._go_back import GoBackButton
from ._layers import LayerCombo
from ._loss_weights import LossWeights
from ._plot import LossPlot
from ._preview import hide_previews, put_preview
from ._run_layers import removal_notice
from ._state import HistoryEntry, LastRun, model_state, real_viewer
from ._tasks import PROGRESS_STEPS, JobResult, start_job, taken_out_of_its_dock
from ._warm_up import start_optimizer_warm_up


class FinetuneWidget(QWidget):
    """Fine-tune the shared model on an image's annotation layer.

    Parameters
    ----------
    viewer : napari.viewer.Viewer

    Attributes
    ----------
    settings : FinetuneSettings
        Budget, learning rate, augmentation, loss weights, device, live preview.
    worker : GeneratorWorker or None
        The running fine-tune (see :meth:`start_finetune`).
    loss_weights : LossWeights
        Shows the loss weights of the annotations (its ``button``, see :meth:`LossWeights.show`).
    plot : LossPlot
        The live loss curve.
    go_back : GoBackButton
        Undoes the last run (its ``button`` is :attr:`back_button`).

    Notes
    -----
    Every annotated slice of the annotation layer is used for training. The live preview
    predicts the slice in view every few seconds into the ``"<image> preview"`` layer
    (probability of any foreground class). The slice in view at Start is predicted before
    and after training (in the worker); the status line says how many of its painted pixels
    the model's most probable class matches, after and before (with the model Go back
    returns to), and how many of its pixels changed class, and to which.
    """

    finished = Signal()
    """Emitted (in the Qt thread) when a fine-tune has ended, however it ended."""

    def __init__(self, viewer: napari.viewer.Viewer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        start_optimizer_warm_up()  # torch's lazy imports now, in a thread, not in a fine-tune
        self.viewer = real_viewer(viewer)
        self.state = model_state(self.viewer)
        self.worker: GeneratorWorker | None = None
        self._stop, self._cancel = threading.Event(), threading.Event()
        self._request: TrainingRequest | None = None
        self._image_layer: napari.layers.Image | None = None
        self._strokes_layer: napari.layers.Labels | None = None  # the run's annotation layer
        self._last_iteration = 0
        self._restarted = False  # this run reset the model to its base (prepare_finetune)
        self._changes: ClassChanges | None = None
        self._preview_shown = False  # this run has shown its preview layer (Predict hides it)
        self._create_controls()
        self._build_layout()
        self.start_button.changed.connect(self.start_finetune)
        self.stop_button.changed.connect(self.stop)
        self.viewer.dims.events.current_step.connect(self._follow_view)
        self.viewer.layers.events.removed.connect(self._on_layer_removed)
        self.viewer.events.theme.connect(self._follow_theme)
        self.go_back.went_back.connect(self._on_went_back)
        self.state.model_changed.connect(self._withdraw_go_back_prompt)
        self.state.model_changed.connect(self._follow_model)
        self.state.last_run_kept.connect(self._follow_other_run)
        self._follow_model()
        self._set_running(False)

    def _create_controls(self) -> None:
        self.image_picker = LayerCombo(self.viewer, napari.layers.Image, "Image", follow_new=True)
        self.annotation_picker = AnnotationCombo(self.viewer, self.image_picker)
        self.settings = FinetuneSettings()
        self.start_button = PushButton(text="Start")
        self.stop_button = PushButton(text="Stop")
        self.loss_weights = LossWeights(
            self,
            (self.image_picker, self.annotation_picker),
            self.settings.weight_config,
            self._model_classes,
        )
        self.weights_button = self.loss_weights.button
        self.progress = QProgressBar()
        self.progress.setRange(0, PROGRESS_STEPS)
        self.progress.setFormat(RUNNING_FORMAT)
        self.status = QLabel("Paint annotations, then press Start.")
        self.status.setWordWrap(True)
        self.plot = LossPlot()
        self.go_back = GoBackButton(self.state, self)
        self.back_button = self.go_back.button
        if self.go_back.available:  # a dock opened again after a fine-tune
            self._show_last_run()
        self._follow_theme()

    def _build_layout(self) -> None:
        pickers = Container(widgets=[self.image_picker.combo, self.annotation_picker.combo])
        pickers.margins = (0, 0, 0, 0)
        buttons = QHBoxLayout()
        buttons.addWidget(self.start_button.native)
        buttons.addWidget(self.stop_button.native)
        layout = QVBoxLayout(self)
        layout.addWidget(pickers.native)
        layout.addWidget(self.settings.native)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addWidget(self.back_button.native)
        layout.addWidget(self.plot)
        layout.addWidget(self.weights_button.native)
        layout.addStretch(1)

    def _show_last_run(self) -> None:
        """Show the last fine-tune's status line and loss curve (a dock opened again)."""
        last = self.state.last_run
        if last is None:
            self.status.setText(f"The current model is the last run's.{GO_BACK_PROMPT}")
            return
        self.status.setText(last.summary)
        self.plot.extend(last.iterations, last.losses, last.smoothed)

    def _keep_last_run(self) -> None:
        """Keep the status line and loss curve in the viewer's state for a dock opened again."""
        plot = self.plot
        self.state.last_run = LastRun(
            self.status.text(), tuple(plot.iterations), tuple(plot.losses), tuple(plot.smoothed)
        )
        self.state.last_run_kept.emit(self)

    def _follow_other_run(self, section: QObject) -> None:
        """Another Fine-tune section of this viewer (the U-Net dock's, or one in a dock of its
        own) ended a run: show its status line and loss curve, not this section's older ones."""
        if section is not self and self.worker is None:
            show_run_end(self.progress, 0)  # empty: its own last run's end no longer applies
            self.plot.clear()
            self._show_last_run()

    def _model_classes(self) -> int | None:  # None before one is chosen (none loaded)
        return self.state.model.config.n_classes if self.state.has_model else None

    def _follow_model(self, *_: Any) -> None:
        """A new model still learning ignores "Start each run from the model you began with" (the
        default model, not loaded yet, is trained)."""
        state = self.state
        self.settings.follow_model(state.has_model and not has_been_trained(state.model))

    def _follow_theme(self, *_: Any) -> None:
        theme = get_theme(self.viewer.theme)
        self.plot.set_colours(str(theme.background), str(theme.text))

    # ---- fine-tuning ---------------------------------------------------------
    def start_finetune(self, *_: Any) -> GeneratorWorker | None:
        """Start fine-tuning in a worker thread; returns the worker (None if refused)."""
        if self.worker is not None:
            show_warning("A run is going already; press Stop first.")
            return None
        if (request := self._gather()) is None:
            return None
        task = "Fine-tuning" if has_been_trained(request.model) else "Training"  # still learning
        if not self.state.begin_task(task.lower()):
            show_warning(f"The model is busy ({self.state.busy}); wait for it or cancel it.")
            return None
        self._restarted = self.state.prepare_finetune(
            self.annotation_picker.layer, self.settings.from_base.value
        )
        self.state.repeat_of = None  # until this run ends by itself
        request.before = self.state.history[-1].model  # its snapshot, which Go back restores
        self._request, self._last_iteration, self._changes = request, 0, None
        self._stop, self._cancel = threading.Event(), threading.Event()
        self.plot.clear()
        self.progress.setFormat(RUNNING_FORMAT)  # the last run's end is no longer said
        self.status.setText(starting_line(self._restarted))
        self._set_running(True)
        self.worker = start_job(
            self,
            finetune_job(request, self._stop, self._cancel),
            task,
            self._stop,
            on_yield=self._on_update,
            on_result=self._on_result,
            on_finish=self._on_finish,
            release=self.state.end_task,
            bar=self.progress,
            progress_of=progress_of,
        )
        return self.worker

    def stop(self, *_: Any) -> None:
        """Ask the fine-tune to stop; the model keeps its best weights.

        Its background threshold is then set and the slice in view compared with the
        model before; pressing Stop again skips both (the model keeps its threshold
        from before the run).
        """
        if self._request is None:  # not running (set before the worker starts: no race)
            return
        if self._stop.is_set():
            self._cancel.set()
            self.status.setText("Stopping…")
            return
        self._stop.set()
        self.status.setText(stopping_line(sets_threshold(self._request.model)))

    def stop_jobs(self) -> None:
        """Stop what runs: the section was closed, its Stop button is out of reach."""
        self._cancel.set()
        if self._request is not None and not self._stop.is_set():
            self._stop.set()
            history = self.state.history  # its newest entry: the model before this run
            show_info(closed_panel_notice(bool(history and history[-1].training)))
        if self.loss_weights.worker is not None:
            self.loss_weights.worker.quit()

    def event(self, event: QEvent | None) -> bool:
        """A dock of its own that is closed stops the fine-tune."""
        if taken_out_of_its_dock(self, event):
            self.stop_jobs()
        return super().event(event)

    def _gather(self) -> TrainingRequest | None:
        image, labels_layer = self.image_picker.layer, self.annotation_picker.layer
        request = training_request(self.viewer, image, labels_layer, self.state, self.settings)
        if isinstance(request, Refusal):  # said on the status line, the last run's bar emptied
            said = request.message if request.advice else f"Not started: {request.message}"
            self.status.setText(said)
            self.progress.reset()
            self.progress.setFormat(RUNNING_FORMAT)
            (show_warning if request.advice else show_error)(request.message)
            return None
        self._image_layer, self._strokes_layer, self._preview_shown = image, labels_layer, False
        if notice := colour_notice(request.reader.geometry, request.model.config.in_channels):
            show_info(notice)  # before the run, not first after it on Predict's status line
        return request

    def _follow_view(self, *_: Any) -> None:
        request, image = self._request, self._image_layer
        if request is not None and request.preview is not None and image is not None:
            request.preview.plane = request.reader.geometry.plane_in_view(image, self.viewer)

    def _on_layer_removed(self, event: Any) -> None:
        """A layer of the running fine-tune went: said (:func:`removal_notice`)."""
        layers = (self._image_layer, self._strokes_layer)
        notice = removal_notice(self.viewer, event.value, *layers) if self._request else ""
        if event.value is self._image_layer:
            self._image_layer = None
        if notice:  # once napari is done removing (none left: the viewer is closing)
            QTimer.singleShot(0, lambda: self._request and self.viewer.layers and show_info(notice))

    def _on_update(self, update: FinetuneUpdate | str) -> None:
        if isinstance(update, str):  # a status line before training starts
            self._say(update)
            return
        if isinstance(update, ClassChanges):  # what the run changed on the slice in view
            self._changes = update
            return
        self._last_iteration = update.iteration
        self._say(progress_line(update, self._request))
        if not self.plot.iterations or update.iteration > self.plot.iterations[-1]:
            self.plot.add(update.iteration, update.loss, update.smoothed_loss)
        if update.foreground is not None and update.plane is not None:
            self._show_preview(update.plane, update.foreground)

    def _say(self, text: str) -> None:
        """Show a progress line, unless Stop was pressed: its "Stopping…" line stays (it
        says how to skip the comparison that follows)."""
        if not self._stop.is_set():
            self.status.setText(text)

    def _withdraw_go_back_prompt(self, *_: Any) -> None:
        """Another model became current: the last run's status line (and its "Go back:")
        and bar, or the line of a Go back to another model, no longer apply."""
        last = self.state.last_run
        line = line_for_new_model(
            self.status.text(),
            None if last is None else last.summary,
            self.go_back.available,
            self.state.name,
        )
        if line is not None:
            self.status.setText(line)
            if self.worker is None:
                show_run_end(self.progress, 0)  # "Stopped after N iterations" was that run's

    def _on_went_back(self, entry: HistoryEntry) -> None:
        """The last run was undone: its preview, progress, loss curve and status line go too."""
        hide_previews(self.viewer)
        show_run_end(self.progress, 0)  # reset
        self.plot.clear()
        self.state.last_run = None
        self.status.setText(went_back_line(entry.name, entry.training))

    def _show_preview(self, plane: tuple[int, ...], foreground: np.ndarray) -> None:
        request, image = self._request, self._image_layer
        if request is None or request.preview is None or image is None:
            return
        put_preview(
            self.viewer,
            image,
            request,
            plane,
            foreground,
            show=not self._preview_shown,  # hidden by the last Predict: show it again, once
        )
        self._preview_shown = True

    def _on_result(self, result: JobResult) -> None:
        if self._last_iteration == 0:  # nothing was trained: the model is as before the run
            self.state.untrained_run(self._restarted)
        if result.error:
            self._failed(result.error)
            return
        progress = result.value
        if progress is None:
            show_run_end(self.progress, 0)
            self.status.setText(NOTHING_TRAINED)
            show_warning(NOTHING_TRAINED)
            return
        stopped = self._stop.is_set()
        show_run_end(self.progress, progress.iteration, stopped=stopped)
        self.state.repeat_of = repeat_of(self._request, stopped)
        if self._mark_fine_tuned():
            self.status.setText(self.result_text(progress, stopped=stopped))
            self.go_back.offer()
            self._keep_last_run()
        show_info(finished_notice(progress, self._request, stopped=stopped))

    def _failed(self, error: str) -> None:
        """Say why the run failed; a run that trained keeps its best weights, as one stopped."""
        show_run_end(self.progress, self._last_iteration, failed=True)
        if trained := self._last_iteration > 0:
            self._mark_fine_tuned()  # before the line: a line for another model would replace it
            self.go_back.offer()
        self.status.setText(f"{FAILED}{error}")
        if trained:
            self._keep_last_run()
        show_error(error)

    def _mark_fine_tuned(self) -> bool:  # note the run in the model's history and name
        return record_run(self.state, self._request)

    def result_text(self, progress: Any, *, stopped: bool) -> str:
        """The status line after a run that trained: how it ended, what changed, what to do."""
        late = painted_since(self._request, self.annotation_picker.layer)  # painted meanwhile
        skipped = self._cancel.is_set()
        return run_summary(progress, self._request, self._changes, stopped, skipped, late)

    def _on_finish(self) -> None:
        self.worker = None
        self._changes, self._request = None, None
        self._image_layer = self._strokes_layer = None  # removed layers must not stay in memory
        self.plot.redraw()
        self._set_running(False)
        self.finished.emit()

    def _set_running(self, running: bool) -> None:
        self.start_button.enabled = not running
        self.stop_button.enabled = running
        self.settings.set_running(running)

"""Metrics of the current prediction against a ground-truth layer (part of Predict)."""

from __future__ import annotations

from functools import partial
from typing import Any

import napari
import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, PushButton
from napari.layers import Labels
from napari.utils.notifications import show_error, show_warning
from qtpy.QtCore import Qt, Signal
from qtpy.QtWidgets import QLabel, QVBoxLayout, QWidget

from ..core.continuity import lineage
from ..evaluation.regions import STROKE_MARGIN
from ..evaluation.truth import binary_reading, semantic_offset
from ._annotation_combo import annotation_of, saved_strokes
from ._evaluate_job import EVALUATE, Refusal, Scoring, StackScorer, score_now, slice_in_view
from ._evaluate_text import (
    KIND_TOOLTIP,
    KINDS,
    convert_hint,
    flat_slice_words,
    format_scores,
    slice_words,
)
from ._geometry import ImageGeometry
from ._layers import LAYER_LIST_EVENTS, LayerCombo, find_output, image_truth, is_annotation
from ._score_memory import MaskMaker, ScoreMemory, ScoringKey, mask_maker
from ._state import HistoryEntry, model_state
from ._truth_names import closest_truth, kinship

__all__ = ["KINDS", "EvaluatePanel", "Refusal", "convert_hint", "format_scores", "semantic_offset"]


class EvaluatePanel(QWidget):
    """Pick a ground-truth Labels layer and see the metrics of the plugin's prediction.

    The prediction is this plugin's "<image> instances" (kind "instances") or
    "<image> mask" (kinds "membranes" and "semantic") layer for the image chosen
    in ``image_picker``. For stacks, the slice in view is evaluated, or with
    :attr:`all_slices` every slice, in a worker thread (:mod:`._evaluate_job`). The scores
    are cleared once they may no longer hold: another image, truth or kind is
    chosen, the image's data change, a new prediction is shown (:meth:`clear`), or Go
    back undid the last run (:meth:`after_go_back`: they were the undone model's).

    The ground truth chosen without the user (at the start, when the chosen one
    goes, or when another image is chosen and the truth does not fit it) is the
    topmost Labels layer of the prediction's shape that is no annotation layer
    (:meth:`may_choose`).

    While no ground truth is chosen, the result line says how to use an image layer
    that holds labels (a ground truth File → Open read as an image) as one
    (:meth:`show_hint`), whether or not anything was predicted.
    """

    finished = Signal()
    """Emitted (in the Qt thread) when the scoring of every slice of a stack has ended."""

    def __init__(self, viewer: napari.viewer.Viewer, image_picker: LayerCombo) -> None:
        super().__init__()
        self.viewer = viewer
        self.image_picker = image_picker
        self._image: napari.layers.Image | None = None
        self._scored_lineage: list[str] | None = None  # the model of the scored mask
        self._scored_slice: tuple[int, ...] | None = None  # the stack slice scored
        self._scores_text = ""  # the scores shown, without a note on the slice in view
        self._shown_hint = ""  # the result line holds this hint (see show_hint)
        self._strokes: Any = None  # the strokes the scores were kept away from
        self._kind_chosen = False  # by the user: then the model no longer decides it
        self._memory = ScoreMemory()  # the last scores of each scoring, for "Before: …"
        self._state = model_state(viewer)
        self._create_controls()
        self._build_layout()
        self._connect()
        self._follow_image()
        self.follow_model()

    def _create_controls(self) -> None:
        self.truth_picker = LayerCombo(self.viewer, Labels, "Ground truth", prefer=self.may_choose)
        self.kind = ComboBox(
            label="Metrics", choices=list(KINDS), value="instances", tooltip=KIND_TOOLTIP
        )
        self.away = CheckBox(
            text="Only away from the strokes",
            value=False,
            tooltip=f"Leave out what lies within {STROKE_MARGIN} px of the image's strokes "
            "(true objects touching them, with the predictions on them): a model is right "
            "where it was trained; whether a run made it better shows elsewhere.",
        )
        self.all_slices = CheckBox(
            text="All slices",
            value=False,
            tooltip="Score every slice of the stack, in the background (membranes: the mean "
            "of each slice's errors), instead of the slice in view.",
        )
        self.evaluate_button = PushButton(text=EVALUATE)
        self.result = QLabel("")
        self.result.setWordWrap(True)
        self.result.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.stack = StackScorer(self, self.evaluate_button, self.result.setText, self.finished)

    def _build_layout(self) -> None:
        controls = [self.truth_picker.combo, self.kind, self.away, self.all_slices]
        settings = Container(widgets=[*controls, self.evaluate_button])
        settings.margins = (0, 0, 0, 0)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(settings.native)
        layout.addWidget(self.stack.bar)
        layout.addWidget(self.result)

    def _connect(self) -> None:
        self.stack.shown.connect(lambda shown: self._show(*shown))
        self.stack.refused.connect(self._refuse)
        self.evaluate_button.changed.connect(self.run)
        for control in (self.truth_picker.combo, self.kind, self.away, self.all_slices):
            control.changed.connect(self.clear)
        for name in LAYER_LIST_EVENTS:  # connected after the pickers': they update first
            getattr(self.viewer.layers.events, name).connect(self._on_layers_changed)
        self.image_picker.combo.changed.connect(self._follow_image)
        self.kind.changed.connect(self._note_kind_chosen)
        self._state.model_changed.connect(self.follow_model)
        self._state.went_back.connect(self.after_go_back)
        self.viewer.dims.events.current_step.connect(self._mark_other_slice)

    def follow_model(self, *_: Any) -> None:
        """Metrics for what the current model segments, until the user picks them: a
        model whose background class is named "membrane" (em-membranes) gets
        'membranes', any other 'instances'."""
        if self._kind_chosen or not self._state.has_model:
            return
        names = self._state.model.info.class_names or ()
        kind = "membranes" if names and str(names[0]).lower() == "membrane" else "instances"
        self.kind.changed.disconnect(self._note_kind_chosen)
        try:
            self.kind.value = kind
        finally:
            self.kind.changed.connect(self._note_kind_chosen)

    def _note_kind_chosen(self, *_: Any) -> None:
        self._kind_chosen = True

    def clear(self, *_: Any) -> None:
        """Forget the shown scores (they describe an earlier prediction or image; a stack
        being scored is cancelled); the result line shows the hint of :meth:`show_hint`
        instead, if any. "All slices" shows for a stack only."""
        self.stack.stop.set()
        self.all_slices.visible = len(self._prediction_shape() or ()) > 2
        self.result.setText("")
        self._scored_lineage = None
        self._scored_slice = None
        self.show_hint()

    def show_hint(self) -> str:
        """With no ground truth chosen, say in the result line how to convert an image
        layer holding labels (:func:`._label_like.looks_like_labels`) of the prediction's
        shape into a Labels layer; returns the hint ("" when none). Scores or a message
        shown stay: only an empty line or an earlier hint is replaced."""
        if self.result.text() not in ("", self._shown_hint):
            return ""
        name = None if self.truth_picker.layer is not None else self._image_truth(False)
        self._shown_hint = "" if name is None else convert_hint(name)
        self.result.setText(self._shown_hint)
        return self._shown_hint

    def _on_layers_changed(self, event: Any) -> None:
        if event.type == "inserted" and isinstance(event.value, Labels):
            self._choose_truth(over_user=False)  # "05 [1]" opened after "05"
        self.show_hint()

    def after_go_back(self, entry: HistoryEntry) -> None:
        """Go back undid the last run: scores shown of a prediction by another model than
        the one now current (the undone run's, or an older one's) go; those of its own
        prediction (scored before the run) stay."""
        if self._scored_lineage is not None and self._scored_lineage == lineage(entry.model):
            return
        if self.result.text():
            self._scored_slice = None
            self.result.setText(
                f"Went back to “{entry.name}”: the scores shown were of the undone run's "
                "model. Predict again, then evaluate, to score this one."
            )

    def may_choose(self, layer: Labels) -> bool:
        """Whether ``layer`` may be chosen as the ground truth without the user: not an
        annotation layer (nor the chosen image's strokes saved and opened again), and of
        the shape of the chosen image's prediction."""
        strokes = is_annotation(layer) or saved_strokes(layer, self.image_picker.layer)
        return not strokes and self._fits(layer)

    def _fits(self, layer: Labels) -> bool:
        """Whether ``layer`` has the shape of the chosen image's prediction (or no image
        is chosen)."""
        shape = self._prediction_shape()
        return shape is None or tuple(layer.data.shape) == shape

    def _prediction_shape(self) -> tuple[int, ...] | None:
        """The shape of the chosen image's prediction (None: no image chosen): the shown
        one's, else the image's without its channels for the current model."""
        image = self.image_picker.layer
        if image is None:
            return None
        for role in ("mask", "instances"):
            prediction = find_output(self.viewer, image, role, Labels)
            if prediction is not None:
                return tuple(prediction.data.shape)
        state = model_state(self.viewer)
        in_channels = state.model.config.in_channels if state.has_model else 1
        return ImageGeometry.of(image, in_channels).spatial_shape

    def _follow_image(self, *_: Any) -> None:
        if self._image is not None:
            self._image.events.data.disconnect(self.clear)
        self._image = self.image_picker.layer
        if self._image is not None:
            self._image.events.data.connect(self.clear)
        self._choose_truth(over_user=True)
        self.clear()

    def _choose_truth(self, over_user: bool) -> None:
        """Choose the truth named most closely after the image (:func:`closest_truth`)
        when the one chosen does not fit or may not be chosen, or is named less closely
        and was not chosen by the user (unless ``over_user``: another image was chosen)."""
        truth, image, listed = self.truth_picker.layer, self._image, self.truth_picker.layers()
        candidates = [layer for layer in reversed(self.viewer.layers) if _among(layer, listed)]
        best = closest_truth(image, [layer for layer in candidates if self.may_choose(layer)])
        by_user = truth is not None and self.truth_picker.user_chose()
        if truth is None or not self._fits(truth) or not (by_user or self.may_choose(truth)):
            self.truth_picker.combo.value = best  # e.g. the truth of another image went
        elif best is not None and (over_user or not by_user):
            if kinship(image, best) > kinship(image, truth):  # "05 [1]" for "05", not "00 [1]"
                self.truth_picker.combo.value = best

    def run(self, *_: Any) -> dict[str, Any] | None:
        """Compute and show the metrics; returns them (None with a notification on failure,
        and when every slice of a stack is scored: in a worker, whose end emits
        :attr:`finished`). While that runs, the button cancels it."""
        if self.stack.worker is not None:
            self.stack.stop.set()
            self.result.setText("Cancelling…")
            self.evaluate_button.enabled = False  # until the scoring thread has ended
            return None
        try:
            scoring = self._scoring()
            if scoring.index is None and scoring.predicted.ndim > 2:
                self.stack.start(scoring)
                return None
            scores = score_now(scoring)
        except ValueError as error:
            self._refuse(error)
            return None
        self._show(scores, scoring)
        return scores

    def _refuse(self, error: Exception) -> None:
        """Say why nothing was scored: a warning for a step to take, else an error."""
        self.result.setText(str(error))  # whole here: a notification may be cut short
        (show_warning if isinstance(error, Refusal) else show_error)(str(error))

    def _show(self, scores: dict[str, Any], scoring: Scoring) -> None:
        """Show ``scores`` of ``scoring`` (of its slice ``index``; None: a 2-D image, or every
        slice)."""
        index = scoring.index
        where = slice_words(index).capitalize() if index is not None else ""
        if "slices" in scores:  # "All 5 slices, at IoU 0.5: F1 …"
            where = f"All {scores['slices']} slices"
            if scores["kind"] == "membranes":  # one bracket: "(the means …; away from …)"
                notes = ["the means of the slices' errors", scores.get("note", "")]
                scores = {**scores, "note": "; ".join(filter(None, notes))}
        text = format_scores(scores)
        if where:  # "Slice 7, at IoU 0.5: F1 …", "Slice 7: pixel error …"
            text = f"{where}, a{text[1:]}" if text.startswith("At ") else f"{where}: {text}"
        image = self.image_picker.layer
        maker = mask_maker(
            None if image is None else find_output(self.viewer, image, "mask", Labels)
        )
        self._scored_lineage = maker.lineage
        current = lineage(self._state.model) if self._state.has_model else None
        lines = [text, maker.other_model_words(current, self._state.name)]
        lines.append(self._before(scores, scoring, maker))
        text = "\n".join(line for line in lines if line)
        self._scores_text, self._scored_slice = text, index
        self.result.setText(text)

    def _before(self, scores: dict[str, Any], scoring: Scoring, maker: MaskMaker) -> str:
        """What the same scoring gave another model's mask ("" when none: :class:`ScoreMemory`)."""
        image, truth = self.image_picker.layer, self.truth_picker.layer
        if image is None or truth is None:
            return ""
        ids = str(image.unique_id), str(truth.unique_id)
        key = ScoringKey(*ids, self.kind.value, scoring.index, self.away.value)
        leading = (self._prediction_shape() or (1, 1))[:-2]
        name = partial(flat_slice_words, leading=leading)
        return self._memory.compare(key, maker.lineage, maker.name, scores, name, scoring)

    def _mark_other_slice(self, *_: Any) -> None:
        """The slider moved: say when the scores shown are of another slice than the one
        in view (and take the note off when the scored slice is in view again)."""
        if self._scored_slice is None:
            return
        image = self.image_picker.layer
        role = KINDS[self.kind.value][0]
        prediction = None if image is None else find_output(self.viewer, image, role, Labels)
        if prediction is None or prediction.data.ndim < 3:
            return
        in_view = slice_in_view(self.viewer, prediction)
        if in_view == self._scored_slice:
            self.result.setText(self._scores_text)
            return
        self.result.setText(
            f"{slice_words(in_view).capitalize()} is in view now, not the one scored: "
            f"Evaluate again to score it. {self._scores_text}"
        )

    def _scoring(self) -> Scoring:
        """What to score, copied from the layers: the slice in view of a stack, or all of
        it with "All slices"."""
        image, truth = self.image_picker.combo.value, self.truth_picker.combo.value
        if image is None or truth is None:
            name = self._image_truth(True)
            hint = "" if name is None else f" {convert_hint(name)}"
            raise Refusal(f"Choose an image and a ground-truth Labels layer first.{hint}")
        role, _ = KINDS[self.kind.value]
        prediction = find_output(self.viewer, image, role, Labels)
        if prediction is None:
            raise Refusal(f"Run Predict on “{image.name}” first: no “{image.name} {role}” layer.")
        predicted, true = np.asarray(prediction.data), np.asarray(truth.data)
        if predicted.shape != true.shape:
            raise ValueError(
                f"The ground truth has shape {true.shape} but the prediction {predicted.shape}; "
                "pick the ground truth of this image."
            )
        offset, note = 0, ""
        holds_strokes = is_annotation(truth) or saved_strokes(truth, image)
        if holds_strokes and self.kind.value == "instances":
            raise Refusal(
                f"“{truth.name}” holds strokes (1 = background, 2.. = classes), not one value "
                "per object: choose the ground truth, or score the strokes as semantic."
            )
        if self.kind.value == "semantic":
            offset, note = semantic_offset(true, self._n_classes(predicted), holds_strokes)
        elif self.kind.value == "instances":  # evaluate reads a binary mask's components
            note = binary_reading(true)
        index = None
        if predicted.ndim > 2 and not self.all_slices.value:  # a stack: the slice in view
            index = slice_in_view(self.viewer, prediction)
            predicted, true = predicted[index], true[index]
        strokes = self._strokes_of(image, index, true.shape) if self.away.value else None
        return Scoring(predicted, true, self.kind.value, offset, note, strokes, index)

    def _strokes_of(
        self, image: Any, index: tuple[int, ...] | None, shape: tuple[int, ...]
    ) -> np.ndarray | None:
        """The strokes of ``image``'s annotation layer on the scored planes (a copy), an
        empty plane when it has none of this shape: all of it is then scored."""
        strokes = annotation_of(self.viewer, image)
        self._watch_strokes(strokes)
        painted = None
        if strokes is not None:
            painted = np.array(strokes.data if index is None else strokes.data[index])
        if painted is None or painted.shape != shape:
            return np.zeros(shape, np.uint8)
        return painted

    def _watch_strokes(self, strokes: Any) -> None:
        """Clear scores left out near ``strokes`` once they are painted on (or set again)."""
        if self._strokes is not None:
            for event in (self._strokes.events.paint, self._strokes.events.data):
                event.disconnect(self._strokes_changed)
        self._strokes = strokes
        if strokes is not None:
            for event in (strokes.events.paint, strokes.events.data):
                event.connect(self._strokes_changed)

    def _strokes_changed(self, *_: Any) -> None:
        if self.away.value:  # the part left out has changed
            self.clear()

    def _image_truth(self, integer_after_prediction: bool) -> str | None:
        """:func:`._layers.image_truth` beside the chosen image and its prediction."""
        return image_truth(
            self.viewer,
            self.image_picker.layer,
            self._prediction_shape(),
            integer_after_prediction,
        )

    def _n_classes(self, predicted: np.ndarray) -> int:
        """Classes of the current model, or more if the prediction holds more labels."""
        state = model_state(self.viewer)
        n_classes = state.model.config.n_classes if state.has_model else 0
        return max(n_classes, int(predicted.max(initial=0)))


def _among(layer: Any, layers: list[Any]) -> bool:
    return any(layer is item for item in layers)  # by identity: napari layers have no ==

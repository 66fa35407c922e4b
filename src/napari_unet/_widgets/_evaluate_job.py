"""What the Evaluate panel scores, read in the Qt thread, and the scoring itself: the slice
in view at once (:func:`score_now`), or every slice of a stack in a worker thread
(:func:`stack_job`, run by :class:`StackScorer` with a bar and Cancel)."""

from __future__ import annotations

import threading
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

import napari
import numpy as np
from magicgui.widgets import PushButton
from napari.qt.threading import GeneratorWorker
from qtpy.QtCore import QObject, Signal, SignalInstance
from qtpy.QtWidgets import QProgressBar, QWidget

from ..evaluation.metrics import evaluate, nothing_scored
from ..evaluation.regions import near_strokes
from ..evaluation.stack import evaluate_stack
from ._evaluate_text import away_words, nothing_left_words
from ._tasks import PROGRESS_STEPS, JobResult, start_job

__all__ = [
    "EVALUATE",
    "Refusal",
    "Scoring",
    "StackScorer",
    "score_now",
    "stack_job",
    "stack_progress",
    "with_notes",
]

EVALUATE = "Evaluate the prediction"
"""The Evaluate button's text (while a stack is scored: "Cancel")."""


class Refusal(ValueError):
    """Evaluate cannot run yet (no image, truth or prediction) or has nothing to score: a
    step still to take, shown as a warning, not an error."""


@dataclass
class Scoring:
    """One evaluation's inputs, copied from the layers in the Qt thread.

    Attributes
    ----------
    predicted, true : numpy.ndarray
        The prediction and the ground truth: one plane, or the whole stack (... Y, X).
    kind : str
        "instances", "membranes" or "semantic".
    offset : int
        Added to the truth's labels (a 0/1 semantic truth read as 1/2).
    note : str
        What the scores must say about how the truth was read ("" if nothing).
    strokes : numpy.ndarray or None
        With "Only away from the strokes": the strokes of the scored planes (shape of
        ``true``); None: all of it is scored.
    index : tuple of int or None
        The stack slice scored; None: a 2-D image, or every slice.
    """

    predicted: np.ndarray
    true: np.ndarray
    kind: str
    offset: int = 0
    note: str = ""
    strokes: np.ndarray | None = None
    index: tuple[int, ...] | None = None


def score_now(scoring: Scoring) -> dict[str, Any]:
    """The scores of one plane (or of a 2-D image), in the calling thread.

    Raises
    ------
    Refusal
        When "Only away from the strokes" leaves nothing to score.
    """
    ignore = _near(scoring.strokes)
    kind: Any = scoring.kind
    scores = evaluate(scoring.predicted, _truth(scoring), kind=kind, ignore=ignore)
    return with_notes(scoring, scores, ignore is not None)


def stack_job(
    scoring: Scoring, stop: threading.Event
) -> Generator[tuple[int, int], None, tuple[dict[str, Any], bool]]:
    """Score every slice of ``scoring``'s stack (:func:`~napari_unet.evaluation.stack.
    evaluate_stack`), for a worker thread: yields ``(slices done, slices)``; ``stop``
    ends it between slices (:class:`~napari_unet.core.cancellation.Cancelled`).

    Returns
    -------
    tuple of (dict, bool)
        The scores, with ``"slices"``, and whether pixels near strokes were left out:
        :func:`with_notes` of both, in the Qt thread, gives what to show.
    """
    ignore = _near(scoring.strokes)
    kind: Any = scoring.kind
    scores = yield from evaluate_stack(
        scoring.predicted, _truth(scoring), kind, ignore, stop=stop.is_set
    )
    return scores, ignore is not None


def stack_progress(update: tuple[int, int]) -> tuple[float | None, str]:
    """What a stack's scoring update says of its progress (``start_job``'s ``progress_of``)."""
    done, slices = update
    return done / max(slices, 1), f"Scoring: {done} of {slices} slices"


def _truth(scoring: Scoring) -> np.ndarray:
    return scoring.true.astype(np.int64) + scoring.offset if scoring.offset else scoring.true


def _near(strokes: np.ndarray | None) -> np.ndarray | None:
    """The pixels near ``strokes``, plane by plane (None: none painted, or not asked for)."""
    if strokes is None or not strokes.any():
        return None
    return near_strokes(strokes)


def with_notes(scoring: Scoring, scores: dict[str, Any], ignored: bool) -> dict[str, Any]:
    """``scores`` with the notes they must carry (``ignored``: pixels near strokes were
    left out); Refusal when nothing was scored."""
    if nothing_scored(scores):
        raise Refusal(nothing_left_words(scoring.kind))
    note = scoring.note
    if scoring.strokes is not None:
        note = "; ".join(filter(None, [note, away_words(scores, ignored)]))
    return {**scores, "note": note} if note else scores


class StackScorer(QObject):
    """Every slice of a stack scored in a worker for the Evaluate panel: its bar, its stop
    flag, the panel's button turned into Cancel meanwhile.

    Parameters
    ----------
    owner : QWidget
        The panel: the worker stops when it goes.
    button : magicgui PushButton
        The Evaluate button.
    say : callable
        Sets the panel's result line.
    finished : SignalInstance
        Emitted when a run has ended, however it ended.
    """

    shown = Signal(object)
    """The scores to show (a dict), with their notes, and the :class:`Scoring` they are of."""
    refused = Signal(object)
    """Why no scores (an exception: a :class:`Refusal` is a warning, others an error)."""

    def __init__(
        self, owner: QWidget, button: PushButton, say: Any, finished: SignalInstance
    ) -> None:
        super().__init__(owner)
        self.owner, self.button, self.say, self.finished = owner, button, say, finished
        self.bar = QProgressBar()
        self.bar.setRange(0, PROGRESS_STEPS)
        self.bar.hide()  # shown while a stack is scored
        self.worker: GeneratorWorker | None = None
        self.stop = threading.Event()
        self._scoring: Scoring | None = None

    def start(self, scoring: Scoring) -> None:
        """Score every slice of ``scoring`` in a worker thread."""
        self.stop, self._scoring = threading.Event(), scoring
        self.say("Scoring every slice…")
        self.button.text = "Cancel"
        self.bar.show()
        self.worker = start_job(
            self.owner,
            stack_job(scoring, self.stop),
            "Evaluation",
            self.stop,
            on_yield=lambda _: None,
            on_result=self._on_result,
            on_finish=self._on_finish,
            release=lambda: None,
            bar=self.bar,
            progress_of=stack_progress,
        )

    def _on_result(self, result: JobResult) -> None:
        if result.cancelled or self.stop.is_set():  # also when cancelled in its last step:
            self.say("Scoring cancelled: no scores shown.")  # the panel was cleared meanwhile
            return
        try:
            if result.error:
                raise ValueError(result.error)
            assert self._scoring is not None  # set by start
            self.shown.emit((with_notes(self._scoring, *result.value), self._scoring))
        except ValueError as error:
            self.refused.emit(error)

    def _on_finish(self) -> None:
        self.worker, self._scoring = None, None
        self.button.text, self.button.enabled = EVALUATE, True  # disabled while cancelling
        self.bar.hide()
        self.finished.emit()


def slice_in_view(viewer: napari.Viewer, prediction: napari.layers.Labels) -> tuple[int, ...]:
    """The index of the stack slice of ``prediction`` in view (its own coordinates,
    clipped to the stack: a deeper layer's slider may go past it)."""
    shape = prediction.data.shape
    point = prediction.world_to_data(viewer.dims.point)
    return tuple(
        int(np.clip(round(value), 0, size - 1))
        for value, size in zip(point[: len(shape) - 2], shape)
    )

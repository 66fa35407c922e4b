"""Evaluate's memory of earlier scores: what the same scoring gave another model's mask.

A biologist evaluates, fine-tunes, predicts and evaluates again to see whether the run
helped; the panel showed only the new scores. It now keeps the last scores of each
scoring (image, ground truth, metrics, slice, strokes left out or not) with the model
that made the scored mask, and says what they were when a mask of another model is
scored the same way.

Scored *only away from the strokes*, the pixels left out are those near the strokes of
the time. Strokes painted since leave out other pixels, so the earlier scores are not of
the same region: the earlier mask (kept for the last two models of a scoring of one plane)
is scored again on today's region, and without it (a stack's slices, or an older model)
the line says why it compares nothing. A mask scored before only with the other choice of
*only away from the strokes* is scored again the way of now.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ..core.continuity import LINEAGE_KEY
from ._evaluate_job import Scoring, score_now
from ._evaluate_text import headline
from ._last_mask import MODEL_NAME_KEY

MASKS_KEPT = 2
"""Per scoring of one plane, the last models whose scored masks are kept, to be scored
again when the strokes or the choice of *only away from the strokes* changed."""

MASK_BYTES = 256 * 2**20
"""At most this much memory in kept masks, for all scorings: the oldest let theirs go."""


@dataclass(frozen=True)
class MaskMaker:
    """The model that predicted a mask, as Predict recorded it on the layer.

    Attributes
    ----------
    lineage : list of str or None
        Its lineage (:func:`~napari_unet.core.continuity.lineage`); None: unrecorded.
    name : str
        Its name as the dock showed it ("" unrecorded).
    """

    lineage: list[str] | None
    name: str

    def other_model_words(self, current: list[str] | None, current_name: str) -> str:
        """A line when the mask is not the current model's (lineage ``current``, None:
        no model yet), e.g. after Go back: whose it is and how to score the current one."""
        if self.lineage is None or current is None or self.lineage == current:
            return ""
        whose = f"“{self.name}”'s" if self.name else "another model's"
        return (
            f"This is {whose} mask, not the current model “{current_name}”'s: Predict "
            "again to score it."
        )


def mask_maker(mask: Any) -> MaskMaker:
    """What Predict recorded on the mask layer ``mask`` (None: no mask) of its model."""
    metadata = {} if mask is None else mask.metadata
    recorded = metadata.get(LINEAGE_KEY)
    return MaskMaker(
        None if recorded is None else list(recorded), str(metadata.get(MODEL_NAME_KEY, ""))
    )


@dataclass(frozen=True)
class ScoringKey:
    """What makes two scorings comparable.

    Attributes
    ----------
    image, truth : str
        The layers' unique ids.
    kind : str
        "instances", "membranes" or "semantic".
    index : tuple of int or None
        The stack slice scored (None: a 2-D image, or every slice).
    away : bool
        Whether the pixels near the strokes were left out.
    """

    image: str
    truth: str
    kind: str
    index: tuple[int, ...] | None
    away: bool


@dataclass(frozen=True)
class _Scored:
    lineage: tuple[str, ...]
    model_name: str
    headline: str
    rand_errors: tuple[float, ...] = ()  # each slice's, of a stack's membranes
    region: str = ""  # digest of the strokes left out ("" when none were)
    predicted: np.ndarray | None = None  # the mask scored (one plane), to score again


def region_digest(scoring: Scoring | None) -> str:
    """A digest of the strokes whose neighbourhood ``scoring`` leaves out ("": none)."""
    if scoring is None or scoring.strokes is None:
        return ""
    strokes = np.ascontiguousarray(scoring.strokes != 0)
    return hashlib.sha1(strokes.tobytes() + str(strokes.shape).encode()).hexdigest()


class ScoreMemory:
    """The last scores of each :class:`ScoringKey` for each model whose mask they scored.

    Parameters
    ----------
    models : int
        How many models' scores are kept per key (the oldest go first).
    """

    def __init__(self, models: int = 8) -> None:
        self._kept: dict[ScoringKey, list[_Scored]] = {}
        self._models = models
        self._first_scored: dict[tuple[str, ...], int] = {}  # lineage: order of first scoring

    def compare(
        self,
        key: ScoringKey,
        lineage: list[str] | None,
        model_name: str,
        scores: dict[str, Any],
        slice_name: Callable[[int], str] = str,
        scoring: Scoring | None = None,
    ) -> str:
        """Remember ``scores`` under ``key``; return what the scoring last gave another
        model's mask (another ``lineage``): "Before, with “nuclei”: F1 0.882, mean matched
        IoU 0.837.", else "". A mask of unknown lineage (None) compares with nothing and is
        not kept. Membranes over a stack's slices also name the slice whose Rand error
        rose the most (``slice_name``: its words from its flat index), which a mean hides.
        ``scoring``: what was scored, whose strokes (left out) must be those of the earlier
        scores; else the earlier mask is scored again on this region (see the module)."""
        if lineage is None:
            return ""
        made_by, region = tuple(lineage), region_digest(scoring)
        self._first_scored.setdefault(made_by, len(self._first_scored))
        kept = [entry for entry in self._kept.get(key, []) if entry.lineage != made_by]
        earlier = next((entry for entry in reversed(kept) if entry.headline), None)
        # a copy: the user may paint on the mask layer, whose data the scoring reads
        mask = np.array(scoring.predicted) if scoring is not None and _rescorable(scoring) else None
        now = _Scored(
            made_by, model_name, headline(scores), tuple(scores.get("rand_errors", ())),
            region, mask,
        )  # fmt: skip
        self._remember(key, [*kept, now])
        again, other_choice = "", earlier is None
        if other_choice:  # scored before only with the other choice of "away"?
            earlier = self._other_choice(key, made_by)
        if earlier is None:
            return ""
        if other_choice or earlier.region != region:
            rescored = _scored_again(earlier, scoring)
            if rescored is None:  # of the other choice: nothing to say of other strokes
                return "" if other_choice else _not_compared(earlier.model_name)
            where = "away from today's strokes" if key.away else "on all of it"
            earlier, again = rescored, f" (its mask scored again, {where})"
        later = self._first_scored[earlier.lineage] > self._first_scored[made_by]
        name = _whose(earlier.model_name, model_name, later)
        worst = _worst_slice(earlier, now, slice_name)
        return f"Before{name}{again}: {earlier.headline}.{worst}"

    def _remember(self, key: ScoringKey, kept: list[_Scored]) -> None:
        """Keep ``kept`` (oldest first) under ``key``: the masks of the last
        :data:`MASKS_KEPT` entries, the scores of the last ``models``."""
        older = len(kept) - MASKS_KEPT  # these let their masks go
        kept = [
            replace(entry, predicted=None) if at < older else entry for at, entry in enumerate(kept)
        ]
        self._kept.pop(key, None)  # to the end: the keys in the order they were last scored
        self._kept[key] = kept[-self._models :]
        self._trim_masks()

    def _trim_masks(self) -> None:
        """Let the oldest masks go beyond :data:`MASK_BYTES` (the entries of a key are
        oldest first; keys in the order they were last scored)."""
        held = [
            (key, at, entry.predicted.nbytes)
            for key, entries in self._kept.items()
            for at, entry in enumerate(entries)
            if entry.predicted is not None
        ]
        total = sum(size for *_, size in held)
        for key, at, size in held:  # oldest keys first
            if total <= MASK_BYTES:
                return
            self._kept[key][at] = replace(self._kept[key][at], predicted=None)
            total -= size

    def _other_choice(self, key: ScoringKey, made_by: tuple[str, ...]) -> _Scored | None:
        """The last mask of another model scored like ``key`` but for the choice of
        *Only away from the strokes*, still kept (it is scored again this way)."""
        other = self._kept.get(replace(key, away=not key.away), [])
        return next(
            (e for e in reversed(other) if e.lineage != made_by and e.predicted is not None),
            None,
        )


def _whose(name: str, current_name: str, later: bool) -> str:
    """ ", with “nuclei”": the model ``name`` of the earlier scores. Of the current model's
    name (two fine-tunes of one model), it is "the earlier" or "the later" one (``later``:
    first scored after the current model was, as after Go back)."""
    if not name:
        return ""
    if name != current_name:
        return f", with “{name}”"
    return f", with the {'later' if later else 'earlier'} “{name}”"


def _rescorable(scoring: Scoring) -> bool:
    """Whether ``scoring``'s mask can be scored again in the Qt thread (one plane)."""
    return scoring.predicted.ndim == 2 or scoring.index is not None


def _scored_again(earlier: _Scored, scoring: Scoring | None) -> _Scored | None:
    """``earlier``'s mask scored as ``scoring`` is (away from today's strokes); None
    when that mask was not kept or does not fit."""
    mask = earlier.predicted
    if scoring is None or mask is None or mask.shape != scoring.predicted.shape:
        return None
    if scoring.predicted.ndim > 2 and scoring.index is None:
        return None  # a whole stack is scored in a worker, not here
    try:
        scores = score_now(replace(scoring, predicted=mask))
    except ValueError:
        return None
    return replace(earlier, headline=headline(scores), rand_errors=())


def _not_compared(model_name: str) -> str:
    """Why no "Before" line: the earlier scores left out the pixels near other strokes."""
    whose = f"“{model_name}”'s" if model_name else "The earlier"
    return (
        f"{whose} scores are not compared: they left out the pixels near the strokes of "
        "then, not of now (Go back and Predict to score it here)."
    )


def _worst_slice(earlier: _Scored, now: _Scored, slice_name: Callable[[int], str]) -> str:
    """ " Slice 8's rand error rose the most: 0.0410 → 0.0803." ("" when none rose)."""
    if not now.rand_errors or len(now.rand_errors) != len(earlier.rand_errors):
        return ""
    rises = np.subtract(now.rand_errors, earlier.rand_errors)
    worst = int(np.argmax(rises))
    if rises[worst] < 5e-5:  # as shown, to 4 decimals: none rose
        return ""
    name = slice_name(worst)
    return (
        f" {name[0].upper()}{name[1:]}'s rand error rose the most: "
        f"{earlier.rand_errors[worst]:.4f} → {now.rand_errors[worst]:.4f}."
    )

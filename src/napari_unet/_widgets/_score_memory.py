"""Evaluate's memory of earlier scores: what the same scoring gave another model's mask.

A biologist evaluates, fine-tunes, predicts and evaluates again to see whether the run
helped; the panel showed only the new scores. It now keeps the last scores of each
scoring (image, ground truth, metrics, slice, strokes left out or not) with the model
that made the scored mask, and says what they were when a mask of another model is
scored the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..core.continuity import LINEAGE_KEY
from ._evaluate_text import headline
from ._last_mask import MODEL_NAME_KEY


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

    def compare(
        self,
        key: ScoringKey,
        lineage: list[str] | None,
        model_name: str,
        scores: dict[str, Any],
        slice_name: Callable[[int], str] = str,
    ) -> str:
        """Remember ``scores`` under ``key``; return what the scoring last gave another
        model's mask (another ``lineage``): "Before, with “nuclei”: F1 0.882, mean matched
        IoU 0.837.", else "". A mask of unknown lineage (None) compares with nothing and is
        not kept. Membranes over a stack's slices also name the slice whose Rand error
        rose the most (``slice_name``: its words from its flat index), which a mean hides."""
        if lineage is None:
            return ""
        made_by = tuple(lineage)
        kept = [entry for entry in self._kept.get(key, []) if entry.lineage != made_by]
        earlier = next((entry for entry in reversed(kept) if entry.headline), None)
        now = _Scored(made_by, model_name, headline(scores), tuple(scores.get("rand_errors", ())))
        kept.append(now)
        self._kept[key] = kept[-self._models :]
        if earlier is None:
            return ""
        name = f", with “{earlier.model_name}”" if earlier.model_name else ""
        return f"Before{name}: {earlier.headline}.{_worst_slice(earlier, now, slice_name)}"


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

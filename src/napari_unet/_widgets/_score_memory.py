"""Evaluate's memory of earlier scores: what the same scoring gave another model's mask.

A biologist evaluates, fine-tunes, predicts and evaluates again to see whether the run
helped; the panel showed only the new scores. It now keeps the last scores of each
scoring (image, ground truth, metrics, slice, strokes left out or not) with the model
that made the scored mask, and says what they were when a mask of another model is
scored the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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
        self, key: ScoringKey, lineage: list[str] | None, model_name: str, scores: dict[str, Any]
    ) -> str:
        """Remember ``scores`` under ``key``; return what the scoring last gave another
        model's mask (another ``lineage``): "Before, with “nuclei”: F1 0.882, mean matched
        IoU 0.837.", else "". A mask of unknown lineage (None) compares with nothing and is
        not kept."""
        if lineage is None:
            return ""
        made_by = tuple(lineage)
        kept = [entry for entry in self._kept.get(key, []) if entry.lineage != made_by]
        earlier = next((entry for entry in reversed(kept) if entry.headline), None)
        kept.append(_Scored(made_by, model_name, headline(scores)))
        self._kept[key] = kept[-self._models :]
        if earlier is None:
            return ""
        name = f", with “{earlier.model_name}”" if earlier.model_name else ""
        return f"Before{name}: {earlier.headline}."

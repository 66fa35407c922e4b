"""The words of the Evaluate panel (:mod:`._evaluate`): its scores, the slice they are of,
what a class mask's values mean, and how to use an image layer as the ground truth."""

from __future__ import annotations

from typing import Any

import numpy as np

from .._words import percent

__all__ = [
    "KINDS",
    "KIND_TOOLTIP",
    "convert_hint",
    "flat_slice_words",
    "format_scores",
    "headline",
    "nothing_left_words",
    "slice_words",
]


KINDS = {
    "instances": ("instances", "objects matched one-to-one by IoU (F1, precision, recall)"),
    "membranes": ("mask", "ISBI 2012: pixel error, Rand error, information error"),
    "semantic": ("mask", "IoU and Dice per class"),
}

KIND_TOOLTIP = (
    "instances: the truth is a label image, 0 = background and one value per object; a "
    "binary mask (one value) is read as its connected components.\n"
    "membranes: the truth is a membrane map (ISBI: 0 = membrane, 255 = interior; or "
    "1 = membrane, 2 = interior as painted).\n"
    "semantic: the truth is a class mask as painted in Annotate: 0 = not scored, "
    "1 = background, 2.. = the model's classes. A 0/1 mask (for a model with one class "
    "besides background) is read as 0 = background, 1 = class 2."
)


def convert_hint(name: str) -> str:
    """How to use the image layer ``name`` as the ground truth."""
    return (
        f"“{name}” is an image layer: to use it as the ground truth, right-click it "
        "in the layer list and choose Convert to Labels."
    )


def slice_words(index: tuple[int, ...]) -> str:
    """A stack slice as the user finds it with the slider: "slice 7" (a 3D stack), or
    "slice (2, 7)" (one index per leading axis)."""
    return f"slice {index[0]}" if len(index) == 1 else f"slice {tuple(index)}"


def flat_slice_words(flat: int, leading: tuple[int, ...]) -> str:
    """:func:`slice_words` of a stack's slice given by its ``flat`` index over the
    ``leading`` axes (those before Y, X)."""
    return slice_words(tuple(int(i) for i in np.unravel_index(flat, leading)))


def nothing_left_words(kind: str) -> str:
    """Why "Only away from the strokes" left nothing to score of the plane."""
    what = "no true object is" if kind == "instances" else "no pixel of the ground truth is"
    return (
        f"Nothing to score: {what} left away from the strokes on this plane (after Start "
        "from the prediction they cover all of it). Untick “Only away from the strokes”, "
        "or score another slice."
    )


def away_words(scores: dict[str, Any], painted: bool) -> str:
    """What "Only away from the strokes" left out of ``scores`` (``painted``: whether the
    scored plane has strokes at all)."""
    if not painted:
        return "no strokes here: all of it scored"
    share = f"{percent(scores.get('ignored_fraction', 0.0), whole=True)} of the pixels"
    if "left_out_true" not in scores:
        return f"away from the strokes: {share} near them left out"
    objects = scores["left_out_true"]
    noun = "object" if objects == 1 else "objects"
    return f"away from the strokes: {objects} true {noun} near them left out ({share})"


def format_scores(scores: dict[str, Any]) -> str:
    """A few lines of the headline numbers of :func:`napari_unet.evaluation.metrics.evaluate`."""
    kind = scores.get("kind")
    if kind == "instances":
        row = _at_half(scores)
        if row["tp"] + row["fp"] + row["fn"] == 0:
            return f"No objects, neither true nor predicted: nothing to match{_note(scores)}"
        return (
            f"At IoU 0.5: F1 {row['f1']:.3f}, precision {row['precision']:.3f}, recall "
            f"{row['recall']:.3f} ({row['tp']} matched, {row['fp']} extra, {row['fn']} missed); "
            f"mean matched IoU {row['mean_matched_iou']:.3f}{_note(scores)}"
        )
    if kind == "membranes":
        return _errors(scores, ("pixel_error", "rand_error", "info_error")) + _note(scores)
    numbers = {k: v for k, v in scores.items() if isinstance(v, float) and k != "ignored_fraction"}
    lines = [_class_ious(scores), *(f"{k.replace('_', ' ')} {v:.4f}" for k, v in numbers.items())]
    return "; ".join(lines) + _note(scores)


def headline(scores: dict[str, Any]) -> str:
    """The figures of :func:`format_scores` that a before-and-after reads: F1 and mean
    matched IoU at IoU 0.5, the membranes' pixel and Rand errors, or each class's IoU;
    "" when there are none."""
    kind = scores.get("kind")
    if kind == "instances":
        row = _at_half(scores)
        if row["tp"] + row["fp"] + row["fn"] == 0:
            return ""
        return f"F1 {row['f1']:.3f}, mean matched IoU {row['mean_matched_iou']:.3f}"
    if kind == "membranes":
        return _errors(scores, ("pixel_error", "rand_error"))
    return _class_ious(scores)


def _at_half(scores: dict[str, Any]) -> dict[str, Any]:
    """The instance scores' row at IoU 0.5."""
    return next(r for r in scores["instances"] if abs(r["threshold"] - 0.5) < 1e-9)


def _errors(scores: dict[str, Any], keys: tuple[str, ...]) -> str:
    """``"pixel error 0.0854, rand error 0.0410"``: the ``keys`` the scores hold."""
    return ", ".join(f"{key.replace('_', ' ')} {scores[key]:.4f}" for key in keys if key in scores)


def _class_ious(scores: dict[str, Any]) -> str:
    """``"class 1: IoU 0.900, class 2: IoU 0.750"``."""
    return ", ".join(f"class {k}: IoU {v:.3f}" for k, v in scores.get("iou", {}).items())


def _note(scores: dict[str, Any]) -> str:
    """`` (note)`` when the scores carry a note, else ""."""
    return f" ({scores['note']})" if scores.get("note") else ""

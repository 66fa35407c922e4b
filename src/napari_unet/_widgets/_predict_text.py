"""What the Predict section says: its tile-size choices, its progress and how a run ended.

Slices are named as napari's dims sliders number them: from 0, the slider showing
the slice in view and the last one ("5 | 19" for slice 5 of a 20-slice stack), so
the progress says "slice 5 of 0–19".
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .._words import counted
from ..core.tile_choice import TileChoice
from ..evaluation.review import class_names
from ..training.distillation import has_been_trained

if TYPE_CHECKING:
    from ._predict_job import PredictionProgress

RUNNING_FORMAT = "%p%"
"""The Predict section's bar while a run goes, and after it finished: the share done."""

SEE_THROUGH_OPACITY = 0.35
"""The opacity Start from the prediction (Annotate) gives the annotation layer it fills, so
that the image, and later the mask, show through it."""

AUTOMATIC = "Automatic"
"""The first tile-size choice: the model's default tile, for the image in view."""


def count_words(done: int, total: int, word: str) -> str:
    """``"3 of 12 tiles"``; ``"1 of 1 tile"``."""
    return f"{done} of {total} {word}{'' if total == 1 else 's'}"


def slice_words(plane: tuple[int, ...], leading_shape: tuple[int, ...]) -> str:
    """A slice as napari's sliders show it: ``"5 of 0–19"`` (``"1, 5 of 0–1, 0–19"``
    with two stack axes)."""
    where = ", ".join(str(index) for index in plane)
    last = ", ".join(f"0–{size - 1}" for size in leading_shape[: len(plane)])
    return f"{where} of {last}"


def tile_choice_label(choice: TileChoice, per_slice: bool, automatic: bool = False) -> str:
    """The text of one tile-size choice: ``"444 px (4 tiles)"``, ``"100 px (1,024 tiles)"``,
    ``"whole image (1 tile)"``, or, for the default, ``"Automatic (444 px, 4 tiles)"`` /
    ``"Automatic (whole image, 1 tile)"``. A size is the tile's input edge, its context
    included (the tooltip gives the whole image's: :func:`tile_size_tooltip`)."""
    if choice.size is None:
        one = "1 tile a slice" if per_slice else "1 tile"
        return f"{AUTOMATIC} (whole image, {one})" if automatic else f"whole image ({one})"
    tiles = choice.tiles
    count = "" if tiles is None else f"{tiles:,} tile{'' if tiles == 1 else 's'}"
    if count and per_slice:
        count += " a slice"
    if automatic:
        return f"{AUTOMATIC} ({choice.size} px{', ' + count if count else ''})"
    return f"{choice.size} px" + (f" ({count})" if count else "")


TILE_SIZE_TOOLTIP = (
    "Input tile edge in pixels, context included (overlap-tile strategy). Only the sizes "
    "that tile the chosen image differently are offered, with their tiles per slice; "
    "Automatic is the model's default tile for the free memory."
)
"""The tile-size box's tooltip, before an image is chosen."""


def tile_size_tooltip(whole: tuple[int, int] | None) -> str:
    """The tile-size box's tooltip for an image whose padded input as one tile is ``whole``
    (None: no image): larger than the image by the context every tile carries."""
    if whole is None:
        return TILE_SIZE_TOOLTIP
    return (
        f"{TILE_SIZE_TOOLTIP} As one tile, the whole image goes in as {_pixels(whole)}: "
        "the image with the context mirrored around it."
    )


def _pixels(shape: tuple[int, int]) -> str:
    """``"572 px"`` for a square, ``"572×636 px"`` otherwise."""
    return f"{shape[0]} px" if shape[0] == shape[1] else f"{shape[0]}×{shape[1]} px"


def cancelled_text(last: PredictionProgress | None) -> str:
    """The status line after Cancel: how far the run got (``last``: its last update)."""
    kept = "; the output layers were left as they were."
    if last is None or (last.stage == "tiles" and not last.tiles_done and not last.planes_done):
        return "Cancelled before the first tile was predicted" + kept
    if last.stage != "tiles":
        done = "all tiles predicted" if last.planes == 1 else f"all {last.planes} slices predicted"
        if last.planes > 1:
            done += f", {count_words(last.planes_done, last.planes, 'slice')} post-processed"
        return f"Cancelled while post-processing ({done})" + kept
    if last.planes == 1:
        return f"Cancelled after {count_words(last.tiles_done, last.tiles, 'tile')}" + kept
    slices = count_words(last.planes_done, last.planes, "slice")
    return (
        f"Cancelled after {slices} (and {count_words(last.tiles_done, last.tiles, 'tile')} "
        f"of slice {last.planes_done})" + kept
    )


def cancelled_bar_text(last: PredictionProgress | None) -> str:
    """The bar's words after Cancel (the status line says more): ``"Cancelled after 3 of
    12 tiles"``, ``"Cancelled after 5 of 20 slices"``, ``"Cancelled while post-processing"``."""
    if last is None:
        return "Cancelled before the first tile"
    if last.stage != "tiles":
        return "Cancelled while post-processing"
    if last.planes == 1:
        return f"Cancelled after {count_words(last.tiles_done, last.tiles, 'tile')}"
    return f"Cancelled after {count_words(last.planes_done, last.planes, 'slice')}"


def covered_words(strokes: Any, plane: tuple[int, ...]) -> str:
    """A sentence when the annotation layer ``strokes``, on top, covers most of the
    ``plane`` in view (after Start from the prediction) and so hides the new mask; "" else."""
    if not strokes.visible or strokes.opacity <= SEE_THROUGH_OPACITY:
        return ""
    painted = np.asarray(strokes.data[plane])
    if np.count_nonzero(painted) < painted.size / 2:
        return ""
    return (
        f" “{strokes.name}” covers most of this slice on top of the mask: hide it or lower "
        "its opacity to see the mask."
    )


def shown_words(mask_name: str, outputs: list[str]) -> str:
    """The status line's sentence on the layers after a run: the mask shown, the other
    ``outputs`` (their kinds) hidden, the uncertainty with what it is for."""
    hidden = ["instances", *(kind for kind in outputs if kind not in ("instances", "mask"))]
    hint = " (bright where the model is unsure: paint there next)"
    return (
        f" Shown: “{mask_name}”; hidden: {', '.join(hidden)}"
        + (hint if "uncertainty" in outputs else "")
        + "."
    )


REUSED_WORDS = (
    " Post-processed the last run's probabilities again (image, model and network"
    " settings unchanged)."
)
"""Said after a run that only post-processed (:mod:`._predict_reuse`)."""


def done_head(planes: int, objects: int, model: str | None = None) -> str:
    """How the status line after a run starts: ``"Done with “nuclei”: 2454 objects."``, or
    for a stack ``"Done with “nuclei”: 20 slices, 2454 objects (numbered through the
    stack)."``; the model named when known (the one chosen in the Model section may not be
    the one loaded)."""
    done = f"Done with “{model}”:" if model else "Done:"
    if planes > 1:
        return f"{done} {planes} slices, {counted(objects, 'object')} (numbered through the stack)."
    return f"{done} {counted(objects, 'object')}."


def changes_sentence(described: str, planes: int, marked: str) -> str:
    """The status line's sentence on the objects split or joined since the last mask
    (``described``: :meth:`~napari_unet.evaluation.review.ObjectChanges.describe`),
    named as totals over a stack's slices."""
    if planes > 1:
        return f" Over all {planes} slices, {described}{marked}."
    return f" {described[0].upper()}{described[1:]}{marked}."


def memory_status(refusal: str, smaller_fits: int | None) -> str:
    """The status line when a run is refused for memory: the reason (``refusal``, the
    notification's words) and, when a smaller tile fits, which."""
    text = f"Not started: not enough memory. {refusal}"
    if smaller_fits is not None:
        text += f" A tile size of {smaller_fits} px or smaller would fit."
    return text


def at_chance_text(mask: np.ndarray, model: Any) -> str:
    """The status line's reason for a mask of one class from ``model`` (None: unknown)
    that is still learning (:func:`~napari_unet.training.distillation.has_been_trained`
    false): it has not learnt yet;
    "" otherwise (a trained model, say a bundled one, may rightly see one class only)."""
    if model is None or mask.size == 0:
        return ""
    if has_been_trained(model):
        return ""
    only = int(mask.flat[0])
    if np.any(mask != only):
        return ""
    name = class_names(model).get(only, f"class {only}")
    if not model.info.training_history:  # never trained: "further" would mislead
        return (
            f" The model calls everything {name}: it is untrained. Paint strokes of each "
            "class (Annotate), then press Start in Fine-tune."
        )
    return f" The model still calls everything {name}: train it further (Fine-tune → Start)."

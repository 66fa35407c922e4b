"""What the Model section says of a model, as rich text: a summary in a user's words and,
behind a button, how the model is built and was trained."""

from __future__ import annotations

import html
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import napari
import numpy as np

from ..core.engine import TEST_TIME_TRANSFORM_WORDS
from ..core.inference import default_tile_size
from ..core.metadata import TrainingRun
from ..core.model import UNet
from ..core.trained_on import trained_on_words
from ._last_mask import continued_masks
from ._layers import class_colour, is_annotation


def describe_model(model: UNet, name: str, saved_as: Path | None = None) -> str:
    """Rich-text summary of the current model, in a user's words: what it segments, its
    classes, what it was trained on and what Predict adds for it; the file it was just
    saved to (``saved_as``), if it has not changed since.

    How it is built and trained is :func:`model_details`'s."""
    info = model.info
    config = model.config
    names = info.class_names
    classes = " · ".join(
        f"<span style='color:{class_colour(label)}'>■</span> {label} "
        f"{html.escape(names[label - 1] if label <= len(names) else f'class {label}')}"
        for label in range(1, config.n_classes + 1)
    )
    lines = [
        f"Current model: <b>{html.escape(name)}</b>",
        f"Saved as “{html.escape(saved_as.name)}” in {html.escape(str(saved_as.parent))}"
        if saved_as
        else "",
        html.escape(str(info.description or "")),
        f"Classes (label values): {classes}",
        f"Trained on: {html.escape(trained_on_words(info, more=': Show details'))}",
    ]
    if info.parent:
        lines.append(f"Started from: {html.escape(str(info.parent))}")
    if info.background_threshold != 0.5:
        background = html.escape(names[0] if names else "background")
        lines.append(
            f"Predict calls a pixel {background} only above p = "
            f"{info.background_threshold:.2f} (objects grow into the rest, never joining)"
        )
    if not info.close_gaps:
        lines.append(
            "Predict leaves the gaps in its boundaries open (they are too thick to need it)"
        )
    if info.test_time_augmentation:
        averaged = TEST_TIME_TRANSFORM_WORDS[info.test_time_transforms]
        lines.append(
            f"Predict averages its {averaged} (test-time augmentation: ticked in Predict "
            "for this model)"
        )
    return "<br>".join(line for line in lines if line)


def kept_separations_words(masks: list[str]) -> str:
    """After Save: the ``masks`` that keep separations of the masks before them (Predict
    after a fine-tune), which a prediction from the saved file alone does not draw; ""
    when there are none."""
    if not masks:
        return ""
    names = ", ".join(f"“{name}”" for name in masks)
    keep = "keeps" if len(masks) == 1 else "keep"
    return (
        f" {names} also {keep} separations of the mask before (Predict after a fine-tune), "
        "which a prediction from this file alone does not draw: save the mask layer too "
        "(File → Save Selected Layers) to keep them."
    )


def after_save_words(viewer: napari.Viewer, model: UNet) -> str:
    """What Save's notice adds: the masks with separations the file does not draw
    (:func:`kept_separations_words`), the strokes it does not keep
    (:func:`unsaved_strokes_words`)."""
    return kept_separations_words(continued_masks(viewer, model)) + unsaved_strokes_words(
        viewer.layers
    )


def unsaved_strokes_words(layers: Iterable[Any]) -> str:
    """After Save: the annotation layers holding strokes, which the model's file does not
    keep; "" when there are none."""
    names = [
        layer.name for layer in layers if is_annotation(layer) and np.any(np.asarray(layer.data))
    ]
    if not names:
        return ""
    listed = ", ".join(f"“{name}”" for name in names)
    return (
        f" The strokes are not in the model's file: to paint on later, save {listed} too "
        "(File → Save Selected Layers, under the name proposed) and open it beside its image."
    )


def model_details(model: UNet) -> str:
    """Rich-text details of a model: architecture, input sizes, its last training runs."""
    return "<br>".join(
        [
            html.escape(model.describe()),
            f"Default tile {default_tile_size(model)} px; valid input sizes "
            f"{model.min_input_size} + {model.size_multiple}·k",
            _history_text(model.info.training_history),
        ]
    )


def _history_text(history: tuple[TrainingRun, ...]) -> str:
    if not history:
        return "Training history: none in this file"
    items = []
    for entry in history[-3:]:
        counts = entry.annotated_pixels or {}
        painted = ", ".join(f"label {k}: {v:,} px" for k, v in counts.items())
        image = f" on “{html.escape(entry.image_layer)}”" if entry.image_layer else ""
        iterations = entry.iterations
        items.append(
            f"{html.escape(_when(entry.date))}{image}: "
            f"{_or_unknown(f'{iterations:,}' if isinstance(iterations, int) else iterations)} "
            f"iterations in {_duration(entry.seconds)}, {_loss_words(entry)} ({painted})"
        )
    earlier = f" ({len(history) - 3} earlier)" if len(history) > 3 else ""
    return f"Training history{earlier}:<br>&nbsp;• " + "<br>&nbsp;• ".join(items)


def _loss_words(run: TrainingRun) -> str:
    """The smoothed loss of the weights a run kept (its best, which the Fine-tune section's
    status line gives), else its final one: "kept loss 0.653", "loss 0.66247"."""
    if isinstance(run.kept_smoothed_loss, (int, float)):
        return f"kept loss {run.kept_smoothed_loss:.3g}"
    return f"loss {run.final_smoothed_loss}"


def _or_unknown(value: Any) -> Any:
    return "?" if value is None else value


def _when(date: Any) -> str:
    """A recorded ISO date as "2026-12-02 00:59 UTC" (to the minute); as read otherwise."""
    try:
        moment = datetime.fromisoformat(str(date))
    except ValueError:
        return str(_or_unknown(date))
    if moment.utcoffset() is not None:
        return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return moment.strftime("%Y-%m-%d %H:%M")


def _duration(seconds: Any) -> str:
    """Seconds as "45 s", "12.5 min" or "2.1 h"; "? s" when unknown or not a number."""
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        return "? s"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.3g} min"
    return f"{seconds / 3600:.3g} h"

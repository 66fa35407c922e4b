"""What the Model section says of a model, as rich text: a summary in a user's words and,
behind a button, how the model is built and was trained."""

from __future__ import annotations

import html
from datetime import datetime, timezone
from typing import Any

from ..core.engine import TEST_TIME_TRANSFORM_WORDS
from ..core.inference import default_tile_size
from ..core.metadata import ModelMetadata, TrainingRun
from ..core.model import UNet
from ._layers import class_colour


def describe_model(model: UNet, name: str) -> str:
    """Rich-text summary of the current model, in a user's words: what it segments, its
    classes, what it was trained on and what Predict adds for it.

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
        html.escape(str(info.description or "")),
        f"Classes (label values): {classes}",
        f"Trained on: {html.escape(_trained_on(info))}",
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
        lines.append(f"Predict averages its {averaged} (test-time augmentation)")
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


def _trained_on(info: ModelMetadata) -> str:
    if info.trained_on:
        return str(info.trained_on) + _napari_runs(info)
    if info.training_history:
        return _strokes_trained_on(info.training_history)
    return "nothing yet (random weights)"


def _strokes_trained_on(history: tuple[TrainingRun, ...]) -> str:
    """What a model trained only from strokes (no ``trained_on``) learnt from: "strokes on
    “coins” in napari (2 runs, 353 iterations)"; the runs alone when none names a layer."""
    layers = [run.image_layer for run in history if run.image_layer]
    iterations = sum(run.iterations for run in history if isinstance(run.iterations, int))
    runs = f"{len(history)} run{'s' if len(history) > 1 else ''}, {iterations:,} iterations"
    if not layers:
        return f"its training runs only ({runs}: Show details)"
    names = ", ".join(f"“{name}”" for name in dict.fromkeys(layers))  # escaped by the caller
    return f"strokes on {names} in napari ({runs})"


def _napari_runs(info: ModelMetadata) -> str:
    """ "; then fine-tuned in napari on “cells” (2 runs)": the Fine-tune widget's runs,
    which ``trained_on`` (what it was trained on before them) does not name."""
    layers = [run.image_layer for run in info.training_history if run.image_layer]
    if not layers:
        return ""
    names = ", ".join(f"“{name}”" for name in dict.fromkeys(layers))
    runs = f"{len(layers)} run{'s' if len(layers) > 1 else ''}"
    return f"; then fine-tuned in napari on {names} ({runs})"


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

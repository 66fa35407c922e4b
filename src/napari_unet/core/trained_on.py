"""What a model was trained on, in words: the Model section and bioimage.io packages say it."""

from __future__ import annotations

from .metadata import ModelMetadata, TrainingRun

__all__ = ["trained_on_words"]


def trained_on_words(info: ModelMetadata, more: str = "") -> str:
    """What ``info``'s model learnt from, in plain words (no markup).

    ``trained_on`` describes the training before any run of the Fine-tune widget (those
    name their image layer): a bundled model's "…; held out, never used: ISBI slices
    17-19". Fine-tunes after it come first, "strokes on “17” in napari (1 run),
    fine-tuning a model trained on: …", so that what it held out reads as the starting
    model's, not as data the fine-tuned model never saw.

    Parameters
    ----------
    info : ModelMetadata
        The model's metadata (``model.info``).
    more : str
        Where to read more of runs that name no image layer, e.g. ": Show details" (a
        button of the Model section): "its training runs only (1 run, 500 iterations: Show
        details)".
    """
    layers = [run.image_layer for run in info.training_history if run.image_layer]
    if info.trained_on and layers:
        return f"{_strokes_on(layers)}, fine-tuning a model trained on: {info.trained_on}"
    if info.trained_on:
        return str(info.trained_on)
    if info.training_history:
        return _runs_only(info.training_history, more)
    return "nothing yet (random weights)"


def _strokes_on(layers: list[str]) -> str:
    """ "strokes on “cells”, “cells 2” in napari (3 runs)": the runs of the Fine-tune
    widget, by the image layers they trained on."""
    return (
        f"strokes on {_names(layers)} in napari ({len(layers)} run{'s' if len(layers) > 1 else ''})"
    )


def _runs_only(history: tuple[TrainingRun, ...], more: str) -> str:
    """What a model trained only in runs (no ``trained_on``) learnt from: "strokes on
    “coins” in napari (2 runs, 353 iterations)"; the runs alone when none names a layer."""
    layers = [run.image_layer for run in history if run.image_layer]
    iterations = sum(run.iterations for run in history if isinstance(run.iterations, int))
    runs = f"{len(history)} run{'s' if len(history) > 1 else ''}, {iterations:,} iterations"
    if not layers:
        return f"its training runs only ({runs}{more})"
    return f"strokes on {_names(layers)} in napari ({runs})"


def _names(layers: list[str]) -> str:
    """The layers' names, each once, quoted: "“cells”, “cells 2”"."""
    return ", ".join(f"“{name}”" for name in dict.fromkeys(layers))

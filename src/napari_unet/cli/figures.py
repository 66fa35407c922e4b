"""Matplotlib figures written by the CLI (Agg backend, no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def demo_figure(
    path: Path,
    sample: dict[str, np.ndarray],
    result: dict[str, np.ndarray],
    summary: dict[str, Any],
) -> Path:
    """Image | strokes | prediction | weight map, with the never-painted half's
    before/after scores in the title; ``result`` holds the last round's ``strokes``,
    ``instances`` and ``weight_map``."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    figure = Figure(figsize=(16, 4.8), dpi=100)
    axes = figure.subplots(1, 4)
    image = sample["image"]
    axes[0].imshow(image, cmap="gray")
    axes[0].set_title("image")
    strokes = np.ma.masked_equal(result["strokes"], 0)
    axes[1].imshow(image, cmap="gray")
    axes[1].imshow(strokes, cmap="coolwarm", vmin=1, vmax=2, interpolation="nearest")
    axes[1].set_title("strokes (blue: background, red: nucleus)")
    axes[2].imshow(_label_colours(result["instances"]), interpolation="nearest")
    axes[2].set_title(f"prediction: {int(result['instances'].max())} instances")
    shown = axes[3].imshow(result["weight_map"], cmap="magma")
    axes[3].set_title("weight map w(x) of the prediction")
    figure.colorbar(shown, ax=axes[3], fraction=0.046)
    edge = int(sample["paintable"].any(axis=0).sum()) - 0.5  # painted | never painted
    for axis in axes:
        axis.set_axis_off()
        axis.axvline(edge, color="white", linestyle="--", linewidth=1)
    before, after = summary["before"], summary["after"]
    rounds = len(summary["rounds"]) - 1
    figure.suptitle(
        f"right half, never painted: F1 at IoU 0.5 {before['f1']:.3f} -> {after['f1']:.3f}, "
        f"mean matched IoU {before['mean_matched_iou']:.3f} -> {after['mean_matched_iou']:.3f}"
        f"\nafter {rounds} rounds of strokes on the left half ({summary['scribbled_pixels']} "
        f"pixels) and fine-tuning ({summary['iterations']} iterations each)"
    )
    figure.tight_layout()
    figure.savefig(path)
    return path


def _label_colours(labels: np.ndarray) -> np.ndarray:
    """An RGB image with a random colour per label and black background."""
    palette = np.random.default_rng(0).uniform(0.25, 1.0, (int(labels.max()) + 1, 3))
    palette[0] = 0
    return palette[labels]

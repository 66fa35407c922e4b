"""What the Predict section's output layers show (:func:`output_specs`), the hiding of
other images' outputs that would cover them (:func:`hide_other_outputs`), and the marks
of the objects split or joined since the last mask (:func:`show_changes`)."""

from __future__ import annotations

from typing import Any

import napari
from napari.layers import Image, Labels, Points

from ._layers import ROLE_KEY, WEIGHT_COLORMAP, find_output, is_output, output_role, show_output
from ._predict_job import PredictionResult
from ._predict_text import changes_sentence

#: Width in pixels of the mask's outlines (napari's Labels ``contour``; 0 fills the classes).
MASK_CONTOUR = 2

__all__ = ["hide_other_outputs", "output_specs", "show_changes"]


def output_specs(
    result: PredictionResult, placement: dict[str, Any], class_placement: dict[str, Any]
) -> dict[str, tuple[Any, type, dict[str, Any], dict[str, Any]]]:
    """What each output layer shows: ``kind -> (data, layer type, placement, display)``.

    ``class_placement`` places an array with a leading class axis (the probabilities of
    every class of a model with more than 2); with 2 classes only the foreground's are
    shown. Images are added hidden, with colormaps that start at black (additive
    blending: where they are 0 the image shows unchanged); the mask is shown last, on
    top of them.
    """
    probabilities = result.probabilities
    if probabilities.shape[0] == 2:
        # a copy: a view would keep the unshown background class alive with the layer
        probabilities, class_placement = probabilities[1].copy(), placement
    hidden_image = {"blending": "additive", "visible": False}
    outputs: dict[str, tuple[Any, type, dict[str, Any], dict[str, Any]]] = {}
    outputs["probabilities"] = (
        probabilities,
        Image,
        class_placement,
        {"colormap": "magma", "contrast_limits": (0.0, 1.0), **hidden_image},
    )
    if result.weights is not None:
        top = max(float(result.weights.max()), 1e-6)
        display = {"colormap": WEIGHT_COLORMAP, "contrast_limits": (0.0, top), **hidden_image}
        outputs["weight map"] = (result.weights, Image, placement, display)
    if result.uncertainty is not None:
        display = {"colormap": "inferno", "contrast_limits": (0.0, 1.0), **hidden_image}
        outputs["uncertainty"] = (result.uncertainty, Image, placement, display)
    outputs["instances"] = (result.instances, Labels, placement, {"opacity": 0.6, "visible": False})
    # outlines: strokes painted over the mask stay visible, and two objects merged into one
    # show as one outline around both
    outputs["mask"] = (result.mask, Labels, placement, {"opacity": 0.8, "contour": MASK_CONTOUR})
    return outputs


def hide_other_outputs(viewer: napari.Viewer, image: napari.layers.Layer) -> None:
    """Hide this plugin's outputs of other images (another image's mask would cover this
    one's), unless the viewer shows its layers side by side (grid mode)."""
    canvas = getattr(viewer, "canvas", viewer)  # napari >= 0.9; viewer.grid before
    if canvas.grid.enabled:
        return
    own = output_role(image, "")
    for layer in viewer.layers:
        if is_output(layer) and not str(layer.metadata.get(ROLE_KEY, "")).startswith(own):
            layer.visible = False


def show_changes(
    viewer: napari.Viewer,
    result: PredictionResult,
    image: napari.layers.Image,
    placement: dict[str, Any],
) -> str:
    """Mark the objects split or joined since the last mask in the image's "changes"
    points layer (removed when there is none to mark, or no last mask to compare
    with); returns the sentence for the status line."""
    if result.changes is None or not len(result.changes.points):
        stale = find_output(viewer, image, "changes", Points)
        if stale is not None:
            viewer.layers.remove(stale)
        if result.changes is None:
            return ""
        marked = ""
    else:
        display = {"symbol": "ring", "size": 15, "face_color": "magenta", "opacity": 0.9}
        layer = show_output(
            viewer, image, "changes", result.changes.points, Points,
            placement=placement, **display,
        )  # fmt: skip
        marked = f" (marked in “{layer.name}”)"
    planes = result.mask.size // max(result.mask.shape[-1] * result.mask.shape[-2], 1)
    return changes_sentence(result.changes.describe(), planes, marked)

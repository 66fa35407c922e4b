"""What the Predict section's output layers show (:func:`output_specs`), and the hiding of
other images' outputs that would cover them (:func:`hide_other_outputs`)."""

from __future__ import annotations

from typing import Any

import napari
from napari.layers import Image, Labels

from ._layers import ROLE_KEY, WEIGHT_COLORMAP, is_output, output_role
from ._predict_job import PredictionResult

#: Width in pixels of the mask's outlines (napari's Labels ``contour``; 0 fills the classes).
MASK_CONTOUR = 2

__all__ = ["hide_other_outputs", "output_specs"]


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

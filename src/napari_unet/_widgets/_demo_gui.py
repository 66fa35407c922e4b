"""``napari-unet demo --gui``: napari with the demo sample and the U-Net dock."""

from __future__ import annotations

import napari
import numpy as np

from ._layers import ANNOTATION_KEY, dress_annotation_layer
from ._unet import UNetWidget


def add_demo(
    viewer: napari.Viewer, image: np.ndarray, strokes: np.ndarray
) -> tuple[napari.layers.Labels, UNetWidget]:
    """Add the sample image (Y, X), strokes (Y, X uint8, 1 = background, 2 = nucleus) as
    its annotation layer, and the U-Net dock to ``viewer``; returns the layer and the dock."""
    viewer.add_image(image, name="nuclei", colormap="gray")
    annotations = viewer.add_labels(
        strokes, name="nuclei annotations", metadata={ANNOTATION_KEY: True}
    )
    dress_annotation_layer(annotations, 2)  # as the Annotate section makes one
    widget = UNetWidget(viewer)
    viewer.window.add_dock_widget(widget, name="U-Net", area="right")
    return annotations, widget


def show_demo(image: np.ndarray, strokes: np.ndarray) -> napari.Viewer:
    """Open a viewer with :func:`add_demo`'s layers and dock; run napari."""
    viewer = napari.Viewer(title="napari-unet demo")
    add_demo(viewer, image, strokes)
    napari.run()
    return viewer

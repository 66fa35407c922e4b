"""``napari-unet demo --gui``: napari with the demo sample and the U-Net dock."""

from __future__ import annotations

import napari
import numpy as np

from ._layers import ANNOTATION_KEY, class_colormap
from ._unet import UNetWidget


def show_demo(image: np.ndarray, strokes: np.ndarray) -> napari.Viewer:
    """Open a viewer with the sample image (Y, X), strokes (Y, X uint8, 1 = background,
    2 = nucleus) as its annotation layer and the widgets docked; run napari."""
    viewer = napari.Viewer(title="napari-unet demo")
    viewer.add_image(image, name="nuclei", colormap="gray")
    annotations = viewer.add_labels(
        strokes, name="nuclei annotations", metadata={ANNOTATION_KEY: True}
    )
    annotations.colormap = class_colormap(2)  # the Annotate widget's class colours
    viewer.window.add_dock_widget(UNetWidget(viewer), name="U-Net", area="right")
    napari.run()
    return viewer

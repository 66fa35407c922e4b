"""Layers the Fine-tune section adds while the user paints: its live preview, kept from
taking the user's brush (napari makes a newly added layer the active one)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import napari
import numpy as np
from napari.utils.notifications import show_info

from ..evaluation.review import class_names
from ._geometry import ImageGeometry
from ._layers import ROLE_KEY, find_output, is_output, placement_for, show_output

if TYPE_CHECKING:
    from ._finetune_job import TrainingRequest


@contextmanager
def selection_kept(viewer: napari.Viewer) -> Iterator[None]:
    """Keep the viewer's selected layers, and so its active one, through the block.

    napari selects a layer it adds: a user painting on the annotations while a
    fine-tune shows its preview (or the loss weights appear) would suddenly pan
    instead of paint. Layers removed in the block are left out of the selection.

    Parameters
    ----------
    viewer : napari.Viewer
    """
    selection = viewer.layers.selection
    selected = list(selection)
    try:
        yield
    finally:
        still_there = [layer for layer in selected if layer in viewer.layers]
        if set(selection) != set(still_there):
            selection.intersection_update(still_there)
            selection.update(still_there)  # one layer left selected is the active one again


PREVIEW_PLANE_KEY = "napari_unet_preview_plane"
"""The preview layer's metadata entry naming the one plane it shows (of a stack)."""


def put_preview(
    viewer: napari.Viewer,
    image: napari.layers.Image,
    request: TrainingRequest,
    plane: tuple[int, ...],
    foreground: np.ndarray,
    *,
    show: bool,
) -> napari.layers.Image:
    """Put a plane's foreground probability into the image's ``"<image> preview"`` layer.

    Of a stack, the preview holds that plane only: the plane it showed before, an earlier
    model's (of this run or the last), is cleared, so it shows the mask beneath.

    The layer is created when missing (or of another shape), under the run's annotation
    layer so that the strokes stay visible; the user's selected layers stay selected
    (:func:`selection_kept`). A new layer is explained in a notification
    (:func:`preview_notice`).

    Parameters
    ----------
    viewer : napari.Viewer
    image : napari.layers.Image
        The image fine-tuned on.
    request : TrainingRequest
        The run: the image's geometry, the annotation layer's name, the model's classes.
    plane : tuple of int
        Index of the plane ``foreground`` belongs to (() for a 2D image).
    foreground : numpy.ndarray
        (Y, X) probability of any foreground class.
    show : bool
        Make an existing, hidden preview layer visible again (Predict hides it).

    Returns
    -------
    napari.layers.Image
        The preview layer.
    """
    geometry = request.reader.geometry
    layer = find_output(viewer, image, "preview", napari.layers.Image)
    if layer is not None and layer.data.shape == geometry.spatial_shape:
        _update_preview(layer, plane, foreground, show)
        return layer
    data = np.zeros(geometry.spatial_shape, dtype=np.float32)
    data[plane] = foreground
    layer = _new_preview(viewer, image, geometry, plane, data, request.annotation_name, show)
    show_info(preview_notice(layer.name, request.model))
    return layer


def preview_notice(layer_name: str, model: Any) -> str:
    """What the live preview layer ``layer_name`` shows, in the words of ``model``'s classes:
    the probability of any class but the first, which it draws dark."""
    names = class_names(model)
    shown = [names.get(label, f"label {label}") for label in range(2, model.config.n_classes + 1)]
    first = names.get(1, "background")
    return (
        f"Live preview: “{layer_name}” shows, as it trains, where the model sees "
        f"{' or '.join(shown)}: brighter where it is surer, dark for {first}. Predict hides it."
    )


def _update_preview(
    layer: napari.layers.Image, plane: tuple[int, ...], foreground: np.ndarray, show: bool
) -> None:
    """Put ``foreground`` (Y, X) into the existing preview ``layer`` at ``plane``, clearing
    the plane it showed before (see :func:`put_preview`)."""
    shown = tuple(layer.metadata.get(PREVIEW_PLANE_KEY, plane))
    if shown != plane:  # a stack: the plane shown before is an earlier model's
        layer.data[shown] = 0
    layer.data[plane] = foreground
    layer.metadata[PREVIEW_PLANE_KEY] = plane
    layer.refresh()
    if show:
        layer.visible = True


def _new_preview(
    viewer: napari.Viewer,
    image: napari.layers.Image,
    geometry: ImageGeometry,
    plane: tuple[int, ...],
    data: np.ndarray,
    annotation_name: str,
    show: bool,
) -> napari.layers.Image:
    """The preview layer of ``image``, new, holding ``data`` (the image's spatial shape,
    ``plane`` filled), under the annotation layer ``annotation_name`` (see
    :func:`put_preview`)."""
    with selection_kept(viewer):
        layer = show_output(
            viewer,
            image,
            "preview",
            data,
            napari.layers.Image,
            placement=placement_for(geometry, image),
            colormap="magma",
            contrast_limits=(0.0, 1.0),
            opacity=0.55,
            blending="additive",
        )
        layer.metadata[PREVIEW_PLANE_KEY] = plane
        if show:
            layer.visible = True
        layers = viewer.layers
        if annotation_name in layers and layers.index(annotation_name) < layers.index(layer):
            layers.move(layers.index(layer), layers.index(annotation_name))  # strokes on top
    return layer


def hide_previews(viewer: napari.Viewer) -> None:
    """Hide every live preview, and the rings of what a prediction changed: after Go back
    they show what a model that is no longer current did."""
    for layer in viewer.layers:
        role = str(layer.metadata.get(ROLE_KEY, ""))
        if is_output(layer) and role.endswith((":preview", ":changes")):
            layer.visible = False

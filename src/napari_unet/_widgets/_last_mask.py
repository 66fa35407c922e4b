"""The mask Predict showed last for an image, which the next prediction continues.

After a fine-tune, Predict keeps the separations of the image's mask layer where the
tuned model still supports them (:mod:`napari_unet.core.continuity`). The mask layer
records which model made it (:data:`~napari_unet.core.continuity.LINEAGE_KEY`, the model's
:func:`~napari_unet.core.continuity.lineage`), so that a mask of another model, or of
a model the user went back from, is not continued.
"""

from __future__ import annotations

from typing import Any

import napari
import numpy as np

from ..core.continuity import LINEAGE_KEY, continues, lineage
from ._annotation_combo import annotation_of
from ._layers import find_output

__all__ = ["CONTINUED_KEY", "continued_masks", "last_mask", "remember_model"]


def last_mask(
    viewer: napari.Viewer, image: napari.layers.Layer, model: Any, shape: tuple[int, ...]
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The image's mask layer data (and its strokes) for a prediction by ``model``.

    Parameters
    ----------
    viewer : napari.Viewer
    image : napari.layers.Layer
        The image about to be predicted.
    model : UNet
        The model about to predict it.
    shape : tuple of int
        The image's spatial shape (..., Y, X): a mask or strokes of another shape
        are not used.

    Returns
    -------
    previous_mask, annotation : numpy.ndarray or None
        Copies of the mask layer's data, when ``model`` continues the model that made
        it, and of the image's annotation layer's (None if it has none); (None, None)
        when there is no mask to continue, or when it is ``model``'s own uncontinued
        mask (see :func:`remember_model`).
    """
    layer = find_output(viewer, image, "mask", napari.layers.Labels)
    if layer is None or tuple(layer.data.shape) != tuple(shape):
        return None, None
    made_by = list(layer.metadata.get(LINEAGE_KEY) or [])
    if not continues(made_by, model):
        return None, None
    if made_by == lineage(model) and not layer.metadata.get(CONTINUED_KEY, False):
        return None, None  # the model's own separations: continuing them only adds lines
    strokes = annotation_of(viewer, image)
    if strokes is not None and tuple(strokes.data.shape) != tuple(shape):
        strokes = None
    annotation = None if strokes is None else np.array(strokes.data)
    return np.array(layer.data), annotation


CONTINUED_KEY = "napari_unet_continued"
"""``layer.metadata`` key: whether a mask continued the last mask of another model."""


MODEL_NAME_KEY = "napari_unet_model_name"
"""``layer.metadata`` key: the name of the model that predicted a mask, as the dock showed it."""


def remember_model(
    mask_layer: napari.layers.Labels,
    model_lineage: list[str],
    continued: bool = False,
    model_name: str = "",
) -> None:
    """Record on ``mask_layer`` which model predicted it (its lineage and ``model_name``),
    and whether it continued a last mask (``continued``). Predicting again with the same
    model continues only a continued mask: the model's own mask continued would gain lines
    (the kept separations' lower contrast next to its own background), not stay as it is."""
    mask_layer.metadata[LINEAGE_KEY] = list(model_lineage)
    mask_layer.metadata[CONTINUED_KEY] = bool(continued)
    mask_layer.metadata[MODEL_NAME_KEY] = model_name


def continued_masks(viewer: napari.Viewer, model: Any) -> list[str]:
    """The names of the mask layers ``model`` predicted that continued a last mask: they
    hold separations kept from it, which a prediction from ``model`` alone (its saved
    file, elsewhere) does not draw."""
    return [
        layer.name
        for layer in viewer.layers
        if isinstance(layer, napari.layers.Labels)
        and layer.metadata.get(CONTINUED_KEY, False)
        and list(layer.metadata.get(LINEAGE_KEY) or []) == lineage(model)
    ]

"""Annotate's *Start from the prediction*, remembered on the annotation layer: which planes
hold a copy of a model's mask that nothing has corrected yet, so that Start can refuse to
teach that model its own mask (:func:`uncorrected_copy`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core.continuity import LINEAGE_KEY, lineage
from ._predict_reuse import data_digest

AS_PREDICTED_KEY = "napari_unet_mask_digest"
"""A mask layer's metadata entry: the digest of its data as Predict made it (None when
not kept in memory), to tell a mask edited by hand since."""

COPY_KEY = "napari_unet_copied_mask"
"""The annotation layer's metadata entry: plane ("2" or "" for a 2-D image) → (digest of
the plane after the copy, lineage of the model whose mask was copied)."""


def note_predicted(mask_layer: Any) -> None:
    """Remember on ``mask_layer`` what Predict made (see :data:`AS_PREDICTED_KEY`)."""
    mask_layer.metadata[AS_PREDICTED_KEY] = data_digest(mask_layer.data)


def note_copy(layer: Any, plane: tuple[int, ...], mask_layer: Any) -> None:
    """Remember that ``plane`` of the annotation ``layer`` was just filled from the mask
    layer ``mask_layer``: as a copy of the model's mask when the mask is as Predict made it
    and every painted pixel there says what it says (strokes painted before that differ
    from it, or a mask edited by hand, hold corrections: not a copy)."""
    strokes, predicted = np.asarray(layer.data[plane]), np.asarray(mask_layer.data[plane])
    copies = dict(layer.metadata.get(COPY_KEY) or {})
    painted = strokes != 0
    as_predicted = mask_layer.metadata.get(AS_PREDICTED_KEY)
    unedited = as_predicted is not None and as_predicted == data_digest(mask_layer.data)
    if unedited and np.array_equal(strokes[painted], predicted[painted]):
        made_by = list(mask_layer.metadata.get(LINEAGE_KEY) or [])
        copies[_name(plane)] = (data_digest(strokes), made_by)
    else:
        copies.pop(_name(plane), None)
    layer.metadata[COPY_KEY] = copies


def uncorrected_copy(
    layer: Any, planes: list[tuple[int, ...]], annotations: list[np.ndarray], model: Any
) -> bool:
    """Whether every annotated plane (``planes``, their strokes ``annotations``) of
    ``layer`` is still, unchanged, a copy of ``model``'s own mask."""
    copies, made_by = layer.metadata.get(COPY_KEY) or {}, lineage(model)
    for plane, strokes in zip(planes, annotations, strict=True):
        record = copies.get(_name(plane))
        if record is None or record[0] != data_digest(strokes) or list(record[1]) != made_by:
            return False
    return bool(planes)


def _name(plane: tuple[int, ...]) -> str:
    return ",".join(map(str, plane))

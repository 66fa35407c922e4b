"""What to paint before a fine-tune can start: the refusals of annotations that lack a
class or hold labels the model does not know, in words for the napari user."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..evaluation.review import class_names
from ..training.sampling import AnnotationError, check_classes_present


def strokes_missing(
    annotations: list[np.ndarray],
    model: Any,
    name: str,
    planes: list[tuple[int, ...]] | None = None,
) -> str | None:
    """What to paint before fine-tuning ``model`` on ``annotations``, the annotated planes
    of the layer ``name``; None when two of the model's classes are painted.

    The worker's own check (:func:`~napari_unet.training.sampling.check_classes_present`),
    made before it starts; labels above ``n_classes`` are refused here too, in words for
    the napari user (:func:`labels_above`; ``planes``: the stack index of each annotation).
    """
    n_classes = model.config.n_classes
    above = labels_above(annotations, n_classes, name, planes)
    if above:
        return above
    counts = {
        label: sum(int(np.count_nonzero(plane == label)) for plane in annotations)
        for label in range(1, n_classes + 1)
    }
    try:
        check_classes_present(counts, class_names(model))
    except AnnotationError as error:
        said = str(error)
        return f"{said[0].upper()}{said[1:]} on “{name}”, then press Start."
    return None


def labels_above(
    annotations: list[np.ndarray],
    n_classes: int,
    name: str,
    planes: list[tuple[int, ...]] | None = None,
) -> str | None:
    """What to erase when ``annotations`` (the annotated planes of the layer ``name``, at
    the stack indices ``planes``) hold labels above the model's ``n_classes``, naming the
    slices of a stack; None when they hold none."""
    if all(not plane.size or 0 <= plane.min() <= plane.max() <= n_classes for plane in annotations):
        return None  # the usual case, on the Qt thread: no sort of every plane
    values = np.unique(np.concatenate([np.unique(plane) for plane in annotations]))
    extra = [int(value) for value in values if value > n_classes or value < 0]
    if not extra:
        return None
    pixels = sum(int(np.count_nonzero(np.isin(plane, extra))) for plane in annotations)
    which = ", ".join(map(str, extra[:5])) + (", …" if len(extra) > 5 else "")
    where = [
        ", ".join(map(str, plane))
        for plane, annotation in zip(planes or [], annotations)
        if plane and np.isin(annotation, extra).any()
    ]
    if where:
        slices = "; ".join(where[:5]) + ("; …" if len(where) > 5 else "")
        where = [f", on slice{'' if len(where) == 1 else 's'} {slices}"]
    return (
        f"“{name}” holds {'label' if len(extra) == 1 else 'labels'} {which} "
        f"({pixels:,} px{''.join(where)}), "
        f"but this model knows labels 1-"
        f"{n_classes} only. Erase those strokes (the eraser, or paint over them with a "
        "label the model knows), then press Start; for more classes, make a new model "
        "in the Model section."
    )

"""The last mask of an input for ``napari-unet predict``, as the Predict widget keeps it.

After a fine-tune, Predict keeps the separations of the image's last mask while the new
model's boundary still stands out (:mod:`napari_unet.core.continuity`). The widget finds
that mask in the image's mask layer; a batch run finds it among an earlier run's outputs
(``<folder>/<stem>_mask.tif``), which record the lineage of the model that made them
(:func:`napari_unet.io.reruns.provenance`), and the strokes the model was fine-tuned on
in a file given per input. The mask counts only when the model continues that lineage
(:func:`~napari_unet.core.continuity.continues`); otherwise the input is predicted
afresh and the file's result says why.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..core.continuity import LINEAGE_KEY, continues, lineage
from .data import read_image
from .reruns import stored_provenance

__all__ = ["LastMask", "find_last_mask", "lineage_record"]


@dataclass(frozen=True)
class LastMask:
    """What a prediction keeps from before: ``previous`` and ``annotation`` are class
    masks shaped as the new mask ((Y, X) or (Z, Y, X)), or None; ``note`` says in
    words which mask was used, or why none."""

    previous: np.ndarray | None
    annotation: np.ndarray | None
    note: str | None


def find_last_mask(
    stem: str,
    model: Any,
    folder: str | None,
    strokes: str | None = None,
    output_format: str = "tiff",
) -> LastMask:
    """The last mask of the input named ``stem`` for ``model``, from ``folder``.

    Parameters
    ----------
    stem : str
        The input's file name without its suffix.
    model : napari_unet.core.model.UNet
        The model predicting now.
    folder : str, optional
        An earlier run's output folder; None: no last mask.
    strokes : str, optional
        The strokes the model was fine-tuned on for this input (0 = unpainted, 1 =
        background, 2.. = classes): an object stroke across a kept line drops it.
    output_format : {"tiff", "zarr"}
        How the outputs are written: a zarr store's masks are made chunk by chunk,
        without a last mask.

    Returns
    -------
    LastMask
        No mask (and a note why) when the folder holds none for this input, or one
        made by a model this one does not continue. The shapes are checked where
        the mask is made (:func:`napari_unet.io.volumes.segment_stack`).
    """
    if folder is None:
        return LastMask(None, None, None)
    if output_format == "zarr":
        return LastMask(None, None, "last masks are kept for TIFF outputs only: predicted afresh")
    path = Path(folder) / f"{stem}_mask.tif"
    if not path.is_file():
        return LastMask(None, None, f"no last mask {path.name} in {folder}: predicted afresh")
    record = stored_provenance(path) or {}
    if not continues(record.get(LINEAGE_KEY) or [], model):
        return LastMask(
            None,
            None,
            f"{path} was not made by this model or the one it was fine-tuned from: "
            "predicted afresh",
        )
    previous = read_image(path)
    annotation = None if strokes is None else read_image(strokes)
    kept = f"kept the separations of {path}"
    return LastMask(previous, annotation, kept + (f" (strokes {strokes})" if strokes else ""))


def lineage_record(model: Any) -> dict[str, list[str]]:
    """The entry an output's provenance gets for :func:`find_last_mask`."""
    return {LINEAGE_KEY: lineage(model)}

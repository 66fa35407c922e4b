"""The outputs of batch prediction: their names, collisions, completeness, recognition.

Per input ``<stem>``: ``<stem>_prob.tif``, ``<stem>_mask.tif`` and
``<stem>_instances.tif``, or one ``<stem>_prediction.zarr`` store
(:mod:`napari_unet.io.batch`). Each records how it was made
(:mod:`napari_unet.io.reruns`), which is how a folder listing tells this package's
outputs from images (:func:`is_own_output`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ._zarr_store import missing_store_arrays
from .reruns import stored_provenance, why_not_reusable

__all__ = [
    "OUTPUT_SUFFIXES",
    "check_outputs",
    "is_own_output",
    "missing_arrays",
    "output_paths",
    "why_predicted",
]

#: How the names of this package's outputs end.
OUTPUT_SUFFIXES = ("_prob.tif", "_mask.tif", "_instances.tif", "_prediction.zarr")


def output_paths(path: str | os.PathLike, output: str | os.PathLike, fmt: str) -> tuple[Path, ...]:
    """Output files of one input: three TIFFs (prob, mask, instances) or one zarr store."""
    stem, output = Path(path).stem, Path(output)
    if fmt == "zarr":
        return (output / f"{stem}_prediction.zarr",)
    return tuple(output / f"{stem}_{kind}.tif" for kind in ("prob", "mask", "instances"))


def check_outputs(paths: Sequence[str | os.PathLike], output: str | os.PathLike) -> None:
    """Refuse inputs whose outputs would collide with each other or overwrite an input.

    Raises
    ------
    ValueError
        Two inputs with the same stem (``a/img.tif`` and ``b/img.png``), or an
        input that is an output of another (an output named as an input).
    """
    inputs = {Path(path).resolve() for path in paths}
    owners: dict[str, str | os.PathLike] = {}
    for path in paths:
        stem = Path(path).stem
        if stem in owners:
            raise ValueError(f"{owners[stem]} and {path} would write the same output files")
        owners[stem] = path
        for target in (*output_paths(path, output, "tiff"), *output_paths(path, output, "zarr")):
            if target.resolve() in inputs:
                raise ValueError(
                    f"{target} is an input, and the outputs of {path} would overwrite it; "
                    "write the outputs to a folder that holds no inputs"
                )


def is_own_output(path: Path) -> bool:
    """Whether ``path`` is an output of this package: its name ends as an output's does
    (:data:`OUTPUT_SUFFIXES`) and it holds a record of how it was made.

    A file merely named so (a ground truth ``cells_mask.tif``) is not one.
    """
    if not path.name.lower().endswith(OUTPUT_SUFFIXES):
        return False
    return stored_provenance(path) is not None


def missing_arrays(store: Path, record: dict[str, Any]) -> list[str]:
    """The arrays a zarr output store written as ``record`` says lacks (empty: complete).

    ``prob`` and ``mask`` always, ``instances`` unless the record's options made none;
    an array counts when its metadata can be read.
    """
    options = record.get("options")
    with_instances = not isinstance(options, dict) or options.get("instances") is not None
    wanted = ("prob", "mask", "instances") if with_instances else ("prob", "mask")
    return missing_store_arrays(store, wanted)


def why_predicted(outputs: Sequence[Path], record: dict[str, Any], overwrite: bool) -> str | None:
    """None when the existing ``outputs`` are complete and made as ``record`` says (skip
    the input); else why they are predicted ("" for no outputs or a partial set).

    Raises
    ------
    ValueError
        Without ``overwrite``: outputs made otherwise (:func:`~.reruns.why_not_reusable`).
    """
    if overwrite:
        return ""
    reason = why_not_reusable(outputs, record)
    if reason is not None:
        raise ValueError(f"outputs exist: {reason}; pass --overwrite to replace them")
    if not all(out.exists() for out in outputs):
        return ""
    for out in outputs:
        missing = missing_arrays(out, record) if out.is_dir() else []
        if missing:  # made by this run's options but never finished (or damaged)
            return f"{out.name} lacked {', '.join(missing)} and was predicted again"
    return None

"""The outputs of batch prediction: their names, axes, collisions, completeness, recognition.

Per input ``<stem>``: ``<stem>_prob.tif``, ``<stem>_mask.tif`` and
``<stem>_instances.tif``, or one ``<stem>_prediction.zarr`` store
(:mod:`napari_unet.io.batch`). ``<stem>`` is the input's name as given, less its
suffix (:func:`output_stem`): a symbolic link's own name, not its target's. Each TIFF
says its axes (:func:`output_axes`) and every output records how it was made
(:mod:`napari_unet.io.reruns`), which is how a folder listing tells this package's
outputs from images (:func:`is_own_output`) and how :func:`find_predictions` finds the
predictions of an output folder.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._zarr_store import missing_store_arrays
from .reruns import stored_provenance, why_not_reusable

__all__ = [
    "OUTPUT_KINDS",
    "OUTPUT_SUFFIXES",
    "Prediction",
    "check_outputs",
    "find_predictions",
    "is_own_output",
    "missing_arrays",
    "output_axes",
    "output_paths",
    "output_stem",
    "why_predicted",
]

#: The TIFF outputs of one input, in the order they are written (instances last).
OUTPUT_KINDS = ("prob", "mask", "instances")
#: How the names of this package's outputs end.
OUTPUT_SUFFIXES = ("_prob.tif", "_mask.tif", "_instances.tif", "_prediction.zarr")


OME_SUFFIXES = (".ome.tif", ".ome.tiff", ".ome.zarr")
"""Two-part suffixes that :func:`output_stem` removes whole."""


def output_stem(path: str | os.PathLike) -> str:
    """The name the outputs of input ``path`` are named after: its name as given, less its
    suffix (``cells`` for ``data/cells.tif``). A symbolic link is not followed: the
    outputs of ``today.tif -> raw/0042.tif`` are ``today_*``. An OME file loses both
    suffixes (``cells`` for ``cells.ome.tif``)."""
    name = Path(path).name
    for suffix in OME_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return Path(path).stem


def output_paths(path: str | os.PathLike, output: str | os.PathLike, fmt: str) -> tuple[Path, ...]:
    """Output files of one input: three TIFFs (prob, mask, instances) or one zarr store."""
    stem, output = output_stem(path), Path(output)
    if fmt == "zarr":
        return (output / f"{stem}_prediction.zarr",)
    return tuple(output / f"{stem}_{kind}.tif" for kind in OUTPUT_KINDS)


def output_axes(kind: str, stack: bool) -> str:
    """Axes of a TIFF output (tifffile's letters, written in its metadata).

    ``kind`` is one of :data:`OUTPUT_KINDS`; ``stack``: the input had slices (Z). The
    probabilities are (C, Y, X) or (Z, C, Y, X), C their classes; the mask and the
    instances (Y, X) or (Z, Y, X).
    """
    if kind not in OUTPUT_KINDS:
        raise ValueError(f"unknown output {kind!r}; expected one of {OUTPUT_KINDS}")
    return ("Z" if stack else "") + ("CYX" if kind == "prob" else "YX")


def check_outputs(paths: Sequence[str | os.PathLike], output: str | os.PathLike) -> None:
    """Refuse inputs whose outputs would collide with each other or overwrite an input.

    The one check of the command line and of :func:`~napari_unet.io.batch.run_batch`:
    outputs are named by :func:`output_stem`, so two inputs collide when their names
    as given (not their links' targets) have the same stem, compared without case
    (``Cells.tif`` and ``cells.png`` would be one file on macOS or Windows); an output
    named as an input without case (``cells_Mask.tif``) counts as that input.

    Raises
    ------
    ValueError
        Two inputs with the same stem (``a/img.tif`` and ``b/img.png``), or an
        input that is an output of another (an output named as an input).
    """
    inputs = {_without_case(Path(path)) for path in paths}
    owners: dict[str, str | os.PathLike] = {}
    for path in paths:
        stem = output_stem(path).casefold()
        if stem in owners:
            raise ValueError(
                f"{owners[stem]} and {path} would write the same output files "
                f"({output_stem(path)}_mask.tif, ...); rename one, or predict them into "
                "different folders"
            )
        owners[stem] = path
        for target in (*output_paths(path, output, "tiff"), *output_paths(path, output, "zarr")):
            if _without_case(target) in inputs:
                raise ValueError(
                    f"{target} is an input, and the outputs of {path} would overwrite it; "
                    "write the outputs to a folder that holds no inputs"
                )


def _without_case(path: Path) -> tuple[Path, str]:
    """``path`` resolved, its name compared without case: on macOS and Windows
    ``cells_Mask.tif`` and ``cells_mask.tif`` are one file (its folder is compared as
    resolved: ``Out`` and ``out`` are two folders on Linux)."""
    resolved = path.resolve()
    return resolved.parent, resolved.name.lower()


def is_own_output(path: Path) -> bool:
    """Whether ``path`` is an output of this package: its name ends as an output's does
    (:data:`OUTPUT_SUFFIXES`) and it holds a record of how it was made.

    A file merely named so (a ground truth ``cells_mask.tif``) is not one.
    """
    if not path.name.lower().endswith(OUTPUT_SUFFIXES):
        return False
    return stored_provenance(path) is not None


@dataclass(frozen=True)
class Prediction:
    """The outputs of one input found in an output folder (:func:`find_predictions`).

    Attributes
    ----------
    stem : str
        The input's name less its suffix (the outputs' names start with it).
    paths : dict of str to Path
        ``"prob"``, ``"mask"`` and ``"instances"`` TIFFs (those there; the mask always),
        or ``"store"``: the ``<stem>_prediction.zarr`` store.
    provenance : dict
        What the mask (or the store) records of how it was made (:mod:`~.reruns`).
    """

    stem: str
    paths: dict[str, Path] = field(hash=False)
    provenance: dict[str, Any] = field(hash=False)


def find_predictions(folder: str | os.PathLike) -> Iterator[Prediction]:
    """The predictions ``napari-unet predict --output folder`` wrote there, by name.

    A ``<stem>_mask.tif`` (with the ``<stem>_prob.tif`` and ``<stem>_instances.tif``
    beside it, when there) or a ``<stem>_prediction.zarr`` store counts when it records
    how it was made (:func:`is_own_output`): a ground truth merely named ``*_mask.tif``
    does not. Hidden files (the temporaries of unfinished writes) are passed over, and
    the folder is listed lazily, so the first prediction is found without reading the
    others. Nothing is found in a folder that is not one, or that cannot be listed.
    """
    folder = Path(folder)
    try:
        names = sorted(child.name for child in folder.iterdir())
    except OSError:  # not a folder, or not ours to list
        return
    for name in names:
        if name.startswith("."):
            continue
        if name.endswith("_prediction.zarr"):
            paths = {"store": folder / name}
        elif name.endswith("_mask.tif"):
            stem = name.removesuffix("_mask.tif")
            paths = {kind: folder / f"{stem}_{kind}.tif" for kind in OUTPUT_KINDS}
        else:
            continue
        record = stored_provenance(paths["store"] if "store" in paths else paths["mask"])
        if record is None:
            continue
        stem = name.removesuffix("_prediction.zarr").removesuffix("_mask.tif")
        present = {kind: path for kind, path in paths.items() if path.exists()}
        yield Prediction(stem, present, record)


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

"""The zarr store of :func:`napari_unet.io.outofcore.predict_to_zarr`: creating its
arrays under a temporary name, checking it is whole, renaming it into place."""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..core._atomic import replace
from .axes import output_shapes


def open_outputs(store_path: str | os.PathLike) -> dict[str, Any]:
    """The arrays of a store written by :func:`~napari_unet.io.outofcore.predict_to_zarr`,
    read-only and lazy (no PyTorch import: the napari reader uses it)."""
    import zarr

    group = zarr.open_group(str(store_path), mode="r")
    return {name: group[name] for name in ("prob", "mask", "instances") if name in group}


def missing_store_arrays(store: Path, wanted: tuple[str, ...]) -> list[str]:
    """Which of the arrays ``wanted`` the zarr group ``store`` lacks (empty: all there);
    an array counts when its metadata can be read and it has two axes or more."""
    import zarr

    try:
        group = zarr.open_group(str(store), mode="r")
    except Exception:  # no group metadata at all
        return list(wanted)
    missing = []
    for name in wanted:
        try:
            array = group[name]
            complete = hasattr(array, "shape") and len(array.shape) >= 2
        except Exception:  # absent, or its metadata unreadable
            complete = False
        if not complete:
            missing.append(name)
    return missing


def check_complete(partial: Path, final: Path, instances: bool) -> None:
    """Refuse to publish a store that lacks an array or its metadata (something removed
    the unfinished store while this run wrote it, e.g. another run over the same output)."""
    wanted = ("prob", "mask", "instances") if instances else ("prob", "mask")
    missing = missing_store_arrays(partial, wanted)
    if missing:
        raise RuntimeError(
            f"the unfinished store of {final} lost its {', '.join(missing)} while it was "
            "written (removed by another program or run?); nothing was published"
        )


def open_group(path: Path, mode: Literal["r", "r+", "a", "w", "w-"] = "a") -> Any:
    import zarr

    return zarr.open_group(str(path), mode=mode)


def create_arrays(
    path: Path, shape: tuple[int, ...], axes: str, n_classes: int, block: tuple[int, int]
) -> dict[str, Any]:
    """Empty ``prob`` and ``mask`` arrays in a new group, chunked one tile per chunk."""
    import zarr

    open_group(path, mode="w")
    prob_shape, mask_shape = output_shapes(shape, axes, n_classes)
    leading = (1,) if "Z" in axes else ()
    specs = {
        "prob": (prob_shape, (*leading, n_classes, *block), np.float32, np.nan),
        "mask": (mask_shape, (*leading, *block), np.uint8, 0),
    }
    return {
        name: zarr.open_array(str(path / name), mode="w", shape=s, chunks=c, dtype=d, fill_value=f)
        for name, (s, c, d, f) in specs.items()
    }


def open_arrays(path: Path) -> dict[str, Any]:
    """The ``prob`` and ``mask`` arrays of an unfinished store, to write on (a resumed run)."""
    import zarr

    return {name: zarr.open_array(str(path / name), mode="r+") for name in ("prob", "mask")}


def tile_mask(probabilities: np.ndarray) -> np.ndarray:
    """The class mask (uint8, 1 = background) of (C, ...) probabilities, as a store first
    holds it: the most probable class of each pixel."""
    return (np.argmax(probabilities, axis=0) + 1).astype(np.uint8)


class ProbabilitiesAndMask:
    """Destination for tiles: writes probabilities and their class mask
    (:func:`tile_mask`) together."""

    def __init__(self, probabilities: Any, mask: Any) -> None:
        self.probabilities, self.mask = probabilities, mask
        self.shape = tuple(probabilities.shape)

    def __setitem__(self, key: tuple, value: np.ndarray) -> None:
        self.probabilities[key] = value
        self.mask[(*key[:-3], *key[-2:])] = tile_mask(value)


def publish(partial: Path, final: Path) -> None:
    """Rename a finished store into place, replacing an older one.

    The older store is moved aside first (a folder cannot be renamed over another),
    and moved back if the new one cannot take its place: a failed publish leaves the
    older outputs as they were.
    """
    old = None
    if final.exists():
        old = final.with_name(f".{final.name}.{uuid.uuid4().hex}.old")
        replace(final, old)
    try:
        replace(partial, final)
    except OSError as error:
        if old is not None:
            try:
                replace(old, final)
            except OSError:
                raise OSError(
                    f"cannot publish {final} ({error}), nor put the older store back: it is "
                    f"{old}; rename it to {final.name} before running again (the next run "
                    "removes it)"
                ) from error
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)

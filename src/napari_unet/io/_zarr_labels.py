"""What :func:`napari_unet.io.outofcore.predict_to_zarr` writes into its store after the
probabilities: the class mask refined in place, chunk by chunk, and the instances
labelled slice by slice."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..core.inference import Cancelled, Progress, StopFlag, is_stopped
from ..core.postprocess import MIN_INSTANCE_SIZE, InstanceMethod, MaskSteps
from .chunked_labels import label_chunked
from .chunked_refine import Plane, refine_blocks, refine_mask_chunked
from .volumes import slice_instances

__all__ = ["refine_store_mask", "write_instances"]


def refine_store_mask(
    partial: Path,
    arrays: dict[str, Any],
    block: tuple[int, int],
    steps: MaskSteps,
    progress: Callable[[Progress], None] | None = None,
) -> None:
    """:func:`~napari_unet.io.chunked_refine.refine_mask_chunked` on the store's mask; the
    objects grow from a snapshot of each slice's mask in a scratch array of the store,
    removed afterwards. ``progress`` gets a ``Progress(done, blocks, "mask")`` after each
    block of each step (half a minute on a 6144² image sat at 0 % before)."""
    import zarr

    snapshot, path = None, partial / "grow_snapshot"
    if steps.background_threshold != 0.5:
        shape = tuple(arrays["mask"].shape[-2:])
        snapshot = zarr.open_array(
            str(path), mode="w", shape=shape, chunks=block, dtype=np.uint8, fill_value=0
        )
    total, done = refine_blocks(tuple(arrays["mask"].shape), block, steps), 0

    def on_block() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(Progress(done, total, "mask"))

    refine_mask_chunked(arrays["prob"], arrays["mask"], block, steps, snapshot, on_block)
    if snapshot is not None:
        shutil.rmtree(path)


def write_instances(
    path: Path,
    mask: Any,
    method: InstanceMethod,
    block: tuple[int, int],
    progress: Callable[[Progress], None] | None,
    stop: StopFlag = None,
    min_size: int = MIN_INSTANCE_SIZE,
    fill_holes: bool = True,
) -> int:
    """Label every slice of ``mask`` into ``path/instances``; returns the object count.

    ``stop`` is checked before each slice (:class:`~napari_unet.core.inference.Cancelled`);
    objects under ``min_size`` pixels are not instances.
    """
    import zarr

    options = {"shape": mask.shape, "chunks": mask.chunks, "dtype": np.uint32, "fill_value": 0}
    out = zarr.open_array(str(path / "instances"), mode="w", **options)
    planes: list[tuple[Any, Any]]  # (mask, instances): zarr arrays or Plane windows
    if mask.ndim == 2:
        planes = [(mask, out)]
    else:
        planes = [(Plane(mask, index), Plane(out, index)) for index in range(mask.shape[0])]
    count = 0
    if progress is not None:
        progress(Progress(0, len(planes), "instances"))
    for done, (mask_plane, out_plane) in enumerate(planes, start=1):
        if is_stopped(stop):
            raise Cancelled("prediction cancelled")
        if method == "components":
            count += label_chunked(
                mask_plane, out_plane, block, offset=count, min_size=min_size, fill_holes=fill_holes
            )
        else:
            out_plane[:, :], found = slice_instances(
                mask_plane[:, :], method, count, min_size, fill_holes
            )
            count += found
        if progress is not None:
            progress(Progress(done, len(planes), "instances"))
    return count

"""What an out-of-core store holds and what its tiles are computed from.

:class:`StoreJob` is the image, model and options of one
:func:`~napari_unet.io.outofcore.predict_to_zarr` run with the store's tile layout;
:func:`resume_fingerprint` is what a partial store's record compares to tell whether an
interrupted run's tiles can be kept (:mod:`napari_unet.io._resume`).
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple, cast

from ..config import PredictConfig
from ..core.inference import tile_layout, uses_test_time_augmentation
from ..core.model import UNet
from ..core.postprocess import InstanceMethod
from .axes import slice_count

__all__ = ["StoreJob", "resume_fingerprint", "store_job"]

_NETWORK_OPTIONS = ("tile_size", "test_time_augmentation", "axes")
_PROVENANCE_ENTRIES = ("package_version", "model_sha256", "input")


class StoreJob(NamedTuple):
    """What :func:`~napari_unet.io.outofcore.predict_to_zarr` writes: the image and how,
    with its store's layout: the input tile shape, the (Y, X) chunk of one kept tile
    (``block``) and the tiles' (slices, rows, columns) ``grid``."""

    image: Any
    model: UNet
    axes: str
    settings: PredictConfig
    method: InstanceMethod | None
    tile_shape: tuple[int, int]
    block: tuple[int, int]
    grid: tuple[int, int, int]


def store_job(
    image: Any, model: UNet, axes: str, settings: PredictConfig, method: InstanceMethod | None
) -> StoreJob:
    """The :class:`StoreJob` of ``image`` read with ``axes`` (``settings.tile_size`` a
    number)."""
    plane = (int(image.shape[axes.index("Y")]), int(image.shape[axes.index("X")]))
    tile_shape, tiles = tile_layout(model, plane, cast(int, settings.tile_size))
    block = (tiles[0].y.keep_stop, tiles[0].x.keep_stop)
    grid = (slice_count(image.shape, axes), -(-plane[0] // block[0]), -(-plane[1] // block[1]))
    return StoreJob(image, model, axes, settings, method, tile_shape, block, grid)


def resume_fingerprint(provenance: dict[str, Any], job: StoreJob) -> dict[str, Any]:
    """What the tiles of ``job`` are computed from, JSON-ready, shaped as a provenance
    record (so :func:`~napari_unet.io.reruns.record_difference` words a difference).

    Parameters
    ----------
    provenance : dict
        The outputs' record (:func:`napari_unet.io.reruns.provenance`): its checkpoint
        checksum, input and package version are kept, and of its options those that
        change the network's output, as this run resolved them.
    job : StoreJob
        The store's layout (input shape and dtype, classes, tile, chunk and grid) is
        added.
    """
    recorded = provenance.get("options")
    recorded = recorded if isinstance(recorded, dict) else {}
    options = {name: recorded.get(name) for name in _NETWORK_OPTIONS}
    options.update(
        tile_size=job.settings.tile_size,
        test_time_augmentation=uses_test_time_augmentation(job.model, job.settings),
        axes=job.axes,
    )
    layout = {
        "shape": [int(n) for n in job.image.shape],
        "dtype": str(getattr(job.image, "dtype", None)),
        "n_classes": job.model.config.n_classes,
        "tile": list(job.tile_shape),
        "chunk": list(job.block),
        "grid": list(job.grid),
    }
    fingerprint = {name: provenance.get(name) for name in _PROVENANCE_ENTRIES}
    fingerprint.update(options=options, last_mask=None, layout=layout)
    return json.loads(json.dumps(fingerprint))  # as read back: lists, not tuples

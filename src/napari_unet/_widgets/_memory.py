"""Whether a prediction in the Predict section fits in memory, before it starts.

The section keeps its outputs in memory; a prediction that does not fit would
make the operating system kill napari, and with it every unsaved annotation.
The estimate adds the outputs, the temporaries of post-processing one plane, the
network's activations on the tiles of one pass (one tile on the CPU, the batch on
Apple MPS, whose memory is the computer's; or the whole image; none on a CUDA
device, which holds them in its own memory), and the plane being predicted with the window read
from it (a batch of tiles), in float64 for types wider than 16 bits (float32
otherwise).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..config import PredictConfig
from ..core.devices import resolve_device
from ..core.engine import DEFAULT_ENGINE
from ..core.inference import resolved_tile_size
from ..core.memory_limits import available_ram
from ..core.tile_choice import ACTIVATION_BYTES, usable_tile_sizes
from ..io.data import working_dtype
from ._predict_job import PredictionRequest

MEMORY_SHARE = 0.8
"""Share of the available memory one prediction may take."""

POSTPROCESS_BYTES = {True: 40, False: 18}
"""Temporaries of post-processing one plane, bytes per pixel, with and without the
weight map (instance labelling, renumbering, distance transforms; measured with
tracemalloc on a 2048 x 2048 plane holding 800 objects)."""

TILE_BATCH = PredictConfig().batch_size
"""Tiles per forward pass in the Predict section by default (``PredictConfig``'s)."""


def output_bytes(
    n_classes: int,
    spatial_shape: tuple[int, ...],
    with_weights: bool,
    with_uncertainty: bool = False,
) -> int:
    """Memory the outputs of a prediction take: probabilities, mask, instances, weights.

    Parameters
    ----------
    n_classes : int
    spatial_shape : tuple of int
        (..., Y, X) of the image, without channels.
    with_weights : bool
        Whether the weight map (float32) is computed too.
    with_uncertainty : bool
        Whether the uncertainty (float32) is computed too.
    """
    pixels = int(np.prod(spatial_shape, dtype=np.int64))
    per_pixel = 4 * n_classes + 1 + 4 + (4 if with_weights else 0) + (4 if with_uncertainty else 0)
    return pixels * per_pixel


def working_bytes(request: PredictionRequest) -> int:
    """Temporary memory of ``request``: post-processing of one plane, network activations,
    the plane being predicted and the window read from it (one batch of tiles, or the
    mirrored plane), both in the type they are read in (:func:`input_itemsize`)."""
    height, width = request.geometry.spatial_shape[-2:]
    model = request.model
    tile_size = resolved_tile_size(model, request.config.tile_size)
    if tile_size:
        window = tile_size**2 * request.config.batch_size
        network_window = tile_size**2 * tiles_per_pass(request)
    else:  # one pass over the mirrored plane
        window = network_window = (height + 2 * model.halo) * (width + 2 * model.halo)
    in_ram = _device_type(request) != "cuda"  # a CUDA device holds them in its own memory
    activations = network_window * ACTIVATION_BYTES * model.config.base_features * in_ram
    reads = (height * width + window) * model.config.in_channels * input_itemsize(request.data)
    return height * width * POSTPROCESS_BYTES[request.with_weights] + activations + reads


def tiles_per_pass(request: PredictionRequest) -> int:
    """Tiles the network holds activations for at once: on the CPU the engine's
    ``cpu_tiles_per_pass`` (one: a batch's tiles go through one after the other), else
    the whole batch (:func:`napari_unet.core.inference.iter_predict`)."""
    batch = request.config.batch_size
    if _device_type(request) == "cpu":
        return min(DEFAULT_ENGINE.cpu_tiles_per_pass, batch)
    return batch


def _device_type(request: PredictionRequest) -> str:
    """The type of the device ``request`` runs on ("cpu", "cuda", "mps"; "" for a device
    this machine lacks, which the run will refuse)."""
    try:
        return resolve_device(request.config.device).type
    except ValueError:
        return ""


def input_itemsize(data: object) -> int:
    """Bytes per value of a plane of ``data`` as it is read: 8 (float64) for types wider
    than 16 bits, 4 (float32) otherwise (:func:`napari_unet.io.data.working_dtype`)."""
    return working_dtype(np.dtype(getattr(data, "dtype", np.float32))).itemsize


def available_memory() -> int:
    """Bytes available to new allocations
    (:func:`napari_unet.core.memory_limits.available_ram`: psutil's figure, capped by the
    process's cgroup limits)."""
    return available_ram()


def needed_bytes(request: PredictionRequest) -> int:
    """Memory ``request`` needs: its outputs and its temporaries (:func:`working_bytes`);
    with the last run's probabilities (``request.known``), the other outputs and one
    plane's post-processing."""
    n_classes, shape = request.model.config.n_classes, request.geometry.spatial_shape
    outputs = output_bytes(n_classes, shape, request.with_weights, request.with_uncertainty)
    if request.known is not None:  # no network: the probabilities exist, one plane's steps
        height, width = shape[-2:]
        existing = output_bytes(n_classes, shape, False) - output_bytes(0, shape, False)
        return outputs - existing + height * width * POSTPROCESS_BYTES[request.with_weights]
    return outputs + working_bytes(request)


def memory_refusal(request: PredictionRequest, image_name: str) -> str:
    """Why ``request`` would not fit in memory, and what to do; "" if it fits."""
    needed, free = needed_bytes(request), available_memory()
    if needed <= MEMORY_SHARE * free:
        return ""
    advice = []
    if request.with_weights:
        if needed_bytes(replace(request, with_weights=False)) <= MEMORY_SHARE * free:
            advice.append("untick the weight map (it then fits)")
    if request.config.tile_size is None and _fits_tiled(request, free):
        advice.append("choose a tile size, not the whole image")
    advice.append(
        "predict it from the command line into a zarr store, which works tile by tile "
        "(save a fine-tuned model in the Model section first): napari-unet predict IMAGE "
        "--model CHECKPOINT --output DIR --output-format zarr"
    )
    return (
        f"Predicting “{image_name}” needs about {memory_size(needed)}, but only "
        f"{memory_size(free)} of memory are free. Instead, " + "; or ".join(advice) + "."
    )


def _fits_tiled(request: PredictionRequest, free: int) -> bool:
    """Whether ``request`` would fit with the model's smallest tile (its outputs may not)."""
    sizes = usable_tile_sizes(request.model)
    tiled = replace(request, config=request.config.replace(tile_size=sizes[0] if sizes else None))
    return bool(sizes) and needed_bytes(tiled) <= MEMORY_SHARE * free


def memory_size(n_bytes: float) -> str:
    """``n_bytes`` in words: "5.7 GiB", or "350 MiB" below 1 GiB (never "0.0 GiB")."""
    if n_bytes >= 2**30:
        return f"{n_bytes / 2**30:.1f} GiB"
    return f"{max(n_bytes, 0) / 2**20:.0f} MiB"

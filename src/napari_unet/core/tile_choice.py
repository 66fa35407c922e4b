"""Which tile edge overlap-tile inference uses by default, and what a tile costs in memory.

Valid tile edges keep every 2x2 max-pool on an even size; usable ones also keep some
output after the context (:func:`usable_tile_sizes`). The default
(:func:`default_tile_size`) is the largest usable edge up to :data:`AUTO_TILE_MAXIMUM`
whose activations fit a share of the free memory (:func:`auto_tile_size`).
"""

from __future__ import annotations

import torch

from .model import UNet

__all__ = ["auto_tile_size", "default_tile_size", "tile_memory", "tile_stride", "usable_tile_sizes"]

#: Largest tile edge :func:`auto_tile_size` chooses. Larger tiles keep more of each tile
#: (45 % of a 572 tile for a depth-4 valid network, 67 % of a 1020 one). They were slower
#: per pixel until two costs of their large feature maps went away: fresh pages from the
#: kernel for every tensor (now huge pages, :mod:`napari_unet._huge_pages`) and the
#: full-resolution layers running in the default layout (now channels-last,
#: :mod:`napari_unet.core.fused`). Since then, on a 2048² image with 2 threads, tiles of
#: 1020 (shrunk to 876) ran at 1.07-1.29x those of 572 (benchmarks/results_inference_speed.md).
AUTO_TILE_MAXIMUM: int = 1024

#: Bytes of activations per input-window pixel and base feature map (peak, one
#: forward pass; benchmarks/results_performance.md, "Forward-pass memory": 32-34
#: measured for whole-image passes, 29 for 256 px tiles, 5 for 572 px valid tiles,
#: ``benchmarks/bench_forward_memory.py``). The Predict widget's memory check uses it too.
ACTIVATION_BYTES: int = 36

#: Tiles :func:`auto_tile_size` allows for in one forward pass: ``predict``'s default
#: ``batch_size`` (on a GPU they go through the network together).
AUTO_TILE_BATCH: int = 4

#: Share of the available memory that the activations of a batch of automatically
#: sized tiles may take (the Predict widget refuses above 80 % for everything).
AUTO_TILE_MEMORY_FRACTION: float = 0.5


def default_tile_size(model: UNet, target: int | None = None) -> int:
    """The largest valid input tile not above ``target``.

    ``target=None``: :func:`auto_tile_size` (the largest usable tile up to
    :data:`AUTO_TILE_MAXIMUM` whose activations fit the available memory; 572, the
    paper's tile, was the default before).
    """
    if target is None:
        return auto_tile_size(model)
    below, above = model.nearest_valid_sizes(target)
    if below is not None and tile_stride(model, below) > 0:
        return below
    return above


def tile_memory(model: UNet, tile: int, tiles: int = AUTO_TILE_BATCH) -> int:
    """Estimated peak bytes of the activations of a pass over ``tiles`` tiles of ``tile`` px."""
    return ACTIVATION_BYTES * tile * tile * model.config.base_features * tiles


def auto_tile_size(
    model: UNet,
    available: int | None = None,
    maximum: int | None = None,
    fraction: float | None = None,
) -> int:
    """The largest usable tile edge up to ``maximum`` whose activations fit a memory budget.

    Parameters
    ----------
    model : UNet
    available : int, optional
        Bytes of free memory; default ``psutil.virtual_memory().available``, or the
        free memory of the CUDA device when there is one and it has less (so the
        choice can differ between machines, never the result).
    maximum : int, optional
        Largest edge considered; default :data:`AUTO_TILE_MAXIMUM`.
    fraction : float, optional
        Share of ``available`` the activations of :data:`AUTO_TILE_BATCH` tiles
        (:func:`tile_memory`) may take; default :data:`AUTO_TILE_MEMORY_FRACTION`.

    Returns
    -------
    int
        A valid input size whose stride keeps the pooling grid (tiled results equal
        the untiled one); the smallest usable tile when even that exceeds the budget.
    """
    if available is None:
        available = _available_memory()
    maximum = AUTO_TILE_MAXIMUM if maximum is None else maximum
    fraction = AUTO_TILE_MEMORY_FRACTION if fraction is None else fraction
    budget = available * fraction
    sizes = usable_tile_sizes(model, max(maximum, model.min_input_size))
    if not sizes:
        sizes = usable_tile_sizes(model, model.min_input_size + 64 * model.size_multiple)[:1]
    fitting = [size for size in sizes if size <= maximum and tile_memory(model, size) <= budget]
    return fitting[-1] if fitting else sizes[0]


def _available_memory() -> int:
    """Free RAM, or the free memory of the CUDA device (``device="auto"``'s choice) if less."""
    import psutil

    available = int(psutil.virtual_memory().available)
    if torch.cuda.is_available():
        try:
            available = min(available, int(torch.cuda.mem_get_info()[0]))
        except RuntimeError:
            pass
    return available


def usable_tile_sizes(model: UNet, maximum: int = 1024) -> list[int]:
    """Valid input tile edges up to ``maximum`` that keep some output after the context."""
    return [size for size in model.valid_input_sizes(1, maximum) if tile_stride(model, size) > 0]


def tile_stride(model: UNet, tile: int) -> int:
    """Output pixels kept per tile, a multiple of ``2 ** depth``."""
    if model.config.padding == "same":
        return tile - 2 * model.halo
    output = model.output_size(tile)
    return output - output % model.size_multiple

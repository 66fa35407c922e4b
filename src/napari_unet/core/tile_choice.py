"""Which tile edge overlap-tile inference uses by default, and what a tile costs in memory.

Valid tile edges keep every 2x2 max-pool on an even size; usable ones also keep some
output after the context (:func:`usable_tile_sizes`). The default
(:func:`default_tile_size`) is the largest usable edge up to :data:`AUTO_TILE_MAXIMUM`
whose activations fit a share of the free memory (:func:`auto_tile_size`). For one
image, many edges give the same tiles (:func:`tile_counts`); :func:`distinct_tile_sizes`
keeps one edge of each tiling, which is what the Predict section offers.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .memory_limits import available_ram
from .model import UNet

__all__ = [
    "TileChoice",
    "auto_tile_size",
    "default_tile_size",
    "distinct_tile_sizes",
    "equivalent_tile_size",
    "tile_counts",
    "tile_memory",
    "tile_stride",
    "usable_tile_sizes",
    "whole_image_input",
]

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
#: measured for whole-image passes in session 4, 22-24 in session 34, and 25-30 per
#: pixel of one 572-916 px valid tile, ``benchmarks/bench_forward_memory.py``). The
#: Predict widget's memory check uses it too.
ACTIVATION_BYTES: int = 36

#: Tiles :func:`auto_tile_size` allows for in one forward pass: ``predict``'s default
#: ``batch_size`` (on a GPU they go through the network together; on the CPU one after
#: the other, so there the choice is on the safe side by this factor).
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
        Bytes of free memory; default the free RAM within the process's cgroup limits
        (:func:`napari_unet.core.memory_limits.available_ram`), or the free memory of
        the CUDA device when there is one and it has less (so the choice can differ
        between machines, never the result).
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
    """Free RAM (within the process's cgroup limits), or the free memory of the CUDA device
    (``device="auto"``'s choice) if less."""
    available = available_ram()
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


MIN_KEPT_SHARE = 0.25
"""The least share of its pixels a listed tile size keeps (:func:`distinct_tile_sizes`)."""


def kept_share(model: UNet, tile: int) -> float:
    """The share of a tile's input pixels whose output it keeps: (stride / tile)²."""
    return (tile_stride(model, tile) / tile) ** 2


@dataclass(frozen=True)
class TileChoice:
    """One tiling of an image: the smallest tile edge that gives it, and its tiles.

    Attributes
    ----------
    size : int or None
        The smallest usable tile edge giving this tiling; None: one pass over the
        whole (mirror-padded) image, which every edge from the image's padded size
        up gives too.
    counts : tuple of int
        Tiles along Y and X (``(1, 1)``: the whole image); None when no image shape
        was given (each edge is then a choice of its own).
    """

    size: int | None
    counts: tuple[int, int] | None

    @property
    def tiles(self) -> int | None:
        """Tiles per plane (None: not known without an image shape)."""
        return None if self.counts is None else self.counts[0] * self.counts[1]


def whole_image_input(model: UNet, image_shape: tuple[int, int]) -> tuple[int, int]:
    """The input (Y, X) of one pass over a whole plane of ``image_shape``: the
    smallest valid size covering it (with a "same" network's context)."""
    margin = 2 * model.halo if model.config.padding == "same" else 0
    return (
        model.smallest_valid_input_covering(int(image_shape[0]) + margin),
        model.smallest_valid_input_covering(int(image_shape[1]) + margin),
    )


def tile_counts(model: UNet, image_shape: tuple[int, int], tile: int | None) -> tuple[int, int]:
    """Tiles along Y and X that a tile edge of ``tile`` (None: the whole image) gives.

    With tiles shrunk to the image (``EngineOptions.shrink_tiles_to_image``, the
    default), two usable edges with the same counts give the same tiles: each axis
    takes the smallest edge with its count (:func:`napari_unet.core.inference.tile_layout`).
    An edge at least the image's padded size (:func:`whole_image_input`) gives (1, 1).
    """
    whole = whole_image_input(model, image_shape)
    if tile is None:
        return (1, 1)
    stride = tile_stride(model, tile)
    counts = [1 if tile >= edge else 0 for edge in whole]
    if 0 in counts and stride < 1:
        raise ValueError(f"tile size {tile} leaves no output after the context is removed")
    counts = [count or -(-int(size) // stride) for count, size in zip(counts, image_shape)]
    return counts[0], counts[1]


def distinct_tile_sizes(
    model: UNet,
    image_shape: tuple[int, int] | None,
    maximum: int = 1024,
    extra: tuple[int, ...] = (),
) -> list[TileChoice]:
    """The distinct tilings of a plane of ``image_shape`` by usable tile edges up to
    ``maximum`` (and the usable edges in ``extra``, such as the default one), plus the
    whole image: each once, by its smallest edge, smallest first, the whole image last.

    Edges whose tiles keep less than a quarter of their pixels (:func:`kept_share`) are
    left out: they spend most of the work on context. On a 6144² image ``nuclei``'s
    100 px tiles were 589,824 of them, about 4 days of work on a laptop CPU.

    ``image_shape`` None (no image yet): every usable edge, then the whole image.
    """
    usable = usable_tile_sizes(model, maximum)
    worth = [size for size in usable if kept_share(model, size) >= MIN_KEPT_SHARE]
    sizes = sorted(set(worth) | {s for s in extra if s > 0})
    if image_shape is None:
        return [TileChoice(size, None) for size in sizes] + [TileChoice(None, None)]
    choices: dict[tuple[int, int], TileChoice] = {}
    for size in sizes:
        counts = tile_counts(model, image_shape, size)
        if counts != (1, 1):
            choices.setdefault(counts, TileChoice(size, counts))
    return [*choices.values(), TileChoice(None, (1, 1))]


def equivalent_tile_size(
    model: UNet, image_shape: tuple[int, int] | None, tile: int | None, choices: list[TileChoice]
) -> int | None:
    """The size of the choice among ``choices`` (:func:`distinct_tile_sizes`) that
    tiles a plane of ``image_shape`` as ``tile`` does (None: the whole image); without
    an image shape, ``tile`` itself when offered, else the largest offered edge below it.
    A tile smaller than any offered gives the smallest offered one."""
    if tile is None:
        return None
    if image_shape is None:
        offered = [c.size for c in choices if c.size is not None and c.size <= tile]
        return tile if tile in offered else (offered[-1] if offered else None)
    counts = tile_counts(model, image_shape, tile)
    same = next((c.size for c in choices if c.counts == counts), None)
    smallest = choices[0].size if choices else None
    if same is None and smallest is not None and tile < smallest:  # below those offered
        return smallest
    return same

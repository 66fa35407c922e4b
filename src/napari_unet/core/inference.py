"""Overlap-tile inference: normalise once, batch tiles, run the model, stitch."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch

from ..config import AUTO_TILE, UNSET, PredictConfig, Unset, predict_config
from ._image_input import as_array, check_channels
from ._released_rows import release_finished
from ._released_rows import release_rows as _release_rows  # noqa: F401  (benchmarks use it)
from .cancellation import Cancelled as Cancelled
from .cancellation import StopFlag as StopFlag
from .cancellation import is_stopped as is_stopped
from .devices import resolve_device
from .engine import (
    DEFAULT_ENGINE,
    IDENTITY,
    TEST_TIME_TRANSFORMS,
    EngineOptions,
    tile_probabilities,
    to_device,
)
from .model import UNet
from .normalization import NON_FINITE_MESSAGE, normalization_stats, normalize  # noqa: F401
from .tile_choice import (  # noqa: F401  (re-exported: the names users and tests know)
    ACTIVATION_BYTES,
    AUTO_TILE_MAXIMUM,
    auto_tile_size,
    default_tile_size,
    tile_memory,
    usable_tile_sizes,
)
from .tile_choice import tile_stride as _stride
from .tiling import Tile, plan_tiles, read_mirrored

#: What :func:`predict`, :func:`iter_predict` and the stack functions of
#: :mod:`napari_unet.io.volumes` do when given no ``config``: the defaults of
#: :class:`~napari_unet.config.PredictConfig`, as the command line and the widget use
#: them: the model's default tile ("auto"). Until 2026-12-03 it was ``tile_size=None``,
#: one pass over the whole image, which runs out of memory on a large image (an 8192²
#: image needs about 19 GB of activations with 8 base features).
KEYWORD_DEFAULTS = PredictConfig()


@dataclass(frozen=True)
class Progress:
    """Progress of a long task: ``done`` of ``total`` steps."""

    done: int
    total: int
    stage: str = "tiles"


# ---- geometry ----------------------------------------------------------------
def _axis_geometry(
    model: UNet, size: int, tile_size: int | None, shrink_to_image: bool
) -> tuple[int, int]:
    """(input tile edge, stride) along one axis of length ``size``."""
    margin = 2 * model.halo if model.config.padding == "same" else 0
    whole = model.smallest_valid_input_covering(size + margin)
    if tile_size is None or whole <= tile_size:
        return whole, size
    model.check_input_size(tile_size)
    stride = _stride(model, tile_size)
    if stride < 1:
        smallest = usable_tile_sizes(model, maximum=tile_size + 64 * model.size_multiple)[0]
        raise ValueError(
            f"tile size {tile_size} leaves no output after the context is removed; "
            f"use at least {smallest}"
        )
    if shrink_to_image:
        count = -(-size // stride)
        for smaller in usable_tile_sizes(model, tile_size):
            if -(-size // _stride(model, smaller)) == count:
                return smaller, _stride(model, smaller)
    return tile_size, stride


def tile_layout(
    model: UNet,
    image_shape: tuple[int, int],
    tile_size: int | None,
    engine: EngineOptions = DEFAULT_ENGINE,
) -> tuple[tuple[int, int], list[Tile]]:
    """Input tile shape (Y, X) and the tiles covering an image of ``image_shape``
    (``engine.shrink_tiles_to_image``: tiles shrunk to the image, see :class:`EngineOptions`)."""
    shrink = engine.shrink_tiles_to_image
    ty, sy = _axis_geometry(model, int(image_shape[0]), tile_size, shrink)
    tx, sx = _axis_geometry(model, int(image_shape[1]), tile_size, shrink)
    margin = model.halo if model.config.padding == "same" else 0
    shape = (int(image_shape[0]), int(image_shape[1]))
    return (ty, tx), plan_tiles(shape, (sy, sx), model.halo, margin)


# ---- prediction --------------------------------------------------------------
def keyword_settings(
    config: PredictConfig | None,
    tile_size: int | str | Unset | None,
    batch_size: int | Unset,
    device: str | torch.device | Unset | None,
    test_time_augmentation: bool | Unset,
) -> PredictConfig:
    """The options :func:`predict` and its relatives run with: ``config`` (None:
    :data:`KEYWORD_DEFAULTS`), each keyword argument that was given replacing its field."""
    return predict_config(
        config,
        KEYWORD_DEFAULTS,
        tile_size=tile_size,
        batch_size=batch_size,
        device=device,
        test_time_augmentation=test_time_augmentation,
    )


def resolved_tile_size(model: UNet, tile_size: int | str | None) -> int | None:
    """The tile edge a config's ``tile_size`` stands for: ``"auto"`` is the model's
    :func:`default_tile_size`; a number or None (the whole image) is itself."""
    if tile_size == AUTO_TILE:
        return default_tile_size(model)
    assert not isinstance(tile_size, str), tile_size  # PredictConfig allows only "auto"
    return tile_size


def uses_test_time_augmentation(model: UNet, config: PredictConfig) -> bool:
    """Whether predicting with ``model`` under ``config`` averages rotations and flips:
    the config's choice when it makes one, else the model's own
    (``model.info.test_time_augmentation``; false unless stored in its checkpoint)."""
    if config.test_time_augmentation is not None:
        return bool(config.test_time_augmentation)
    return bool(model.info.test_time_augmentation)


def augmentation_transforms(model: UNet, config: PredictConfig) -> tuple[tuple[int, bool], ...]:
    """The ``(turns, flip)`` transforms whose probabilities Predict averages:
    :data:`~napari_unet.core.engine.IDENTITY` without test-time augmentation
    (:func:`uses_test_time_augmentation`), else the model's set
    (``model.info.test_time_transforms``: the 8 rotations and flips unless its
    checkpoint names the 4 rotations)."""
    if not uses_test_time_augmentation(model, config):
        return IDENTITY
    return TEST_TIME_TRANSFORMS[model.info.test_time_transforms]


def iter_predict(
    image: Any,
    model: UNet,
    out: Any,
    *,
    config: PredictConfig | None = None,
    tile_size: int | str | Unset | None = UNSET,
    batch_size: int | Unset = UNSET,
    device: str | torch.device | Unset | None = UNSET,
    stop: StopFlag = None,
    test_time_augmentation: bool | Unset = UNSET,
    engine: EngineOptions = DEFAULT_ENGINE,
    skip: Callable[[Tile], bool] | None = None,
) -> Iterator[Progress]:
    """Predict class probabilities into ``out``, yielding progress after each batch.

    Parameters
    ----------
    image : array-like, (Y, X) or (C, Y, X)
        Any numeric dtype; numpy, memory map, zarr or dask (read tile by tile).
    model : UNet
        Moved to the device (where it stays) and run in eval mode; its train or eval
        mode is given back at the end (also when stopped or failed).
    out : array-like, (n_classes, Y, X), float32
        Written tile by tile; every pixel exactly once.
    config, tile_size, batch_size, device, test_time_augmentation, engine
        See :func:`predict`.
    stop : callable or threading.Event
        Checked before each forward pass; when set, :class:`Cancelled` is raised.
    skip : callable, optional
        Given each tile of the plan, true when ``out`` holds its kept part already (an
        interrupted run resumed: :mod:`napari_unet.io._resume`): it is not predicted, and
        counts as done in the first progress report.
    """
    settings = keyword_settings(config, tile_size, batch_size, device, test_time_augmentation)
    image = as_array(image)
    check_channels(image, model)
    was_training = model.training
    plan = _plan(image, model, settings, engine)
    tiles = plan.tiles if skip is None else [tile for tile in plan.tiles if not skip(tile)]
    skipped = len(plan.tiles) - len(tiles)
    done = released_rows = 0
    try:
        yield Progress(skipped, len(plan.tiles))
        for first in range(0, len(tiles), settings.batch_size):
            if is_stopped(stop):
                raise Cancelled("prediction cancelled")
            batch = tiles[first : first + settings.batch_size]
            _predict_batch(image, model, out, batch, plan, stop=stop, engine=engine)
            done += len(batch)
            released_rows = release_finished(out, tiles, done, released_rows)
            yield Progress(skipped + done, len(plan.tiles))
    finally:
        model.train(was_training)  # a script's training between predictions goes on as it was


class _Plan(NamedTuple):
    """How :func:`iter_predict` goes through an image: the device, the image's
    normalisation (offset, scale, clip), the input tile shape (Y, X) and the tiles, and
    the ``(turns, flip)`` transforms whose probabilities are averaged."""

    device: torch.device
    offset: np.ndarray
    scale: np.ndarray
    clip: float | None
    tile_shape: tuple[int, int]
    tiles: list[Tile]
    transforms: tuple[tuple[int, bool], ...]


def _plan(image: Any, model: UNet, settings: PredictConfig, engine: EngineOptions) -> _Plan:
    """The :class:`_Plan` of predicting ``image`` under ``settings``; moves ``model`` to
    the device in eval mode."""
    torch_device = resolve_device(settings.device)
    norm = model.info.normalization
    offset, scale = normalization_stats(image, norm)
    tile_size = resolved_tile_size(model, settings.tile_size)
    tile_shape, tiles = tile_layout(model, image.shape[-2:], tile_size, engine)
    model.to(torch_device).eval()
    transforms = augmentation_transforms(model, settings)  # model.info parses metadata
    return _Plan(torch_device, offset, scale, norm.clip, tile_shape, tiles, transforms)


def _predict_batch(
    image: Any,
    model: UNet,
    out: Any,
    batch: list[Tile],
    plan: _Plan,
    *,
    stop: StopFlag,
    engine: EngineOptions,
) -> None:
    """Probabilities of the tiles of ``batch``, each written into its kept part of ``out``."""
    blocks = [_read_tile(image, tile, plan.tile_shape) for tile in batch]
    inputs = to_device(
        normalize(np.stack(blocks), plan.offset, plan.scale, plan.clip),
        plan.device,
        engine.channels_last,
    )
    per_pass = engine.cpu_tiles_per_pass if plan.device.type == "cpu" else len(batch)
    with torch.inference_mode():
        probabilities = tile_probabilities(
            model, inputs, per_pass, plan.transforms, _checker(stop), engine
        )
    for tile, tile_result in zip(batch, probabilities):
        out[(slice(None), *tile.keep)] = tile_result[(slice(None), *tile.crop())]


def _checker(stop: StopFlag) -> Callable[[], None]:
    """A callable that raises :class:`Cancelled` once ``stop`` is set."""

    def check() -> None:
        if is_stopped(stop):
            raise Cancelled("prediction cancelled")

    return check


def _read_tile(image: Any, tile: Tile, tile_shape: tuple[int, int]) -> np.ndarray:
    block = read_mirrored(image, tile.y.read_start, tile.x.read_start, tile_shape)
    return block[None] if block.ndim == 2 else block


def predict(
    image: Any,
    model: UNet,
    *,
    config: PredictConfig | None = None,
    tile_size: int | str | Unset | None = UNSET,
    batch_size: int | Unset = UNSET,
    device: str | torch.device | Unset | None = UNSET,
    progress: Callable[[Progress], None] | None = None,
    stop: StopFlag = None,
    out: Any = None,
    test_time_augmentation: bool | Unset = UNSET,
    engine: EngineOptions = DEFAULT_ENGINE,
) -> np.ndarray:
    """Class probabilities of a 2D image by overlap-tile inference.

    Parameters
    ----------
    image : array-like, (Y, X) or (C, Y, X)
        Any size and real numeric dtype (nested lists too). Normalised once for
        the whole image with the model's stored normalisation; mirrored at the
        borders.
    model : UNet
        Moved to the device, where it stays; its train or eval mode is kept.
    config : PredictConfig, optional
        The prediction options (its post-processing fields are not used here). None:
        :data:`KEYWORD_DEFAULTS`, i.e. the keyword defaults below. Each keyword
        argument that is given replaces that field of the config.
    tile_size : int, "auto" or None
        Input tile edge, context included; a valid input size of the model.
        "auto" (the default without a config): :func:`default_tile_size`. None: one
        pass over the whole mirror-padded image. An image smaller than a tile is done
        in one smaller tile.
    batch_size : int
        Tiles per forward pass (default 4; on the CPU, tiles read together; they go
        through the network ``engine.cpu_tiles_per_pass`` at a time, which is faster there).
    device : str or torch.device or None
        "auto"/None (the default: CUDA, else MPS, else CPU), "cpu", "cuda", "mps".
    progress : callable
        Called with a :class:`Progress` after each batch.
    stop : callable or threading.Event
        Raises :class:`Cancelled` when set.
    out : array-like, optional
        Preallocated (n_classes, Y, X) float32 destination (e.g. a memory map).
    test_time_augmentation : bool or None
        Average each tile's probabilities over its 8 rotations and flips
        (:data:`~napari_unet.core.engine.DIHEDRAL`), or over the 4 rotations for a
        model whose checkpoint asks for them (:func:`augmentation_transforms`): 8x
        (4x) the compute, smoother and usually slightly more accurate maps
        (BENCHMARKS.md, ISBI scribbles). The tiling is unchanged. Default None: as
        the model says (:func:`uses_test_time_augmentation`).
    engine : EngineOptions
        How the work is done (memory layout, fused kernels, tile shrinking, tiles per
        pass on the CPU), never what it computes: any options give the same
        probabilities up to float rounding. Default :data:`DEFAULT_ENGINE`, the
        fastest measured; for benchmarks and comparisons.

    Returns
    -------
    numpy.ndarray (or ``out``), (n_classes, Y, X), float32
        Class probabilities; class index ``c`` is label value ``c + 1``.

    Raises
    ------
    ValueError
        A bad option (see :class:`~napari_unet.config.PredictConfig`), a tile size
        that is not a valid input size of the model, an image the model cannot take.
    """
    image = as_array(image)
    out = _destination(out, (model.config.n_classes, *image.shape[-2:]))
    steps = iter_predict(
        image,
        model,
        out,
        config=config,
        tile_size=tile_size,
        batch_size=batch_size,
        device=device,
        stop=stop,
        test_time_augmentation=test_time_augmentation,
        engine=engine,
    )
    for step in steps:
        if progress is not None:
            progress(step)
    return out


def _destination(out: Any, shape: tuple[int, ...]) -> Any:
    """``out``, checked to have the probabilities' ``shape`` (n_classes, Y, X), or a new
    float32 array of that shape, all NaN, when it is None."""
    if out is None:
        return np.full(shape, np.nan, dtype=np.float32)
    if tuple(out.shape) != shape:
        raise ValueError(f"out has shape {tuple(out.shape)}; the probabilities need {shape}")
    return out

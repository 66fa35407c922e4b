"""Stacks: the 2D model run slice by slice over (Z, Y, X), (Z, C, Y, X) or (Z, Y, X, 3).

How an array's axes and channels are read (the axes rule, the channel rule) is
in :mod:`napari_unet.io.axes`. Every slice is normalised on its own (like a 2D
image), so predicting one slice alone gives exactly that slice of the stack's
prediction. Instances are 2D, per slice, numbered consecutively through the
stack.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..config import UNSET, PredictConfig, Unset, predict_config
from ..core.inference import KEYWORD_DEFAULTS, Progress, StopFlag, iter_predict, keyword_settings
from ..core.model import UNet
from ..core.postprocess import (
    MIN_INSTANCE_SIZE,
    InstanceMethod,
    instance_labels,
    mask_steps,
    prediction_mask,
)
from ..core.tiling import Tile
from .axes import ImagePlane, check_axes, guessed_axes, output_shapes, slice_count

__all__ = [
    "StackProgress",
    "annotated_slice_indices",
    "annotated_slices",
    "iter_predict_stack",
    "predict_stack",
    "segment_stack",
    "slice_instances",
    "stack_instances",
    "stack_slice",
]


def stack_slice(
    stack: Any, index: int, *, in_channels: int, axes: str | None = None, rgb: bool | None = None
) -> ImagePlane:
    """Slice ``index`` of ``stack`` as a lazy (C, Y, X) image for the model.

    This is what the live preview and the per-slice prediction use; see
    :mod:`napari_unet.io.axes` for ``axes`` and ``rgb``.
    """
    axes = axes or guessed_axes(stack.shape, in_channels, rgb)
    return ImagePlane(stack, axes, index, in_channels)


@dataclass(frozen=True)
class StackProgress(Progress):
    """Progress over slices x tiles; ``slice_index`` of ``n_slices`` is being predicted."""

    slice_index: int = 0
    n_slices: int = 1


def iter_predict_stack(
    stack: Any,
    model: UNet,
    out: Any,
    *,
    axes: str | None = None,
    rgb: bool | None = None,
    config: PredictConfig | None = None,
    tile_size: int | str | Unset | None = UNSET,
    batch_size: int | Unset = UNSET,
    device: str | torch.device | Unset | None = UNSET,
    stop: StopFlag = None,
    max_read_pixels: int | None = None,
    test_time_augmentation: bool | Unset = UNSET,
    skip: Callable[[int, Tile], bool] | None = None,
) -> Iterator[StackProgress]:
    """Predict every slice of ``stack`` into ``out``, yielding progress after each batch.

    Parameters
    ----------
    stack : array-like
        (Z, Y, X), (Z, C, Y, X), (Z, Y, X, 3|4) or a 2-D image; any array with
        basic slicing (read tile by tile).
    model : UNet
    out : array-like, (Z, n_classes, Y, X) float32 (no Z axis: (n_classes, Y, X))
        Written tile by tile; see :func:`~napari_unet.io.axes.output_shapes`.
    axes, rgb
        See :mod:`napari_unet.io.axes`; None = :func:`~napari_unet.io.axes.guess_axes`.
    config, tile_size, batch_size, device, stop, test_time_augmentation
        As for :func:`napari_unet.core.inference.iter_predict` (without a config, the
        keyword defaults: ``tile_size="auto"``, tiles of
        :func:`~napari_unet.core.tile_choice.default_tile_size`; ``None``: the whole slice
        in one pass).
    max_read_pixels : int, optional
        See :class:`~napari_unet.io.axes.ImagePlane`.
    skip : callable, optional
        Given a slice index and a tile, true when ``out`` holds that tile already (a
        resumed prediction): see ``skip`` of :func:`~napari_unet.core.inference.iter_predict`.
    """
    settings = keyword_settings(config, tile_size, batch_size, device, test_time_augmentation)
    in_channels = model.config.in_channels
    axes = check_axes(axes or guessed_axes(stack.shape, in_channels, rgb), stack.shape, in_channels)
    n_slices = slice_count(stack.shape, axes)
    for index in range(n_slices):
        plane = ImagePlane(stack, axes, index, in_channels, max_read_pixels)
        target = out
        if "Z" in axes:  # numpy/memmap slices are views; others are written through
            target = out[index] if isinstance(out, np.ndarray) else _Leading(out, index)
        skips = None if skip is None else functools.partial(skip, index)
        steps = iter_predict(plane, model, target, config=settings, stop=stop, skip=skips)
        for step in steps:
            yield StackProgress(
                index * step.total + step.done, n_slices * step.total, "tiles", index, n_slices
            )


class _Leading:
    """Writes ``target[index, ...]`` through ``view[...] = value`` (numpy, zarr, ...)."""

    def __init__(self, target: Any, index: int) -> None:
        self.target, self.index = target, index
        self.shape = tuple(target.shape[1:])

    def __setitem__(self, key: tuple, value: np.ndarray) -> None:
        self.target[(self.index, *key)] = value


def predict_stack(
    stack: Any,
    model: UNet,
    *,
    axes: str | None = None,
    rgb: bool | None = None,
    config: PredictConfig | None = None,
    tile_size: int | str | Unset | None = UNSET,
    batch_size: int | Unset = UNSET,
    device: str | torch.device | Unset | None = UNSET,
    progress: Callable[[StackProgress], None] | None = None,
    stop: StopFlag = None,
    out: Any = None,
    test_time_augmentation: bool | Unset = UNSET,
) -> Any:
    """Class probabilities of every slice of a stack (the 2D model, slice by slice).

    Parameters
    ----------
    stack : array-like
        See :func:`iter_predict_stack`.
    model : UNet
    axes, rgb : see :mod:`napari_unet.io.axes`.
    config, tile_size, batch_size, device, stop, test_time_augmentation
        As for :func:`napari_unet.core.inference.predict` (without a config, the
        keyword defaults: ``tile_size="auto"``, tiles of
        :func:`~napari_unet.core.tile_choice.default_tile_size`; ``None``: the whole slice
        in one pass).
    progress : callable
        Called with a :class:`StackProgress` (slices x tiles) after each batch.
    out : array-like, optional
        Preallocated destination (numpy, zarr, memory map), shaped as
        :func:`~napari_unet.io.axes.output_shapes` says.

    Returns
    -------
    numpy.ndarray (or ``out``), (Z, n_classes, Y, X) float32
        (n_classes, Y, X) for an image without a Z axis.
    """
    in_channels = model.config.in_channels
    axes = check_axes(axes or guessed_axes(stack.shape, in_channels, rgb), stack.shape, in_channels)
    if out is None:
        shape, _ = output_shapes(stack.shape, axes, model.config.n_classes)
        out = np.full(shape, np.nan, dtype=np.float32)
    steps = iter_predict_stack(
        stack,
        model,
        out,
        axes=axes,
        config=config,
        tile_size=tile_size,
        batch_size=batch_size,
        device=device,
        stop=stop,
        test_time_augmentation=test_time_augmentation,
    )
    for step in steps:
        if progress is not None:
            progress(step)
    return out


MAX_INSTANCES = 2**32 - 1
"""Most objects a stack's uint32 instance labels can number."""


def slice_instances(
    mask: np.ndarray,
    method: InstanceMethod = "components",
    offset: int = 0,
    min_size: int = MIN_INSTANCE_SIZE,
    fill_holes: bool = True,
) -> tuple[np.ndarray, int]:
    """Instance labels of one (Y, X) slice of a stack, numbered after ``offset``.

    The one routine that numbers instances through a stack: :func:`stack_instances`,
    :func:`napari_unet.io.outofcore.predict_to_zarr` and the Predict widget call it
    slice after slice, passing the objects counted so far as ``offset``. Objects
    under ``min_size`` pixels are not instances (0 keeps all;
    :data:`~napari_unet.config.PredictConfig.min_instance_size`); with ``fill_holes``
    background enclosed by one instance joins it.

    Returns
    -------
    labels : numpy.ndarray of uint32, (Y, X)
        0 for background, ``offset + 1 ..`` for the slice's objects
        (:func:`~napari_unet.core.postprocess.instance_labels` plus ``offset``).
    count : int
        The number of objects in the slice.

    Raises
    ------
    ValueError
        When the objects would be numbered past :data:`MAX_INSTANCES`.
    """
    labels = instance_labels(
        np.asarray(mask), method=method, min_size=min_size, fill_holes=fill_holes
    )
    count = int(labels.max()) if labels.size else 0
    if offset + count > MAX_INSTANCES:
        raise ValueError("too many objects for uint32 instance labels")
    return np.where(labels > 0, labels + offset, 0).astype(np.uint32), count


def stack_instances(
    mask: np.ndarray,
    method: InstanceMethod = "components",
    min_size: int = MIN_INSTANCE_SIZE,
    fill_holes: bool = True,
) -> np.ndarray:
    """Instance labels of a (Y, X) or (Z, Y, X) class mask, slice by slice.

    ``min_size``: objects under this many pixels are not instances (0 keeps all).

    Returns
    -------
    numpy.ndarray of uint32, same shape
        2D instances of each slice, numbered consecutively through the stack
        (slice 0 gets 1..n0, slice 1 n0+1.., ...) by :func:`slice_instances`,
        so every label is unique.
    """
    if mask.ndim == 2:
        return slice_instances(mask, method, min_size=min_size, fill_holes=fill_holes)[0]
    labels = np.zeros(mask.shape, np.uint32)
    count = 0
    for index, plane in enumerate(mask):
        labels[index], found = slice_instances(plane, method, count, min_size, fill_holes)
        count += found
    return labels


def segment_stack(
    stack: Any,
    model: UNet,
    *,
    config: PredictConfig | None = None,
    instances: InstanceMethod | Unset = UNSET,
    previous: np.ndarray | None = None,
    annotation: np.ndarray | None = None,
    **options: Any,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Probabilities, class mask and instances of an image or stack, in memory.

    Parameters
    ----------
    stack : array-like
        (Y, X), (Z, Y, X), with channels or RGB, as :func:`predict_stack` takes it.
    model : UNet
    config : PredictConfig, optional
        Its instance method and minimum instance size too; None: the defaults.
    instances : "components" or "watershed", optional
        Replaces ``config.instances``.
    previous, annotation : integer arrays shaped as the mask, optional
        The last mask and the strokes, for
        :func:`~napari_unet.core.postprocess.prediction_mask` plane by plane
        (:mod:`napari_unet.io.last_masks`).
    **options
        :func:`predict_stack`'s keywords (``axes``, ``rgb``, ``tile_size``, ...).

    Returns
    -------
    probabilities : (Z, C, Y, X) or (C, Y, X) float32
    mask : (Z, Y, X) or (Y, X) uint8
        1 = background, 2.. classes.
    instances : (Z, Y, X) or (Y, X) uint32
        As :func:`~napari_unet.io.axes.output_shapes` says.
    """
    overrides = {name: options.pop(name, UNSET) for name in _PREDICT_FIELDS}
    settings = predict_config(config, KEYWORD_DEFAULTS, instances=instances, **overrides)
    probabilities = predict_stack(stack, model, config=settings, **options)
    steps = mask_steps(model, settings)
    planes = [probabilities] if probabilities.ndim == 3 else list(probabilities)
    befores = _per_plane(previous, "last mask", probabilities)
    strokes = _per_plane(annotation, "strokes", probabilities)
    masks = [
        prediction_mask(plane, **steps._asdict(), previous=before, annotation=painted)
        for plane, before, painted in zip(planes, befores, strokes)
    ]
    mask = masks[0] if probabilities.ndim == 3 else np.stack(masks)
    labels = stack_instances(
        mask, settings.instances, settings.min_instance_size, settings.fill_holes
    )
    return probabilities, mask, labels


def _per_plane(array: np.ndarray | None, name: str, probabilities: np.ndarray) -> list:
    """``array`` ((Y, X) or (Z, Y, X), as the mask) split into the planes of
    ``probabilities`` ((C, Y, X) or (Z, C, Y, X)); Nones without one."""
    planes = 1 if probabilities.ndim == 3 else probabilities.shape[0]
    if array is None:
        return [None] * planes
    shape = probabilities.shape[-2:] if planes == 1 else (planes, *probabilities.shape[-2:])
    if np.shape(array) != tuple(shape):
        raise ValueError(f"the {name} has shape {np.shape(array)}, the mask {tuple(shape)}")
    return [array] if probabilities.ndim == 3 else list(array)


_PREDICT_FIELDS = ("tile_size", "batch_size", "device", "test_time_augmentation")
"""The keyword arguments of :func:`predict_stack` that replace a config's fields."""


def annotated_slice_indices(annotations: Any) -> list[int]:
    """Indices of the slices of a (Z, Y, X) annotation with any labelled pixel."""
    return [index for index in range(annotations.shape[0]) if np.any(annotations[index])]


def annotated_slices(
    stack: Any,
    annotations: Any,
    *,
    in_channels: int = 1,
    axes: str | None = None,
    rgb: bool | None = None,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The slices of a stack that carry annotations, ready for ``finetune``.

    Parameters
    ----------
    stack : array-like
        (Z, Y, X), (Z, C, Y, X) or (Z, Y, X, 3|4); see :mod:`napari_unet.io.axes`.
    annotations : array-like, (Z, Y, X) int
        0 = unlabelled, 1 = background, 2..K = foreground classes.
    in_channels : int
        The model's input channels.
    axes, rgb : str, bool, optional
        The stack's axes (e.g. ``"ZCYX"``) and whether a last axis of 3 or 4 is RGB(A);
        None: guessed from the shape (:mod:`napari_unet.io.axes`).

    Returns
    -------
    images : list of (in_channels, Y, X) float32 arrays
    annotations : list of (Y, X) arrays
        Only slices with at least one labelled pixel, in slice order; empty
        lists when nothing is annotated (``finetune`` then says what to paint).
    """
    axes = check_axes(axes or guessed_axes(stack.shape, in_channels, rgb), stack.shape, in_channels)
    if "Z" not in axes:
        raise ValueError(f"expected a stack with a Z axis, got axes {axes}")
    expected = tuple(stack.shape[axes.index(letter)] for letter in "ZYX")
    if tuple(annotations.shape) != expected:
        raise ValueError(
            f"annotations of shape {tuple(annotations.shape)} do not match the stack's "
            f"(Z, Y, X) = {expected}"
        )
    indices = annotated_slice_indices(annotations)
    images = [np.asarray(ImagePlane(stack, axes, index, in_channels)) for index in indices]
    return images, [np.asarray(annotations[index]) for index in indices]

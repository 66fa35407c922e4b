"""Data augmentation of training patches: flips, 90° rotations, elastic deformation, intensity.

All functions are pure functions of their arrays and a ``numpy.random.Generator``:
the same seed gives the same result.

Elastic deformation as in Ronneberger et al. (2015): random displacement vectors
on a coarse 3 x 3 grid, drawn from a Gaussian with 10 pixels standard deviation,
interpolated to every pixel with bicubic interpolation. The image is resampled
smoothly, label and weight maps with nearest neighbour, all with the same field.

Displacement convention: a field (2, Y, X) holds ``(dy, dx)``; the output pixel
``(y, x)`` takes the input value at ``(y + dy, x + dx)`` (mirrored at the edges
about the border pixel centres).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import torch
from torch.nn import functional as F

from ..config import AugmentConfig

ImageMode = Literal["bilinear", "bicubic"]


def elastic_field(
    shape: tuple[int, int], rng: np.random.Generator, std: float = 10.0, grid: int = 3
) -> np.ndarray:
    """Random smooth displacement field.

    Parameters
    ----------
    shape : (int, int)
        ``(Y, X)`` of the field.
    rng : numpy.random.Generator
        Source of the ``2 * grid**2`` coarse displacements.
    std : float
        Standard deviation of the coarse displacements, in pixels.
    grid : int
        Points per axis of the coarse lattice (>= 2); its corners are the image corners.

    Returns
    -------
    ndarray of float32, shape (2, Y, X)
        Displacements ``(dy, dx)`` in pixels.

    Notes
    -----
    Interpolated with ``torch.nn.functional.interpolate(mode="bicubic",
    align_corners=True)``: the coarse points sit exactly on the corners and at
    even spacing, the cubic convolution kernel passes through the coarse values
    (so the per-pixel std at grid points is ``std``), and the same call runs on a
    GPU (:func:`interpolate_field`). ``scipy.ndimage.zoom(order=3)`` would also
    work but uses B-splines with a prefilter and a different edge alignment.
    """
    if grid < 2:
        raise ValueError(f"grid must be >= 2 (corners included), got {grid}")
    coarse = rng.normal(0.0, std, size=(1, 2, grid, grid)).astype(np.float32)
    return interpolate_field(torch.from_numpy(coarse), shape)[0].numpy()


def interpolate_field(coarse: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """Bicubic interpolation of coarse displacements to every pixel.

    Parameters
    ----------
    coarse : Tensor, shape (N, 2, G, G)
        Displacements ``(dy, dx)`` on a G x G lattice spanning the image, any device.
    shape : (int, int)
        ``(Y, X)`` of the output.

    Returns
    -------
    Tensor, shape (N, 2, Y, X)
        Per-pixel displacements, same device and dtype as ``coarse``.
    """
    return F.interpolate(coarse, size=tuple(shape), mode="bicubic", align_corners=True)


def elastic_deform_torch(
    images: torch.Tensor,
    labels: torch.Tensor | None,
    weights: torch.Tensor | None,
    fields: torch.Tensor,
    mode: ImageMode = "bilinear",
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """Warp a batch with per-sample displacement fields, on the tensors' device.

    Parameters
    ----------
    images : Tensor of float, shape (N, C, Y, X)
        Resampled with ``mode`` interpolation (``grid_sample``, reflection padding).
    labels : Tensor, shape (N, Y, X), optional
        Resampled with nearest neighbour: values are only copied, never mixed.
    weights : Tensor, shape (N, Y, X), optional
        Resampled like ``labels``.
    fields : Tensor, shape (N, 2, Y, X)
        Displacements ``(dy, dx)`` in pixels (see the module docstring).
    mode : {"bilinear", "bicubic"}
        Image interpolation. Bilinear never overshoots the input range.

    Returns
    -------
    images, labels, weights : Tensor
        Warped tensors with the input shapes and dtypes (``None`` stays ``None``).
    """
    n, _, height, width = images.shape
    if fields.shape != (n, 2, height, width):
        raise ValueError(f"fields must have shape {(n, 2, height, width)}, got {fields.shape}")
    dtype = images.dtype if images.is_floating_point() else torch.float32
    grid = _sampling_grid(fields.to(device=images.device, dtype=dtype))
    warped = F.grid_sample(
        images.to(dtype), grid, mode=mode, padding_mode="reflection", align_corners=True
    ).to(images.dtype)
    return warped, _warp_nearest(labels, grid), _warp_nearest(weights, grid)


def elastic_deform(
    image: np.ndarray,
    labels: np.ndarray | None = None,
    weights: np.ndarray | None = None,
    *,
    rng: np.random.Generator | None = None,
    std: float = 10.0,
    grid: int = 3,
    field: np.ndarray | None = None,
    mode: ImageMode = "bilinear",
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Elastic deformation of one patch (numpy wrapper of :func:`elastic_deform_torch`).

    Parameters
    ----------
    image : ndarray, shape (C, Y, X) or (Y, X)
        The image, resampled with ``mode`` interpolation.
    labels : ndarray of int, shape (Y, X), optional
        Resampled with nearest neighbour.
    weights : ndarray of float, shape (Y, X), optional
        Resampled with nearest neighbour.
    rng : numpy.random.Generator, optional
        Draws the field; needed unless ``field`` is given.
    std, grid : float, int
        See :func:`elastic_field`.
    field : ndarray, shape (2, Y, X), optional
        Displacements ``(dy, dx)`` to use instead of drawing one.
    mode : {"bilinear", "bicubic"}
        Image interpolation.

    Returns
    -------
    image, labels, weights : ndarray
        Same shapes and dtypes as the inputs (an integer image comes back as
        float32); ``None`` stays ``None``.
    """
    image = np.asarray(image)
    labels = None if labels is None else np.asarray(labels)
    weights = None if weights is None else np.asarray(weights)
    if image.ndim not in (2, 3):
        raise ValueError(f"image must be (Y, X) or (C, Y, X), got shape {image.shape}")
    field = _field_to_use(field, image.shape[-2:], rng, std, grid)
    warped, labels_t, weights_t = elastic_deform_torch(
        *_as_batches(image, labels, weights, field), mode
    )
    out_dtype = image.dtype if np.issubdtype(image.dtype, np.floating) else np.dtype(np.float32)
    image_out = warped.reshape(image.shape).numpy().astype(out_dtype, copy=False)
    labels_out = _from_batch(labels_t, labels)
    weights_out = _from_batch(weights_t, weights)
    return image_out, labels_out, weights_out


def _field_to_use(
    field: np.ndarray | None,
    shape: tuple[int, int],
    rng: np.random.Generator | None,
    std: float,
    grid: int,
) -> np.ndarray:
    """``field`` when given, else one drawn from ``rng`` (:func:`elastic_field`)."""
    if field is not None:
        return field
    if rng is None:
        raise ValueError("give either rng or field")
    return elastic_field(shape, rng, std, grid)


def _as_batches(
    image: np.ndarray, labels: np.ndarray | None, weights: np.ndarray | None, field: np.ndarray
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None, torch.Tensor]:
    """The arguments of :func:`elastic_deform_torch` for one patch: the image (1, C, Y, X)
    and the field (1, 2, Y, X) in the image's float type (float32 for other types), the
    labels and weights (1, Y, X) (:func:`_to_batch`, which checks their shapes)."""
    shape = image.shape[-2:]
    compute = image.dtype if image.dtype in (np.float32, np.float64) else np.dtype(np.float32)
    images_t = torch.from_numpy(np.ascontiguousarray(image, dtype=compute)).reshape(1, -1, *shape)
    fields_t = torch.from_numpy(np.ascontiguousarray(field, dtype=compute))[None]
    labels_t = _to_batch(labels, shape, "labels")
    weights_t = _to_batch(weights, shape, "weights")
    return images_t, labels_t, weights_t, fields_t


def _from_batch(batch: torch.Tensor | None, like: np.ndarray | None) -> np.ndarray | None:
    """The first item of a batch made by :func:`_to_batch`, in ``like``'s dtype."""
    if batch is None or like is None:
        return None
    return batch[0].numpy().astype(like.dtype)


def random_flip_rot(
    arrays: Sequence[np.ndarray | None],
    rng: np.random.Generator,
    flips: bool = True,
    rot90: bool = True,
) -> list[np.ndarray | None]:
    """Apply the same random flips and 90° rotation to several arrays.

    Parameters
    ----------
    arrays : sequence of ndarray or None
        Arrays whose last two axes are (Y, X), all with the same (Y, X);
        ``None`` entries are passed through.
    rng : numpy.random.Generator
        Draws ``k`` (rotation by ``k * 90°``), then the y flip, then the x flip.
    flips : bool
        Random flips along y and along x (each with probability 1/2).
    rot90 : bool
        Random rotation by ``k * 90°``, ``k`` in {0, 1, 2, 3}; only {0, 2} if Y != X,
        so the shape never changes.

    Returns
    -------
    list of ndarray or None
        Contiguous transformed copies, in the input order.
    """
    shapes = {a.shape[-2:] for a in arrays if a is not None}
    if len(shapes) > 1:
        raise ValueError(f"arrays differ in their last two axes: {sorted(shapes)}")
    square = not shapes or len(set(shapes.pop())) == 1
    k = 0
    if rot90:
        k = int(rng.integers(4)) if square else 2 * int(rng.integers(2))
    flip_axes = []
    if flips:
        flip_axes = [axis for axis in (-2, -1) if rng.integers(2)]
    out: list[np.ndarray | None] = []
    for array in arrays:
        if array is not None:
            array = np.rot90(array, k, axes=(-2, -1))
            array = np.flip(array, axis=tuple(flip_axes)) if flip_axes else array
            array = np.ascontiguousarray(array)
        out.append(array)
    return out


def augment_patch(
    image: np.ndarray,
    labels: np.ndarray | None,
    weights: np.ndarray | None,
    config: AugmentConfig,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Augment one training patch: flips/rotation, elastic deformation, intensity.

    Parameters
    ----------
    image : ndarray of float, shape (C, Y, X) or (Y, X)
        Normalised image patch.
    labels : ndarray of int, shape (Y, X), optional
        Annotation (0 = unlabelled, 1 = background, 2.. = classes).
    weights : ndarray of float, shape (Y, X), optional
        Loss weights.
    config : AugmentConfig
        Which augmentations and how strong.
    rng : numpy.random.Generator
        Source of all random draws.

    Returns
    -------
    image, labels, weights : ndarray
        Contiguous augmented arrays, same shapes and dtypes; ``None`` stays ``None``.
        The intensity change is ``image * gain + offset`` with ``gain ~ U(1 - a, 1 + a)``
        and ``offset ~ U(-a, a)``, ``a = config.intensity``, one draw per patch.
    """
    turned, labels, weights = random_flip_rot(
        [np.asarray(image), labels, weights], rng, config.flips, config.rot90
    )
    assert turned is not None  # only None comes back as None
    image = turned
    if config.elastic and config.elastic_std > 0:
        image, labels, weights = elastic_deform(
            image, labels, weights, rng=rng, std=config.elastic_std, grid=config.elastic_grid
        )
    amplitude = config.intensity
    if amplitude > 0:
        gain = rng.uniform(1.0 - amplitude, 1.0 + amplitude)
        offset = rng.uniform(-amplitude, amplitude)
        out_dtype = image.dtype if np.issubdtype(image.dtype, np.floating) else np.float32
        image = (image * gain + offset).astype(out_dtype, copy=False)
    return np.ascontiguousarray(image), labels, weights


def _sampling_grid(fields: torch.Tensor) -> torch.Tensor:
    """Pixel displacements (N, 2, Y, X) -> ``grid_sample`` grid (N, Y, X, 2) of normalised (x, y).

    With ``align_corners=True`` pixel ``i`` of an axis of size ``n`` sits at
    ``-1 + 2 i / (n - 1)``, so a displacement ``d`` pixels adds ``2 d / (n - 1)``.
    """
    _, _, height, width = fields.shape
    options: dict[str, Any] = {"device": fields.device, "dtype": fields.dtype}
    rows = torch.linspace(-1.0, 1.0, height, **options)
    cols = torch.linspace(-1.0, 1.0, width, **options)
    identity = torch.stack(torch.meshgrid(cols, rows, indexing="xy"), dim=-1)  # (Y, X, 2)
    scale = torch.tensor([2.0 / max(width - 1, 1), 2.0 / max(height - 1, 1)], **options)
    return identity + fields.flip(1).permute(0, 2, 3, 1) * scale


_EXACT_IN_FLOAT32 = {
    torch.bool, torch.uint8, torch.int8, torch.int16, torch.float16, torch.bfloat16, torch.float32
}  # fmt: skip


def _warp_nearest(values: torch.Tensor | None, grid: torch.Tensor) -> torch.Tensor | None:
    """Nearest-neighbour resampling of (N, Y, X) values; values are copied, never mixed.

    Sampled as float32 where that is exact (small integer types, float32), else as
    float64 (exact for integers up to 2**53); MPS has no float64, so there int32 and
    int64 values must stay below 2**24.
    """
    if values is None:
        return None
    exact = values.dtype in _EXACT_IN_FLOAT32 or values.device.type == "mps"
    compute = torch.float32 if exact else torch.float64
    sampled = F.grid_sample(
        values[:, None].to(compute),
        grid.to(device=values.device, dtype=compute),
        mode="nearest",
        padding_mode="reflection",
        align_corners=True,
    )
    return sampled[:, 0].to(values.dtype)


def _to_batch(array: np.ndarray | None, shape: tuple[int, ...], name: str) -> torch.Tensor | None:
    """(Y, X) numpy array -> (1, Y, X) tensor, checking the shape.

    Unsigned integers wider than 8 bits (little supported by torch) become int64.
    """
    if array is None:
        return None
    if array.shape != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {array.shape}")
    if array.dtype.kind == "u" and array.dtype.itemsize > 1:
        array = array.astype(np.int64)
    return torch.from_numpy(np.ascontiguousarray(array))[None]

"""Intensity normalisation: statistics once per image, applied per tile in a wide type.

Kept apart from :mod:`napari_unet.core.inference` (which re-exports these names) so
that the rule "normalise in float64 before the float32 cast" has one home.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..config import NormConfig
from ._limits import check_normalization

__all__ = ["NON_FINITE_MESSAGE", "check_real", "normalization_stats", "normalize"]

NON_FINITE_MESSAGE = (
    "the image contains NaN or infinite values; replace them (e.g. with 0) before predicting "
    "or training"
)


def check_real(dtype: np.dtype) -> None:
    """Refuse complex images (a cast would silently drop the imaginary part)."""
    if np.dtype(dtype).kind == "c":
        raise ValueError(
            f"the image is complex ({np.dtype(dtype)}); give its magnitude (numpy.abs) or its "
            "real part"
        )


def normalization_stats(
    image: Any, norm: NormConfig | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel offset and scale of an image, computed once for the whole image.

    Parameters
    ----------
    image : array-like, (Y, X) or (C, Y, X)
        Large images are subsampled on a regular grid (about 4 million pixels).
    norm : NormConfig
        Percentiles mapped to 0 and 1 (numbers with 0 <= low < high <= 100,
        else ValueError).

    Returns
    -------
    offset, scale : numpy.ndarray, (C,) float64
        ``normalised = (image - offset) / scale``. A constant channel (high = low) gets
        scale max(|high|, 1).
        Kept in float64 so that wide types (uint32, int64, float64) with a large
        offset keep their contrast (see :func:`normalize`).
    """
    norm = norm or NormConfig()
    check_normalization(norm.to_dict())
    check_real(image.dtype)
    size_y, size_x = image.shape[-2:]
    step = max(1, int(np.sqrt(size_y * size_x / 4e6)))
    sample = np.asarray(image[..., ::step, ::step])
    sample = sample.reshape(-1, *sample.shape[-2:]) if sample.ndim == 3 else sample[None]
    flat = sample.reshape(sample.shape[0], -1)
    if _is_small_integer(flat.dtype) and flat.size:
        low, high = histogram_percentiles(flat, [norm.low, norm.high])
    else:
        flat = flat.astype(np.float64, copy=False)
        if not np.isfinite(flat).all():
            raise ValueError(NON_FINITE_MESSAGE)
        low, high = np.percentile(flat, [norm.low, norm.high], axis=1)
    scale = high - low
    scale = np.where(scale > 0, scale, np.maximum(np.abs(high), 1.0))
    return low, scale


def _is_small_integer(dtype: np.dtype) -> bool:
    """Booleans and integers of at most 16 bits: few enough values for a histogram."""
    return dtype.kind in "biu" and dtype.itemsize <= 2


def histogram_percentiles(flat: np.ndarray, percentiles: Sequence[float]) -> np.ndarray:
    """``numpy.percentile(flat, percentiles, axis=1)`` of small integers, from a histogram.

    Parameters
    ----------
    flat : ndarray, (C, N), N >= 1
        Booleans or integers of at most 16 bits (8 and 16-bit microscopy images).
    percentiles : sequence of float
        In [0, 100].

    Returns
    -------
    ndarray of float64, (len(percentiles), C)
        Equal to NumPy's default ("linear") percentiles of ``flat`` as float64, bit for
        bit: the same two order statistics, found by counting instead of partitioning
        (the statistics of a 2048 x 2048 uint8 image 6.8x faster, in
        benchmarks/bench_normalization.py), interpolated as NumPy does.
    """
    size = flat.shape[1]
    virtual = (size - 1) * np.true_divide(np.asarray(percentiles, dtype=np.float64), 100)
    previous = np.floor(virtual)
    gamma = virtual - previous
    ranks = previous.astype(np.intp)
    following = np.minimum(ranks + 1, size - 1)
    smallest = int(flat.min())
    result = np.empty((len(gamma), flat.shape[0]))
    for channel, values in enumerate(flat):
        cumulative = np.cumsum(np.bincount(values.astype(np.int64) - smallest))
        below = np.searchsorted(cumulative, ranks, side="right") + float(smallest)
        above = np.searchsorted(cumulative, following, side="right") + float(smallest)
        difference = above - below
        # numpy's _lerp: from the nearer end, so that equal ends give that value exactly
        result[:, channel] = np.where(
            gamma >= 0.5, above - difference * (1 - gamma), below + difference * gamma
        )
    return result


def normalize(
    block: np.ndarray, offset: np.ndarray, scale: np.ndarray, clip: float | None = None
) -> np.ndarray:
    """Apply :func:`normalization_stats` to a (..., C, Y, X) block; float32.

    Types wider than 16 bits (other than float32) are normalised in float64 and
    only the result is cast: cast first, a uint32 image at 3e9 + 0..199 would keep
    2 distinct values instead of 200. With ``clip`` (the model's
    :attr:`~napari_unet.config.NormConfig.clip`), the result is clipped to
    [-clip, clip]: a hot pixel is then only very bright.

    Raises
    ------
    ValueError
        If the block holds NaN or infinite values (or values beyond float32).
    """
    block = np.asarray(block)
    wide = block.dtype.itemsize > 2 and block.dtype != np.float32
    work: type[np.floating[Any]] = np.float64 if wide else np.float32
    offset, scale = (np.asarray(v, dtype=work)[:, None, None] for v in (offset, scale))
    with np.errstate(over="ignore", invalid="ignore"):
        normalised = ((block.astype(work, copy=False) - offset) / scale).astype(
            np.float32, copy=False
        )
    if not np.isfinite(normalised).all():
        raise ValueError(NON_FINITE_MESSAGE)
    if clip is not None:
        np.clip(normalised, -clip, clip, out=normalised)
    return normalised

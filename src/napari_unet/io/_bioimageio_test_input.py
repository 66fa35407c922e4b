"""The test input of a bioimage.io package, and its normalisation as bioimage.io does it.

Used by :func:`napari_unet.io.bioimageio.export_bioimageio`, which computes the package's
test output from this input normalised by :func:`scale_range`; importable from there too.
"""

from __future__ import annotations

import numpy as np

from ..config import NormConfig
from ..core.model import UNet
from ..core.normalization import NON_FINITE_MESSAGE

#: ``eps`` of bioimage.io's ``scale_range``, ``(x - low) / (high - low + eps)``: the spec's
#: default (it must be > 0; ``rdf.yaml`` leaves a default implicit), what bioimageio.core applies.
SCALE_RANGE_EPS = 1e-6


def default_test_size(model: UNet, target: int = 256) -> int:
    """Edge of the default test tensor: the smallest valid input size >= ``target``.

    For a "same" network it must also exceed twice the halo, so that something is
    left once the halo is cropped.
    """
    minimum = target if model.config.padding == "valid" else max(target, 2 * model.halo + 1)
    return model.nearest_valid_sizes(max(minimum, model.min_input_size))[1]


def scale_range(image: np.ndarray, norm: NormConfig) -> np.ndarray:
    """(C, Y, X) ``image`` normalised as bioimage.io's ``scale_range`` (then ``clip``,
    for a model that clips: ``norm.clip``) does it; float32.

    Per channel, ``(image - low) / (high - low + eps)`` with ``low`` and ``high`` its
    ``norm.low`` and ``norm.high`` percentiles (NumPy's linear ones, as bioimageio.core)
    and ``eps`` = :data:`SCALE_RANGE_EPS`. napari-unet's own normalisation
    (:func:`napari_unet.core.normalization.normalization_stats`) divides by
    ``high - low`` alone, or by ``max(|high|, 1)`` where ``high == low``: the two agree
    (within about ``eps / (high - low)``) unless the range is flat (e.g. a sparse
    image, over 98.8 % of it at one value for the default percentiles 1 and 99.8) or
    tiny (about 1e-3 or less, where ``eps`` is not negligible).

    Raises
    ------
    ValueError
        If the image, or the normalised image, holds NaN or infinite values.
    """
    data = np.asarray(image, dtype=np.float64)
    if not np.isfinite(data).all():
        raise ValueError(NON_FINITE_MESSAGE)
    low, high = np.percentile(data, [norm.low, norm.high], axis=(-2, -1), keepdims=True)
    with np.errstate(over="ignore"):
        normalised = ((data - low) / (high - low + SCALE_RANGE_EPS)).astype(np.float32)
    if not np.isfinite(normalised).all():
        raise ValueError(
            "the test image normalised as bioimage.io does (scale_range: divided by its "
            f"percentile range + {SCALE_RANGE_EPS:g}) exceeds float32; give another --test-image"
        )
    if norm.clip is not None:  # the package's clip step
        np.clip(normalised, -norm.clip, norm.clip, out=normalised)
    return normalised


def package_test_input(model: UNet, image: np.ndarray | None) -> np.ndarray:
    """(C, S, S) float32 test input: ``image`` cropped to a valid size, or a synthetic one."""
    channels = model.config.in_channels
    if image is None:
        from .synthetic import synthetic_nuclei

        size = default_test_size(model)
        planes = [synthetic_nuclei((size, size), rng=seed)[0] for seed in range(channels)]
        return np.stack(planes).astype(np.float32)
    from .data import to_channels_first

    image = to_channels_first(image, channels)
    edge = min(image.shape[-2:])
    same = model.config.padding == "same"
    sizes = [
        n for n in model.valid_input_sizes(maximum=min(edge, 512)) if not same or n > 2 * model.halo
    ]
    if not sizes:
        raise ValueError(
            f"test image of {image.shape[-2]} x {image.shape[-1]} pixels is smaller than the "
            f"model's smallest test input ({default_test_size(model, 1)} pixels per side)"
        )
    size = sizes[-1]
    top, left = (image.shape[-2] - size) // 2, (image.shape[-1] - size) // 2
    return np.ascontiguousarray(image[:, top : top + size, left : left + size], dtype=np.float32)

"""Carrying a model's background threshold over to its fine-tuned copy.

A model's ``background_threshold`` (``model.info``; Predict grows objects into the
pixels whose background probability is at most this) was chosen for that model's
probabilities. Fine-tuning lowers them a little where the strokes say nothing, and
the 16-feature ``em-membranes``' 0.8 (bundled until 2026-12-02), kept as it was, then
thinned the membranes of its
fine-tuned copies to lines (annotation-loop benchmark, ISBI, one round: pixel error on
unseen slices 0.086 -> 0.102-0.104). The fine-tuned model gets
the threshold at which it calls as many pixels background as the starting model did
at its own, counted on the training images away from the strokes, where it was asked
to keep the starting model's predictions (quantile matching).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from ..core.inference import default_tile_size, predict
from ..core.model import UNet

__all__ = ["FAR_FROM_STROKES", "MAX_PIXELS", "carried_threshold"]

#: Pixels this close (chessboard distance) to a painted pixel are not counted.
FAR_FROM_STROKES = 5
#: At most this many pixels of the training images are predicted (centre crops).
MAX_PIXELS = 2**19


def carried_threshold(
    starting: UNet,
    tuned: UNet,
    images: Sequence[np.ndarray],
    annotations: Sequence[np.ndarray],
    device,
) -> float:
    """The background threshold of ``tuned`` that matches ``starting``'s own.

    Parameters
    ----------
    starting, tuned : UNet
        The model before fine-tuning (with its ``background_threshold``) and after.
    images : sequence of (Y, X) or (C, Y, X) arrays
        The training images.
    annotations : sequence of (Y, X) int arrays
        Their strokes (0 = unpainted).
    device : torch.device or str

    Returns
    -------
    float
        In [0.5, 1): the quantile of ``tuned``'s background probability, on the unpainted
        pixels at least :data:`FAR_FROM_STROKES` from a stroke, that leaves as many of
        them above it as ``starting`` had above its threshold; 0.5 if that is lower.
    """
    threshold = starting.info.background_threshold
    per_image = MAX_PIXELS // max(len(images), 1)
    before: list[np.ndarray] = []
    after: list[np.ndarray] = []
    for image, annotation in zip(images, annotations):
        window = _centre_crop(annotation.shape, per_image)
        far = ~ndimage.binary_dilation(
            annotation[window] > 0, np.ones((3, 3), bool), iterations=FAR_FROM_STROKES
        )
        crop = np.asarray(image)[(..., *window)]
        for model, values in ((starting, before), (tuned, after)):
            tile = default_tile_size(model)
            values.append(predict(crop, model, tile_size=tile, device=device)[0][far])
    starting_values, tuned_values = np.concatenate(before), np.concatenate(after)
    if tuned_values.size == 0:
        return threshold
    share = float(np.mean(starting_values > threshold))
    carried = float(np.quantile(tuned_values, 1 - share))
    return min(max(carried, 0.5), math.nextafter(1.0, 0.0))


def _centre_crop(shape: tuple[int, ...], pixels: int) -> tuple[slice, slice]:
    """The (Y, X) window of at most ``pixels`` pixels at the centre of a plane."""
    height, width = shape[-2:]
    scale = min(1.0, math.sqrt(pixels / max(height * width, 1)))
    crop_height, crop_width = max(1, int(height * scale)), max(1, int(width * scale))
    top, left = (height - crop_height) // 2, (width - crop_width) // 2
    return slice(top, top + crop_height), slice(left, left + crop_width)

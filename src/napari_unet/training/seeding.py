"""Objects for a new model whose most probable class finds none.

A new model can learn what its strokes teach, the background or membrane more probable
on the background than on the objects, and still put nearly every pixel's background
probability above 0.5 (ISBI, the loop benchmark's seed 3 after 150 iterations: median
0.79 on true membrane, 0.60 on true cells). Its threshold from the strokes
(:func:`~napari_unet.training.calibration.stroke_share_threshold`, 0.78 there) tells
apart the two, but Predict grows objects from the most probable class
(:func:`~napari_unet.core.boundaries.grow_objects`), and there is none: the mask is all
background, and the fine-tunes that follow keep it so.

For such a model the decision between the classes is moved into its weights: the
bias of class 0 in the 1x1 output layer is lowered by ``logit(level)``, so that the
background probability is 0.5 where it was ``level``, the midpoint of 0.5 and the
threshold (higher where the midpoint would seed too little, :func:`seed_level`), and the
threshold is re-expressed on the moved probabilities. Every path
that predicts with the model (Predict, the chunked and out-of-core paths, the command
line, an exported model) then finds objects seeded where the model is least sure of
the background and grown up to its threshold, with no setting to carry. A model whose
most probable class finds objects is left as it is.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..core.model import UNet

__all__ = ["MIN_OBJECT_SHARE", "move_decision", "moved_threshold", "seed_level"]

#: The decision is moved when the most probable class calls object fewer than this
#: share of the unpainted pixels that the strokes' intensities call object.
MIN_OBJECT_SHARE = 0.25


def seed_level(
    background_probability: np.ndarray, background_share: float, threshold: float
) -> float:
    """Where a new model's objects are seeded: 0.5, or the midpoint of 0.5 and
    ``threshold`` when the most probable class finds (almost) no object.

    Parameters
    ----------
    background_probability : numpy.ndarray, shape (N,)
        The model's probability of class 0 on the unpainted pixels its threshold was
        read from.
    background_share : float
        The background's share of those pixels, estimated from the strokes.
    threshold : float
        The model's threshold from its strokes, in [0.5, 1).

    Returns
    -------
    float
        0.5 (nothing to move) unless the pixels at or below 0.5 are fewer than
        :data:`MIN_OBJECT_SHARE` of the expected object share (or there are none to
        count). Else the midpoint, raised where fewer than that share of the pixels lie
        at or below it (so that the moved model finds objects), at most ``threshold``.
    """
    object_share = 1.0 - background_share
    if threshold <= 0.5 or object_share <= 0 or background_probability.size == 0:
        return 0.5
    wanted = MIN_OBJECT_SHARE * object_share
    if float(np.mean(background_probability <= 0.5)) >= wanted:
        return 0.5
    reaching = float(np.quantile(background_probability, wanted))
    return min(max((0.5 + threshold) / 2, reaching), threshold)


def move_decision(model: UNet, level: float) -> None:
    """Lower the bias of class 0 in ``model``'s output layer by ``logit(level)``: its
    background probability becomes 0.5 where it was ``level`` (two classes)."""
    bias = model.head.bias
    if bias is None:  # every UNet's head has one
        raise ValueError("the model's output layer has no bias to move")
    with torch.no_grad():
        bias[0] -= _logit(level)


def moved_threshold(threshold: float, level: float) -> float:
    """``threshold`` on the probabilities of a model moved by :func:`move_decision`,
    in [0.5, 1)."""
    moved = 1.0 / (1.0 + math.exp(-(_logit(threshold) - _logit(level))))
    return min(max(moved, 0.5), math.nextafter(1.0, 0.0))


def _logit(probability: float) -> float:
    return math.log(probability / (1.0 - probability))

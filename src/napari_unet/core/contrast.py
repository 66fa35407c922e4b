"""Does an image's contrast run the way the model learnt it? A check for inverted images.

A model trained on fluorescence (bright objects on a dark background) finds nothing
useful in a bright-field image (dark objects on a bright one), and says nothing about
it: the bundled ``nuclei`` calls 35 % of an inverted DSB 2018 image nucleus (18 % true).
The intensities of such images are strongly skewed, and an inversion flips the sign of
the skewness (DSB's +3.3 becomes -3.3). So each training run records the skewness of the
images it trained on (``TrainingRun.image_skewness``), and Predict, the command line and
the API's :func:`contrast_note` compare an image with it: a note when both are clearly
skewed (magnitude at least :data:`MIN_SKEWNESS`) and in opposite directions. Images of
weak skewness say nothing either way (ISBI's EM slices: -0.15 to -0.28), so no note.

Skewness does not change under the affine normalisation models apply, so raw and
normalised intensities give the same value.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

#: Skewness of at least this magnitude, in both the training images and the image, and of
#: opposite signs, makes a note.
MIN_SKEWNESS = 1.0

#: The central window of at most this many rows and columns of a plane is what is measured
#: (a few tens of milliseconds; a huge image is not read whole for a note).
WINDOW = 2048


def intensity_skewness(plane: Any) -> float:
    """Skewness of the intensities of one image plane (channels averaged).

    Parameters
    ----------
    plane : array-like, shape (Y, X) or (C, Y, X)
        Anything with basic slicing (numpy, zarr, dask, ``io.axes.ImagePlane``); only
        the central window of at most :data:`WINDOW` x :data:`WINDOW` pixels is read.

    Returns
    -------
    float
        The third standardised moment; 0.0 for a constant (or empty) window. Non-finite
        pixels are left out.
    """
    y_size, x_size = plane.shape[-2:]
    top, left = max(0, (y_size - WINDOW) // 2), max(0, (x_size - WINDOW) // 2)
    window = np.asarray(plane[..., top : top + WINDOW, left : left + WINDOW], dtype=np.float64)
    if window.ndim == 3:
        window = window.mean(axis=0)
    values = window[np.isfinite(window)]
    spread = float(values.std()) if values.size else 0.0
    if spread <= 1e-12 * max(1.0, float(np.abs(values).max(initial=0.0))):
        return 0.0
    return float(np.mean(((values - values.mean()) / spread) ** 3))


def training_skewness(images: Iterable[np.ndarray]) -> float:
    """The skewness a training run records: the median of its images' (one plane each,
    (Y, X) or (C, Y, X))."""
    return float(np.median([intensity_skewness(image) for image in images]))


def trained_skewness(model: Any) -> float | None:
    """The image skewness recorded by the model's latest training run that has one
    (None: no run recorded it, e.g. a model trained before 2026-12-05)."""
    for run in reversed(model.info.training_history):
        if isinstance(run.image_skewness, (int, float)) and np.isfinite(run.image_skewness):
            return float(run.image_skewness)
    return None


def contrast_note(model: Any, plane: Any) -> str:
    """A sentence when ``plane``'s intensities are skewed against the model's training
    images (see the module docstring); "" otherwise, or when the model recorded none.

    Parameters
    ----------
    model : UNet
    plane : array-like, shape (Y, X) or (C, Y, X)
        A plane of the image to predict, as :func:`intensity_skewness` reads it.
    """
    trained = trained_skewness(model)
    if trained is None or abs(trained) < MIN_SKEWNESS:
        return ""
    skewness = intensity_skewness(plane)
    if abs(skewness) < MIN_SKEWNESS or (skewness > 0) == (trained > 0):
        return ""
    trained_words = "bright on dark" if trained > 0 else "dark on bright"
    image_words = "dark on bright" if trained > 0 else "bright on dark"
    return (
        f"This image's intensities are skewed against the model's training images "
        f"(skewness {skewness:+.1f} here, {trained:+.1f} there): its objects may be "
        f"{image_words} where the model learnt {trained_words} (e.g. bright-field against "
        "fluorescence). If the result looks wrong, invert the image or train a new model."
    )

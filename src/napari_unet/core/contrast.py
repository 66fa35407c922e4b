"""Does an image's contrast run the way the model learnt it? A check for inverted images.

A model trained on fluorescence (bright objects on a dark background) finds nothing
useful in a bright-field image (dark objects on a bright one), and says nothing about
it: the bundled ``nuclei`` calls 35 % of an inverted DSB 2018 image nucleus (18 % true).
The intensities of such images are strongly skewed, and an inversion flips the sign of
the skewness (DSB's +2.1 becomes -2.1, as :func:`intensity_skewness` measures it). So
each training run records the median skewness of the images it trained on
(``TrainingRun.image_skewness``), and Predict and ``napari-unet predict`` compare an
image with it (:func:`contrast_note`, on the middle slice of a stack): a note when both
are clearly skewed (magnitude at least :data:`MIN_SKEWNESS`) and in opposite directions.
Images of weak skewness say nothing either way (ISBI's EM slices: -0.15 to -0.28).

The latest run that recorded a value decides: a fine-tune on a few images of another
contrast (or of weak skewness) changes what the model is compared with. Objects that
cover most of an image (confluent nuclei, 80 % of the pixels) also skew it negatively,
so the note says "may".

Skewness does not change under an affine map of each channel, which is what models'
normalisation is, so raw and normalised intensities give the same value.

A colour image read as its luminance by a one-channel model (:func:`colour_note`) is
noted too when the model learnt bright objects on a dark field and the image's
luminance is not so skewed: a stained bright-field section (immunohistochemistry: +0.6
for a crop of scikit-image's sample) given to the fluorescence ``nuclei``, which finds
212 "nuclei" in the pale gaps between the stain. A fluorescence image saved as RGB
(grey, or one colour channel) is skewed as fluorescence is, and is not noted.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .model import UNet

#: Skewness of at least this magnitude, in both the training images and the image, and of
#: opposite signs, makes a note.
MIN_SKEWNESS = 1.0

#: The central window of at most this many rows and columns of a plane is what is measured,
#: on a grid of at most :data:`SAMPLES` x :data:`SAMPLES` of its pixels (a huge image is not
#: read whole for a note; about 20 ms for a 2048² plane).
WINDOW = 2048
SAMPLES = 512

#: A colour image whose median spread between its R, G and B values is at least this share
#: of its intensity range (1st-99th percentiles) is in colour, not grey stored as RGB:
#: immunohistochemistry 0.19-0.31, photographs 0.07-0.59, grey as RGB 0.
MIN_COLOURFULNESS = 0.1

#: Intensities are clipped to these percentiles first: a few saturated pixels (a bright-field
#: image with 0.2 % of them: skewness +15 instead of -2.1) do not decide the sign.
CLIP_PERCENTILES = (1.0, 99.0)


def intensity_skewness(plane: Any) -> float:
    """Skewness of the intensities of one image plane, robust to a few outliers.

    Each channel is standardised (so a per-channel normalisation does not change the
    value) and the channels averaged; the intensities are clipped to
    :data:`CLIP_PERCENTILES`, then their third standardised moment taken.

    Parameters
    ----------
    plane : array-like, shape (Y, X) or (C, Y, X)
        Anything with basic slicing (numpy, zarr, dask, ``io.axes.ImagePlane``); only
        the central window of at most :data:`WINDOW` x :data:`WINDOW` pixels is read,
        and :data:`SAMPLES` x :data:`SAMPLES` of them measured.

    Returns
    -------
    float
        The skewness; 0.0 for a constant (or empty) window. Non-finite pixels are left out.

    Raises
    ------
    ValueError
        For arrays of other than 2 or 3 dimensions (a colour image is (C, Y, X) here).
    """
    if len(plane.shape) not in (2, 3):
        raise ValueError(f"a plane is (Y, X) or (C, Y, X), got shape {tuple(plane.shape)}")
    values = _standardised(_sampled_window(plane))
    if values.size == 0:
        return 0.0
    low, high = np.percentile(values, CLIP_PERCENTILES)
    values = np.clip(values, low, high)
    spread = float(values.std())
    if spread <= 1e-12 * max(1.0, float(np.abs(values).max())):
        return 0.0
    return float(np.mean(((values - values.mean()) / spread) ** 3))


def _sampled_window(plane: Any) -> np.ndarray:
    """The central window of ``plane`` on a grid of at most SAMPLES² pixels, (C, Y, X)
    float64."""
    y_size, x_size = plane.shape[-2:]
    top, left = max(0, (y_size - WINDOW) // 2), max(0, (x_size - WINDOW) // 2)
    step = max(1, min(WINDOW, y_size, x_size) // SAMPLES)
    rows, columns = slice(top, top + WINDOW, step), slice(left, left + WINDOW, step)
    window = np.asarray(plane[..., rows, columns], dtype=np.float64)
    return window[None] if window.ndim == 2 else window


def _standardised(window: np.ndarray) -> np.ndarray:
    """The finite pixels of a (C, Y, X) window, each channel standardised, channels
    averaged (a flat array; constant channels count as 0)."""
    finite = np.isfinite(window).all(axis=0)
    channels = window[:, finite]
    if channels.shape[1] == 0:
        return channels[0]
    spread = channels.std(axis=1, keepdims=True)
    scaled = (channels - channels.mean(axis=1, keepdims=True)) / np.where(spread > 0, spread, 1)
    return scaled.mean(axis=0)


def training_skewness(images: Iterable[Any]) -> float:
    """The skewness a training run records.

    Parameters
    ----------
    images : iterable of array-like, each (Y, X) or (C, Y, X)
        The run's training images (one plane each).

    Returns
    -------
    float
        The median of their :func:`intensity_skewness`.
    """
    return float(np.median([intensity_skewness(image) for image in images]))


def trained_skewness(model: UNet) -> float | None:
    """The image skewness recorded by the model's latest training run that has one.

    Returns
    -------
    float or None
        None when no run recorded one (a new model, a model trained before 2026-12-05).
    """
    for run in reversed(model.info.training_history):
        if isinstance(run.image_skewness, (int, float)) and np.isfinite(run.image_skewness):
            return float(run.image_skewness)
    return None


def contrast_note(model: UNet, plane: Any, skewness: float | None = None) -> str:
    """A sentence when ``plane``'s intensities are skewed against the model's training
    images (see the module docstring).

    Parameters
    ----------
    model : UNet
    plane : array-like, shape (Y, X) or (C, Y, X)
        A plane of the image to predict, as :func:`intensity_skewness` reads it.
    skewness : float, optional
        Its :func:`intensity_skewness`, when measured already.

    Returns
    -------
    str
        The note; "" when both skewnesses are clear and agree, either is weak (below
        :data:`MIN_SKEWNESS` in magnitude) or the model recorded none.
    """
    trained = trained_skewness(model)
    if trained is None or abs(trained) < MIN_SKEWNESS:
        return ""
    skewness = intensity_skewness(plane) if skewness is None else skewness
    if abs(skewness) < MIN_SKEWNESS or (skewness > 0) == (trained > 0):
        return ""
    trained_words = "bright on dark" if trained > 0 else "dark on bright"
    image_words = "dark on bright" if trained > 0 else "bright on dark"
    return (
        f"This image's intensities are skewed against the model's training images "
        f"(skewness {skewness:+.1f} here, {trained:+.1f} there): its objects may be "
        f"{image_words} where the model learnt {trained_words} (e.g. bright-field against "
        "fluorescence), or cover most of the image. If the result looks wrong, invert the "
        "image or train a new model."
    )


def colourfulness(plane: Any) -> float:
    """How far an RGB plane's channels differ: the median over the sampled window (as
    :func:`intensity_skewness` samples it) of max - min over R, G, B, divided by the
    1st-99th percentile range of all its values. 0 for grey stored as RGB.

    Parameters
    ----------
    plane : array-like, shape (3, Y, X)
        The plane's red, green and blue channels (anything with basic slicing).

    Returns
    -------
    float
        0.0 for fewer than 3 channels, a constant or empty window.
    """
    window = _sampled_window(plane)
    if window.shape[0] < 3:
        return 0.0
    rgb = window[:3, np.isfinite(window[:3]).all(axis=0)]
    if rgb.size == 0:
        return 0.0
    low, high = np.percentile(rgb, CLIP_PERCENTILES)
    if high <= low:
        return 0.0
    return float(np.median(rgb.max(axis=0) - rgb.min(axis=0)) / (high - low))


def colour_note(model: UNet, plane: Any, colour_plane: Any, skewness: float | None = None) -> str:
    """A sentence when a colour image read as its luminance may not be the fluorescence
    the model learnt from (see the module docstring).

    Parameters
    ----------
    model : UNet
    plane : array-like, shape (Y, X) or (1, Y, X)
        The plane as the model reads it: the image's luminance.
    colour_plane : array-like, shape (3, Y, X)
        The same plane's red, green and blue channels.
    skewness : float, optional
        The :func:`intensity_skewness` of ``plane``, when measured already.

    Returns
    -------
    str
        The note; "" unless the model takes one channel and learnt objects brighter than
        their surroundings (recorded skewness at least :data:`MIN_SKEWNESS`), the image's
        luminance is skewed less, and its channels differ (:func:`colourfulness` at least
        :data:`MIN_COLOURFULNESS`).
    """
    trained = trained_skewness(model)
    if model.config.in_channels != 1 or trained is None or trained < MIN_SKEWNESS:
        return ""
    skewness = intensity_skewness(plane) if skewness is None else skewness
    if skewness >= MIN_SKEWNESS or colourfulness(colour_plane) < MIN_COLOURFULNESS:
        return ""
    return (
        "The model learnt from one-channel images of bright objects on a dark field, as "
        "fluorescence shows them; this colour image's brightness is not spread that way "
        f"(skewness {skewness:+.1f}, against {trained:+.1f} for the model's training images). "
        "If it is a stained bright-field image, the model was not trained for it: invert it "
        "(dark objects then become bright), fine-tune it on strokes, or train a new model."
    )


def image_note(model: UNet, plane: Any, colour_plane: Any | None = None) -> str:
    """What Predict and ``napari-unet predict`` note about an image for ``model``:
    :func:`contrast_note`, else (for a colour image read as its luminance, whose red,
    green and blue are ``colour_plane``) :func:`colour_note`; "" when neither applies.
    The plane's skewness is measured once, and not at all for a model whose recorded
    skewness is weak (neither note can apply)."""
    trained = trained_skewness(model)
    if trained is None or abs(trained) < MIN_SKEWNESS:
        return ""
    skewness = intensity_skewness(plane)
    note = contrast_note(model, plane, skewness)
    if note or colour_plane is None:
        return note
    return colour_note(model, plane, colour_plane, skewness)

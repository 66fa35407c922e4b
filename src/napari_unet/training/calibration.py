"""A model's background threshold: carried over to a fine-tuned copy, or read from strokes.

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

A model trained from scratch has no threshold to carry. Its strokes are half of each
class, wherever the user painted, so it calls far more background than the image has
(a new ISBI model: 41 % membrane, 23.5 % true). :func:`stroke_share_threshold` estimates
the background's share from the strokes' intensities instead (the unpainted pixels
darker, or brighter, than nearly all object strokes) and gives the new model the
threshold at which it calls that share background. A new model whose most probable
class finds (almost) no object there has its decision moved in its weights first
(:mod:`~napari_unet.training.seeding`), so that Predict has objects to grow.

Both take a flag to end early (the run's ``cancel``, the dock's second press of Stop):
they check it before each image's prediction and
:func:`~napari_unet.core.inference.predict` checks it between its batches of tiles and
test-time augmentation passes; once it is set they raise
:class:`~napari_unet.core.inference.Cancelled` and the caller leaves the model's
threshold as it was.

:func:`set_threshold_after_run` is what :func:`~napari_unet.training.loop.finetune`
calls after a run. A new model whose run ends with the training loss of a guess
(:func:`~napari_unet.training.history.loss_at_chance`) gets no estimate: its
probabilities are all near 1 / n_classes, and a quantile of them is noise (a new
model after 10 iterations on synthetic nuclei got 0.54 and open gaps). It gets the
defaults back (threshold 0.5, gaps closed) without a prediction, also when the run
was cancelled: an estimate from an earlier run does not fit its weights either.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from ..core.inference import Cancelled, StopFlag, default_tile_size, is_stopped, predict
from ..core.model import UNet
from .distillation import has_been_trained
from .history import loss_at_chance
from .seeding import move_decision, moved_threshold, seed_level

__all__ = [
    "FAR_FROM_STROKES",
    "MAX_PIXELS",
    "MIN_UNPAINTED",
    "OBJECT_STROKE_QUANTILE",
    "carried_threshold",
    "set_threshold_after_run",
    "sets_threshold",
    "stroke_share_estimate",
    "stroke_share_threshold",
    "threshold_for_share",
]

#: Pixels this close (chessboard distance) to a painted pixel are not counted.
FAR_FROM_STROKES = 5
#: At most this many pixels of the training images are predicted (centre crops).
MAX_PIXELS = 2**19
#: An unpainted pixel counts as background when it lies beyond this quantile of the
#: object strokes' (smoothed) intensities, on the background strokes' side.
OBJECT_STROKE_QUANTILE = 0.1
#: Below this share of unpainted pixels (dense labels) no threshold is estimated.
MIN_UNPAINTED = 0.5


def sets_threshold(model: UNet) -> bool:
    """Whether a run of ``model`` sets its background threshold
    (:func:`set_threshold_after_run`): from its strokes while still learning (or back to
    the default, when the run ends at chance), carried over when trained with one of its own."""
    return not has_been_trained(model) or model.info.background_threshold != 0.5


def set_threshold_after_run(
    model: UNet,
    starting: UNet | None,
    was_trained: bool,
    data: tuple[Sequence[np.ndarray], Sequence[np.ndarray]],
    setup: tuple[object, StopFlag],
) -> None:
    """Set ``model``'s background threshold after a completed run that trained.

    Parameters
    ----------
    model : UNet
        The trained model, its run recorded in its history.
    starting : UNet or None
        The model before the run, when its threshold is to be carried over
        (:func:`carried_threshold`).
    was_trained : bool
        Whether ``model`` had been trained before the run
        (:func:`~napari_unet.training.distillation.has_been_trained`); if not, its
        threshold is estimated from the strokes (:func:`stroke_share_threshold`),
        replacing an earlier run's, and ``close_gaps`` is set false with it; where the
        strokes do not tell, or the run ended at chance
        (:func:`~napari_unet.training.history.loss_at_chance`: nothing is predicted),
        both go back to their defaults.
    data : (images, annotations)
        What the run trained on.
    setup : (device, cancel)
        Once ``cancel`` is set (before or during this), the model keeps the threshold
        it had before the run, as a run abandoned midway does: the predictions end at
        their next batch of tiles. A run at chance is reset all the same (it costs nothing).
    """
    if not was_trained and loss_at_chance(model):  # a guess: its probabilities say nothing
        _default_threshold(model.metadata)
        return
    try:
        _set_threshold(model, starting, was_trained, data, setup)
    except Cancelled:
        pass  # nothing written: the threshold metadata is the model's before the run


def _set_threshold(model: UNet, starting: UNet | None, was_trained: bool, data, setup) -> None:
    """:func:`set_threshold_after_run`'s predictions; raises :class:`Cancelled` (nothing
    changed) once ``cancel`` is set."""
    (images, annotations), (device, cancel) = data, setup
    if is_stopped(cancel):
        raise Cancelled("calibration cancelled")
    metadata = model.metadata
    if not was_trained:  # also a model still learning: its last estimate is replaced
        estimate = stroke_share_estimate(model, images, annotations, device, cancel)
        threshold = 0.5 if estimate is None else threshold_for_share(*estimate)
        if estimate is not None and threshold != 0.5:
            # boundaries thicker than the strokes imply: objects split
            metadata["background_threshold"] = _seeded(model, estimate, threshold)
            metadata["close_gaps"] = False
        else:
            _default_threshold(metadata)
    elif starting is not None:
        metadata["background_threshold"] = carried_threshold(
            starting, model, images, annotations, device, cancel
        )


def _seeded(model: UNet, estimate: tuple[np.ndarray, float], threshold: float) -> float:
    """``threshold``, or, for a model whose most probable class finds no object, the
    threshold after its decision is moved (:mod:`~napari_unet.training.seeding`; the
    level is recorded in its last history entry as ``moved_decision``)."""
    level = seed_level(*estimate, threshold)
    history = model.metadata.get("training_history")
    if level == 0.5 or not history:  # ``finetune`` records the run first: a move is recorded
        return threshold
    move_decision(model, level)
    history[-1]["moved_decision"] = round(level, 4)
    return moved_threshold(threshold, level)


def _default_threshold(metadata: dict) -> None:
    """Back to the default threshold (0.5) and gap closing (on)."""
    metadata.pop("background_threshold", None)
    metadata.pop("close_gaps", None)


def carried_threshold(
    starting: UNet,
    tuned: UNet,
    images: Sequence[np.ndarray],
    annotations: Sequence[np.ndarray],
    device,
    stop: StopFlag = None,
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
    stop : callable or threading.Event, optional
        Checked before each prediction and between its batches of tiles.

    Returns
    -------
    float
        In [0.5, 1): the quantile of ``tuned``'s background probability, on the unpainted
        pixels at least :data:`FAR_FROM_STROKES` from a stroke, that leaves as many of
        them above it as ``starting`` had above its threshold; 0.5 if that is lower.

    Raises
    ------
    Cancelled
        When ``stop`` is set before the last prediction ends.
    """
    threshold = starting.info.background_threshold
    starting_values, tuned_values = _far_background(
        (starting, tuned), images, annotations, device, stop
    )
    if tuned_values.size == 0:
        return threshold
    share = float(np.mean(starting_values > threshold))
    carried = float(np.quantile(tuned_values, 1 - share))
    return min(max(carried, 0.5), math.nextafter(1.0, 0.0))


def stroke_share_threshold(
    model: UNet,
    images: Sequence[np.ndarray],
    annotations: Sequence[np.ndarray],
    device,
    stop: StopFlag = None,
) -> float:
    """A never-trained model's background threshold, from its strokes' intensities.

    The background's share of the unpainted pixels is estimated as the share beyond
    the :data:`OBJECT_STROKE_QUANTILE` of the object strokes' intensities (Gaussian
    smoothed, sigma 1), on the side where the background strokes lie; the threshold
    is the quantile of ``model``'s background probability on the same pixels that
    calls that share background. No labels beyond the strokes are used. Counted on
    centre crops of at most :data:`MAX_PIXELS` pixels in all, as
    :func:`carried_threshold`.

    Parameters
    ----------
    model : UNet
        A trained model with one input channel and two classes.
    images : sequence of (Y, X) arrays
        The training images.
    annotations : sequence of (Y, X) int arrays
        Their strokes: 1 = background, 2 = object, 0 = unpainted.
    device : torch.device or str
    stop : callable or threading.Event, optional
        Checked before each prediction and between its batches of tiles.

    Returns
    -------
    float
        In [0.5, 1). 0.5 (no growth) for other models, when a class has no strokes,
        when less than :data:`MIN_UNPAINTED` of the pixels are unpainted (dense
        labels teach the classes' shares), when the intensity cut leaves most
        background strokes on the object side (the classes are not told apart by
        intensity), or when the model calls no more than that share background anyway.

    Raises
    ------
    Cancelled
        When ``stop`` is set before the last prediction ends.
    """
    estimate = stroke_share_estimate(model, images, annotations, device, stop)
    return 0.5 if estimate is None else threshold_for_share(*estimate)


def stroke_share_estimate(
    model: UNet,
    images: Sequence[np.ndarray],
    annotations: Sequence[np.ndarray],
    device,
    stop: StopFlag = None,
) -> tuple[np.ndarray, float] | None:
    """:func:`stroke_share_threshold`'s reading: ``model``'s background probability on
    the unpainted pixels of the centre crops, shape (N,), and the background's share of
    them from the strokes' intensities; None where that function returns 0.5 before
    predicting (another model, no intensity cut, dense labels)."""
    if model.config.in_channels != 1 or model.config.n_classes != 2:
        return None
    per_image = MAX_PIXELS // max(len(images), 1)
    planes = [np.asarray(image).reshape(np.shape(a)) for image, a in zip(images, annotations)]
    windows = [_centre_crop(np.shape(a), per_image) for a in annotations]
    regions = [_region(np.asarray(a), window) for a, window in zip(annotations, windows)]
    smoothed = [_normalised_smooth(plane, region) for plane, region in zip(planes, regions)]
    painted = [np.asarray(a)[region] for a, region in zip(annotations, regions)]
    found = _intensity_cut(smoothed, painted)
    if found is None:
        return None
    sign, cut = found
    inners = [_inner(window, region) for window, region in zip(windows, regions)]
    unpainted = [a[inner] == 0 for a, inner in zip(painted, inners)]
    if sum(int(u.sum()) for u in unpainted) < MIN_UNPAINTED * sum(u.size for u in unpainted):
        return None  # (nearly) dense labels: the model learnt the classes' shares from them
    intensities = np.concatenate(
        [sign * s[inner][u] for s, inner, u in zip(smoothed, inners, unpainted)]
    )
    values = np.concatenate(
        [
            _probabilities(plane[window], model, device, stop)[0][u]
            for plane, window, u in zip(planes, windows, unpainted)
        ]
    )
    return values, float(np.mean(intensities < cut))


def threshold_for_share(background_probability: np.ndarray, background_share: float) -> float:
    """The threshold in [0.5, 1) that calls ``background_share`` of the pixels background."""
    threshold = float(np.quantile(background_probability, 1 - background_share))
    return min(max(threshold, 0.5), math.nextafter(1.0, 0.0))


def _far_background(
    models: tuple[UNet, UNet],
    images: Sequence[np.ndarray],
    annotations: Sequence[np.ndarray],
    device,
    stop: StopFlag,
) -> tuple[np.ndarray, np.ndarray]:
    """Each of the two ``models``' background probabilities (1-D) on the unpainted pixels
    at least :data:`FAR_FROM_STROKES` from a stroke, in a centre crop of each image
    (:data:`MAX_PIXELS` in all); image by image, the first model first."""
    per_image = MAX_PIXELS // max(len(images), 1)
    before: list[np.ndarray] = []
    after: list[np.ndarray] = []
    for image, annotation in zip(images, annotations):
        window = _centre_crop(annotation.shape, per_image)
        far = ~ndimage.binary_dilation(
            annotation[window] > 0, np.ones((3, 3), bool), iterations=FAR_FROM_STROKES
        )
        crop = np.asarray(image)[(..., *window)]
        for model, values in zip(models, (before, after)):
            values.append(_probabilities(crop, model, device, stop)[0][far])
    return np.concatenate(before), np.concatenate(after)


def _probabilities(image: np.ndarray, model: UNet, device, stop: StopFlag) -> np.ndarray:
    """``model``'s probabilities of ``image`` (its default tile, as the model asks for
    test-time augmentation); raises :class:`Cancelled` once ``stop`` is set."""
    if is_stopped(stop):
        raise Cancelled("calibration cancelled")
    return predict(image, model, tile_size=default_tile_size(model), device=device, stop=stop)


def _intensity_cut(smoothed, painted) -> tuple[float, float] | None:
    """(sign, cut): +1 when the background strokes are the darker class (-1: brighter;
    intensities are multiplied by it) and the :data:`OBJECT_STROKE_QUANTILE` of the
    signed object strokes' intensities; None when a class has no strokes or the cut
    leaves most background strokes on the object side."""
    background = np.concatenate([s[a == 1] for s, a in zip(smoothed, painted)])
    objects = np.concatenate([s[a == 2] for s, a in zip(smoothed, painted)])
    if background.size == 0 or objects.size == 0:
        return None
    sign = 1.0 if np.median(background) < np.median(objects) else -1.0
    cut = float(np.quantile(sign * objects, OBJECT_STROKE_QUANTILE))
    if np.mean(sign * background < cut) < 0.5:
        return None
    return sign, cut


def _inner(window: tuple[slice, slice], region: tuple[slice, slice]) -> tuple[slice, slice]:
    """``window`` in the coordinates of ``region`` (which contains it)."""
    (rows, columns), (top, left) = window, (region[0].start, region[1].start)
    return slice(rows.start - top, rows.stop - top), slice(
        columns.start - left, columns.stop - left
    )


def _region(annotation: np.ndarray, window: tuple[slice, slice]) -> tuple[slice, slice]:
    """The (Y, X) bounding box of the strokes and ``window``: the part that is smoothed."""
    rows, columns = np.nonzero(annotation)
    if rows.size == 0:
        return window
    return (
        slice(min(window[0].start, int(rows.min())), max(window[0].stop, int(rows.max()) + 1)),
        slice(
            min(window[1].start, int(columns.min())), max(window[1].stop, int(columns.max()) + 1)
        ),
    )


def _normalised_smooth(plane: np.ndarray, region: tuple[slice, slice]) -> np.ndarray:
    """``plane[region]`` as float32 scaled by the plane's 1st and 99.8th percentiles
    (of at most about 2**20 evenly spaced pixels), smoothed (Gaussian, sigma 1)."""
    step = max(1, math.ceil(math.sqrt(plane.size / 2**20)))
    low, high = np.percentile(plane[::step, ::step], (1.0, 99.8))
    scaled = (plane[region].astype(np.float32) - low) / max(float(high - low), 1e-12)
    return ndimage.gaussian_filter(scaled, 1.0)


def _centre_crop(shape: tuple[int, ...], pixels: int) -> tuple[slice, slice]:
    """The (Y, X) window of at most ``pixels`` pixels at the centre of a plane."""
    height, width = shape[-2:]
    scale = min(1.0, math.sqrt(pixels / max(height * width, 1)))
    crop_height, crop_width = max(1, int(height * scale)), max(1, int(width * scale))
    top, left = (height - crop_height) // 2, (width - crop_width) // 2
    return slice(top, top + crop_height), slice(left, left + crop_width)

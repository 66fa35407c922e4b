"""What the Predict section computes in its worker thread."""

from __future__ import annotations

import threading
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..config import PredictConfig, WeightConfig
from ..core.inference import Cancelled, iter_predict
from ..core.model import UNet
from ..core.postprocess import mask_steps, prediction_mask
from ..evaluation.review import ObjectChanges, object_changes, uncertainty
from ..io.volumes import slice_instances
from ..training.weights import weight_map
from ._geometry import ImageGeometry

MAX_TILE_CHOICE = 1024
"""Largest tile edge offered in the tile-size list (besides the model's default)."""


@dataclass
class PredictionRequest:
    """Everything one prediction needs, gathered in the Qt thread.

    Attributes
    ----------
    model : UNet
    data : array-like
        The image layer's data.
    geometry : ImageGeometry
    config : PredictConfig
        Tile size (a number, or None: the whole image in one pass), device, test-time
        augmentation, instance method and smallest instance, as chosen in the section.
    with_weights : bool
        Also compute the paper's weight map of the predicted mask.
    weight_config : WeightConfig
    with_uncertainty : bool
        Also compute where the model is unsure (:func:`napari_unet.evaluation.review.uncertainty`).
    previous_mask, annotation : numpy.ndarray or None
        The image's last mask, when this model continues the one that made it, and the
        image's strokes (spatial shape): the mask keeps the last one's separations where
        the model still supports them (:mod:`napari_unet.core.continuity`).
    """

    model: UNet
    data: Any
    geometry: ImageGeometry
    config: PredictConfig = field(default_factory=PredictConfig)
    with_weights: bool = True
    weight_config: WeightConfig = field(default_factory=WeightConfig)
    with_uncertainty: bool = False
    previous_mask: np.ndarray | None = None
    annotation: np.ndarray | None = None


@dataclass
class PredictionResult:
    """The outputs, each with the image's spatial shape (..., Y, X).

    Attributes
    ----------
    probabilities : numpy.ndarray, (n_classes, ..., Y, X) float32
    mask : numpy.ndarray, uint8
        1 = background, 2.. = foreground classes.
    instances : numpy.ndarray, uint32
        Objects numbered from 1 across the whole stack.
    weights : numpy.ndarray or None, float32
    uncertainty : numpy.ndarray or None, float32
        Normalised entropy of the probabilities, in [0, 1]: where to paint next.
    changes : ObjectChanges or None
        With a last mask: the objects this mask split or joined against it.
    """

    probabilities: np.ndarray
    mask: np.ndarray
    instances: np.ndarray
    weights: np.ndarray | None
    uncertainty: np.ndarray | None = None
    changes: ObjectChanges | None = None


@dataclass
class PredictionProgress:
    """Share of the work done, and what is being done."""

    fraction: float
    text: str


def predict_job(
    request: PredictionRequest, stop: threading.Event
) -> Generator[PredictionProgress, None, PredictionResult]:
    """Predict every plane, then post-process; yields progress, returns the outputs.

    The same path as ``napari-unet predict``: each plane is read as the command
    line reads it (:meth:`ImageGeometry.read_plane`: the axes rule of
    :mod:`napari_unet.io.axes`, an :class:`~napari_unet.io.axes.ImagePlane`, here read
    whole), predicted by :func:`~napari_unet.core.inference.iter_predict` and numbered
    by :func:`~napari_unet.io.volumes.slice_instances`. Only the layout of the
    probabilities differs: (n_classes, ..., Y, X) here, for a napari layer with
    the classes along its first axis; (Z, n_classes, Y, X) in the files.

    Raises
    ------
    Cancelled
        When ``stop`` is set.
    """
    model, geometry = request.model, request.geometry
    planes = list(geometry.planes())
    probabilities = np.zeros((model.config.n_classes, *geometry.spatial_shape), np.float32)
    for number, plane in enumerate(planes):
        image = geometry.read_plane(request.data, plane, model.config.in_channels)
        steps = iter_predict(
            image, model, probabilities[_all_classes(plane)], config=request.config, stop=stop
        )
        for step in steps:
            fraction = (number + step.done / max(step.total, 1)) / len(planes)
            where = f"slice {number + 1}/{len(planes)}, " if len(planes) > 1 else ""
            text = f"Predicting {where}tile {step.done}/{step.total}"
            yield PredictionProgress(0.9 * fraction, text)
    yield PredictionProgress(0.9, "Post-processing…")
    result = _postprocess(request, probabilities, planes, stop)
    yield PredictionProgress(1.0, "Done")
    return result


def _all_classes(plane: tuple[int, ...]) -> tuple[slice | int, ...]:
    """Index of ``plane`` in a (C, ...) array: every class of that slice."""
    return (slice(None), *plane)


def _plane_of(array: np.ndarray | None, plane: tuple[int, ...]) -> np.ndarray | None:
    """``array[plane]`` (a (Y, X) plane of a (..., Y, X) array), or None."""
    return None if array is None else array[plane]


def _postprocess(
    request: PredictionRequest,
    probabilities: np.ndarray,
    planes: list[tuple[int, ...]],
    stop: threading.Event,
) -> PredictionResult:
    shape = probabilities.shape[1:]
    mask = np.zeros(shape, np.uint8)
    instances = np.zeros(shape, np.uint32)
    weights = np.zeros(shape, np.float32) if request.with_weights else None
    unsure = np.zeros(shape, np.float32) if request.with_uncertainty else None
    count = 0
    steps = mask_steps(request.model, request.config)
    for plane in planes:
        if stop.is_set():
            raise Cancelled("prediction cancelled")
        mask[plane] = prediction_mask(
            probabilities[_all_classes(plane)],
            **steps._asdict(),
            previous=_plane_of(request.previous_mask, plane),
            annotation=_plane_of(request.annotation, plane),
        )
        instances[plane], found = slice_instances(
            mask[plane],
            request.config.instances,
            count,
            request.config.min_instance_size,
            request.config.fill_holes,
        )
        count += found
        if weights is not None:
            weights[plane] = weight_map(mask[plane], request.weight_config)
        if unsure is not None:
            unsure[plane] = uncertainty(probabilities[_all_classes(plane)])
    last = request.previous_mask
    changes = None if last is None else object_changes(last, mask)
    return PredictionResult(probabilities, mask, instances, weights, unsure, changes)

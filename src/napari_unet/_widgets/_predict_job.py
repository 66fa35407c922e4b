"""What the Predict section computes in its worker thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..config import PredictConfig, WeightConfig
from ..core.cancellation import stopping
from ..core.contrast import image_note
from ..core.inference import Cancelled, iter_predict
from ..core.model import UNet
from ..core.postprocess import closes_gaps, mask_steps, prediction_mask
from ..evaluation.review import ObjectChanges, object_changes, uncertainty
from ..io.volumes import slice_instances
from ..training.weights import weight_map
from ._geometry import ImageGeometry
from ._predict_reuse import Contents, KnownProbabilities
from ._predict_text import count_words, slice_words

MAX_TILE_CHOICE = 1024
"""Largest tile edge offered in the tile-size list (besides the model's default)."""

POSTPROCESS_SECONDS_PER_PIXEL = {
    "mask, gaps closed": 1.5e-6,
    "mask": 0.2e-6,
    "instances": 0.12e-6,
    "weight map": 0.25e-6,
    "uncertainty": 0.01e-6,
}
"""Seconds per pixel of each post-processing step of one plane on the CPU (2 threads),
measured on 1024² and 2048² images with the bundled models (em-membranes, nuclei; 900
to 3,900 objects). Predicting the same 2048² image took 30 s (em-membranes) and 8.8 s
(nuclei), post-processing 6.5 s and 7.6 s: 18 % and 46 % of the run. The bar gives
post-processing its share from these figures and the speed of the run's first tiles."""


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
    known : KnownProbabilities or None
        The last run's probabilities of this image with these settings
        (:mod:`._predict_reuse`): when the image's values and the model are the same as
        that run's (its :class:`~._predict_reuse.Contents`), only post-processing runs.
        They are read, never written.
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
    known: KnownProbabilities | None = None


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
    contents : Contents or None
        What the run read (:class:`~._predict_reuse.Contents`), for a later run to compare.
    reused : bool
        Whether the probabilities are the last run's (only post-processing ran).
    contrast_note : str
        A sentence when the image's intensities are skewed against the model's training
        images, or a colour image may not be what it learnt from
        (:func:`napari_unet.core.contrast.image_note`); "" otherwise.
    """

    probabilities: np.ndarray
    mask: np.ndarray
    instances: np.ndarray
    weights: np.ndarray | None
    uncertainty: np.ndarray | None = None
    changes: ObjectChanges | None = None
    contrast_note: str = ""
    contents: Contents | None = None
    reused: bool = False


@dataclass
class PredictionProgress:
    """Share of the work done, what is being done, and how far the run got.

    Attributes
    ----------
    fraction : float
        Of the whole run, post-processing included.
    text : str
        The status line.
    stage : str
        "tiles" (predicting), "post-processing" or "done".
    planes_done, planes : int
        Slices (planes) whose tiles are all predicted (post-processed, in the
        "post-processing" stage), of the image's.
    tiles_done, tiles : int
        Tiles predicted of the slice being predicted.
    """

    fraction: float
    text: str
    stage: str = "tiles"
    planes_done: int = 0
    planes: int = 1
    tiles_done: int = 0
    tiles: int = 0


def postprocess_seconds(request: PredictionRequest) -> float:
    """Estimated seconds of post-processing ``request``'s image (all planes), after
    :data:`POSTPROCESS_SECONDS_PER_PIXEL` and the steps the request asks for."""
    return sum(_step_costs(request).values()) * int(np.prod(request.geometry.spatial_shape))


def _step_costs(request: PredictionRequest) -> dict[str, float]:
    """Seconds per pixel of each post-processing step ``request`` takes, in order."""
    costs = POSTPROCESS_SECONDS_PER_PIXEL
    closing = closes_gaps(request.model, request.config)
    steps = {
        "mask": costs["mask, gaps closed" if closing else "mask"],
        "instances": costs["instances"],
    }
    if request.with_weights:
        steps["weight map"] = costs["weight map"]
    if request.with_uncertainty:
        steps["uncertainty"] = costs["uncertainty"]
    return steps


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

    The bar's share of predicting is fixed after the first batch of tiles: their
    speed gives the seconds of all tiles, :func:`postprocess_seconds` those after.
    Slices are named as napari's sliders number them, from 0.

    Raises
    ------
    Cancelled
        When ``stop`` is set.
    """
    model, geometry = request.model, request.geometry
    planes = list(geometry.planes())
    contents, known = Contents.of(request.data, model), request.known
    if known is not None and contents.comparable and known.contents == contents:
        result = yield from _postprocess(request, known.probabilities, planes, stop, 0.0)
        result.contrast_note, result.contents, result.reused = known.note, contents, True
        yield PredictionProgress(1.0, "Done", "done", len(planes), len(planes))
        return result
    probabilities = np.zeros((model.config.n_classes, *geometry.spatial_shape), np.float32)
    share, started, note = 1.0, time.perf_counter(), ""
    for number, plane in enumerate(planes):
        image = geometry.read_plane(request.data, plane, model.config.in_channels)
        if number == len(planes) // 2:  # the middle slice speaks for the stack
            colours = geometry.colour_plane(request.data, plane, model.config.in_channels)
            note = image_note(model, image, colours)
        steps = iter_predict(
            image, model, probabilities[_all_classes(plane)], config=request.config, stop=stop
        )
        where = f"slice {slice_words(plane, geometry.leading_shape)}: " if plane else ""
        for step in steps:
            if number == 0 and step.done and share == 1.0:
                tiles_seconds = (time.perf_counter() - started) / step.done * step.total
                predicting = tiles_seconds * len(planes)
                share = predicting / (predicting + postprocess_seconds(request))
            fraction = (number + step.done / max(step.total, 1)) / len(planes)
            text = f"Predicting {where}{count_words(step.done, step.total, 'tile')} done"
            if step.total == 1:  # not "0 of 1 tile done"
                text = f"{'Predicted' if step.done else 'Predicting'} {where}in one tile"
            yield PredictionProgress(
                share * fraction, text, "tiles", number, len(planes), step.done, step.total
            )
    result = yield from _postprocess(request, probabilities, planes, stop, share)
    result.contrast_note, result.contents = note, contents
    yield PredictionProgress(1.0, "Done", "done", len(planes), len(planes))
    return result


def _all_classes(plane: tuple[int, ...]) -> tuple[slice | int, ...]:
    """Index of ``plane`` in a (C, ...) array: every class of that slice."""
    return (slice(None), *plane)


def _plane_of(array: np.ndarray | None, plane: tuple[int, ...]) -> np.ndarray | None:
    """``array[plane]`` (a (Y, X) plane of a (..., Y, X) array), or None."""
    return None if array is None else array[plane]


@dataclass
class _Outputs:
    """The post-processed outputs being filled, plane by plane."""

    mask: np.ndarray
    instances: np.ndarray
    weights: np.ndarray | None
    unsure: np.ndarray | None
    count: int = 0

    @classmethod
    def empty(cls, request: PredictionRequest, shape: tuple[int, ...]) -> _Outputs:
        return cls(
            np.zeros(shape, np.uint8),
            np.zeros(shape, np.uint32),
            np.zeros(shape, np.float32) if request.with_weights else None,
            np.zeros(shape, np.float32) if request.with_uncertainty else None,
        )

    def fill(
        self, step: str, plane: tuple[int, ...], request: PredictionRequest, probabilities: Any
    ) -> None:
        """Compute ``step`` (a key of :func:`_step_costs`) for ``plane``."""
        config = request.config
        if step == "mask":
            self.mask[plane] = prediction_mask(
                probabilities[_all_classes(plane)],
                **mask_steps(request.model, config)._asdict(),
                previous=_plane_of(request.previous_mask, plane),
                annotation=_plane_of(request.annotation, plane),
            )
        elif step == "instances":
            self.instances[plane], found = slice_instances(
                self.mask[plane],
                config.instances,
                self.count,
                config.min_instance_size,
                config.fill_holes,
            )
            self.count += found
        elif step == "weight map" and self.weights is not None:
            self.weights[plane] = weight_map(self.mask[plane], request.weight_config)
        elif step == "uncertainty" and self.unsure is not None:
            self.unsure[plane] = uncertainty(probabilities[_all_classes(plane)])


def _postprocess(
    request: PredictionRequest,
    probabilities: np.ndarray,
    planes: list[tuple[int, ...]],
    stop: threading.Event,
    share: float,
) -> Generator[PredictionProgress, None, PredictionResult]:
    """Masks, instances, weight map and uncertainty of every plane; yields progress
    from ``share`` of the bar (the tiles') to its end, before each step."""
    outputs = _Outputs.empty(request, probabilities.shape[1:])
    costs = _step_costs(request)
    total, done = sum(costs.values()) * len(planes), 0.0
    for number, plane in enumerate(planes):
        where = f" slice {slice_words(plane, request.geometry.leading_shape)}" if plane else ""
        for step, cost in costs.items():
            if stop.is_set():
                raise Cancelled("prediction cancelled")
            fraction = share + (1 - share) * done / total
            text = f"Post-processing{where}: {step}…"
            yield PredictionProgress(fraction, text, "post-processing", number, len(planes))
            with stopping(stop):  # Cancel also ends a long step between its library calls
                outputs.fill(step, plane, request, probabilities)
            done += cost
    last = request.previous_mask
    changes = None if last is None else object_changes(last, outputs.mask)
    return PredictionResult(
        probabilities, outputs.mask, outputs.instances, outputs.weights, outputs.unsure, changes
    )

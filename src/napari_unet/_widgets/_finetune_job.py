"""What the Fine-tune section hands to its worker thread, and what comes back."""

from __future__ import annotations

import re
import threading
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..config import AugmentConfig, TrainConfig, WeightConfig
from ..core.inference import Cancelled, default_tile_size, predict
from ..core.model import UNet
from ..core.postprocess import class_mask
from ..evaluation.review import ClassChanges, class_changes
from ..evaluation.strokes import shown_classes
from ..training.distillation import has_been_trained
from ..training.loop import TrainProgress, finetune
from ..training.sampling import AnnotationError
from ..training.schedule import learning_floor, with_iteration_budget
from ._geometry import ImageGeometry

PREVIEW_SECONDS = 3.0
"""Seconds between two live previews during fine-tuning."""


class PlaneReader:
    """Reads 2D planes of an image layer's data as (C, Y, X) float32, from any thread.

    Parameters
    ----------
    data : array-like
        The image layer's data (captured when training starts; numpy, dask or zarr).
    geometry : ImageGeometry
    in_channels : int
        The model's input channels.
    """

    def __init__(self, data: Any, geometry: ImageGeometry, in_channels: int) -> None:
        self.data = data
        self.geometry = geometry
        self.in_channels = in_channels

    def __call__(self, plane: tuple[int, ...]) -> np.ndarray:
        return self.geometry.read_plane(self.data, plane, self.in_channels)

    def check_channels(self) -> None:
        """Raise the ValueError reading would raise if the channels do not fit the model.

        Reads nothing: the check runs on a 1 x 1 pixel stand-in with the image's
        layout, so it is instant even for a lazily loaded image.
        """
        shape = list(self.geometry.shape)
        y_axis = -3 if self.geometry.rgb else -2
        shape[y_axis] = shape[y_axis + 1] = 1
        stand_in = np.broadcast_to(np.zeros((), np.float32), shape)
        first_plane = tuple(0 for _ in self.geometry.leading_shape)
        self.geometry.read_plane(stand_in, first_plane, self.in_channels)


class PreviewSource:
    """Reads the plane shown in the viewer, for the live preview, from the worker thread.

    The Qt thread sets :attr:`plane` when the dims sliders move; the worker calls
    the object and remembers which plane it read in :attr:`last_plane`.

    Parameters
    ----------
    reader : PlaneReader
    plane : tuple of int
        The plane in view when training starts.
    """

    def __init__(self, reader: PlaneReader, plane: tuple[int, ...]) -> None:
        self.reader = reader
        self.plane = plane
        self.last_plane = plane

    def __call__(self) -> np.ndarray:
        self.last_plane = self.plane
        return self.reader(self.last_plane)


@dataclass
class TrainingRequest:
    """Everything one fine-tune needs, gathered in the Qt thread.

    The annotations are copied there (the user may go on painting); the image
    planes are only read in the worker (:func:`finetune_job`), since a lazily
    loaded (dask, zarr) image may take long to read.

    Attributes
    ----------
    model : UNet
        Trained in place.
    reader : PlaneReader
        Reads the image's planes.
    annotations : list of numpy.ndarray
        The annotated planes, (Y, X).
    train, augment, weights : TrainConfig, AugmentConfig, WeightConfig
    image_name : str
    planes : list of tuple of int
        Which planes of the stack were annotated.
    preview : PreviewSource or None
    annotation_name : str
        The annotation layer, to name it in error messages.
    compare_plane : tuple of int or None
        The plane in view when training starts: predicted before and after
        training to tell what changed (None: no comparison).
    iteration_budget : int or None
        The run's iteration budget as ``finetune`` resolves it for the model (None: time).
    floor : int
        Iterations before the time budget may end the run (a model still learning:
        :func:`~napari_unet.training.schedule.learning_floor`).
    before : UNet or None
        The model as the user had it before this run, which Go back returns to: the
        comparison's "before" (None: ``model`` as the run starts). A run that starts again
        from the model the annotations began with resets ``model`` to that one first.
    """

    model: UNet
    reader: PlaneReader
    annotations: list[np.ndarray]
    train: TrainConfig
    augment: AugmentConfig
    weights: WeightConfig
    image_name: str
    planes: list[tuple[int, ...]] = field(default_factory=list)
    preview: PreviewSource | None = None
    annotation_name: str = ""
    compare_plane: tuple[int, ...] | None = None
    before: UNet | None = None
    iteration_budget: int | None = field(init=False)
    floor: int = field(init=False)

    def __post_init__(self) -> None:  # the model's history as the run starts
        self.iteration_budget = with_iteration_budget(self.train, self.model).iterations
        self.floor = learning_floor(self.train, self.model)

    def describe(self, index: int) -> str:
        """The annotation core messages call ``annotation {index}``, as the user sees it."""
        layer = f"“{self.annotation_name}”" if self.annotation_name else "the annotation layer"
        plane = self.planes[index] if index < len(self.planes) else ()
        if not plane:
            return layer
        where = ", ".join(str(i) for i in plane)
        return f"slice {where} of {layer}"


@dataclass
class FinetuneUpdate:
    """One progress report for the Qt thread.

    Attributes
    ----------
    iteration : int
    loss, smoothed_loss : float
    elapsed, fraction : float
    plane : tuple of int or None
        The plane the preview shows (None: no preview in this update).
    foreground : numpy.ndarray or None
        (Y, X) probability of any foreground class.
    """

    iteration: int
    loss: float
    smoothed_loss: float
    elapsed: float
    fraction: float
    plane: tuple[int, ...] | None = None
    foreground: np.ndarray | None = None


def foreground_probability(probabilities: np.ndarray) -> np.ndarray:
    """Probability of any foreground class: 1 - p(background), (Y, X) float32."""
    return (1.0 - probabilities[0]).astype(np.float32)


def finetune_job(
    request: TrainingRequest, stop: threading.Event, cancel: threading.Event | None = None
) -> Generator[FinetuneUpdate | ClassChanges | str, None, TrainProgress | None]:
    """Fine-tune in the worker thread, yielding a :class:`FinetuneUpdate` per iteration.

    Before training it reads the annotated image planes, yielding a status line
    (``str``) before each and honouring ``stop`` between them, and predicts the
    plane to compare (``request.compare_plane``) with the model as it is.

    After training (unless stopped) one last preview shows the kept weights.
    ``cancel`` (default: never set) ends the threshold's calibration after the
    iterations (:func:`~napari_unet.training.loop.finetune`). Then, also after a stop (a
    stopped run changed the model too), unless ``cancel`` is set, the
    :class:`~napari_unet.evaluation.review.ClassChanges` of the compared plane are yielded
    (its prediction reuses the preview's when it shows that plane).
    Returns the last :class:`~napari_unet.training.loop.TrainProgress` (None if no
    iteration ran). Raises what :func:`~napari_unet.training.loop.finetune` raises.
    """
    cancel = threading.Event() if cancel is None else cancel  # None: never cancelled
    images = yield from _read_images(request, stop)
    if images is None:
        return None
    before = yield from _mask_before_training(request, images, stop)
    if request.compare_plane is not None and stop.is_set():
        return None
    # until the first iteration's update (seconds on a slow model)
    yield FINETUNE_STARTS if has_been_trained(request.model) else TRAINING_STARTS
    last = yield from _training_updates(request, images, (stop, cancel))
    after = yield from _preview_after_training(request, last, stop)
    if last is not None and before is not None and not cancel.is_set():
        yield from _class_changes(request, images, before, after, cancel)
    return last


TRAINING_STARTS = "Training: the first iteration…"
"""The status line from the end of the comparison to the first iteration's update, for a
model still learning (a new model's first runs); :data:`FINETUNE_STARTS` for a trained one."""

FINETUNE_STARTS = "Fine-tuning: the first iteration…"


def _mask_before_training(
    request: TrainingRequest, images: list[np.ndarray], stop: threading.Event
) -> Generator[str, None, tuple[np.ndarray, np.ndarray | None] | None]:
    """The class mask of the compared plane with the model as it is, and the classes
    Predict draws with its threshold (:func:`_shown_mask`); None: no plane, or stopped, or
    out of memory. Only the classes are kept through training."""
    if request.compare_plane is None:
        return None
    yield "Predicting the slice in view with the model before training…"
    compared = _plane_image(request, images, request.compare_plane)
    before = _final_preview(request, compared, stop, request.before)
    model = request.model if request.before is None else request.before
    if request.before is not None:
        request.before.cpu()  # a history snapshot stays a CPU copy
    if before is None:
        return None
    return class_mask(before), _shown_mask(request, before, model.info.background_threshold)


def _training_updates(
    request: TrainingRequest, images: list[np.ndarray], flags: tuple[threading.Event, ...]
) -> Generator[FinetuneUpdate, None, TrainProgress | None]:
    """Run :func:`~napari_unet.training.loop.finetune`, one update per iteration (with the
    live preview's plane when it has one); returns the last progress (None: no iteration).
    ``flags`` is (stop, cancel): Stop ends the iterations, a second press the threshold's
    calibration after them."""
    (stop, cancel), preview = flags, request.preview
    steps = finetune(
        request.model,
        images,
        request.annotations,
        request.train,
        augment=request.augment,
        weights=request.weights,
        stop=stop,
        cancel=cancel,
        preview=preview,
        preview_every=PREVIEW_SECONDS,
    )
    last = None
    try:
        for progress in _named_annotation_errors(steps, request):
            update = _update(progress)
            if progress.preview is not None and preview is not None:
                update.plane = preview.last_plane
                update.foreground = foreground_probability(progress.preview)
            last = progress
            yield update
    finally:
        steps.close()
    return last


def _preview_after_training(
    request: TrainingRequest, last: TrainProgress | None, stop: threading.Event
) -> Generator[FinetuneUpdate, None, np.ndarray | None]:
    """One last preview with the kept weights (unless stopped); returns its probabilities
    when it shows the compared plane (so that the comparison need not predict it again)."""
    preview = request.preview
    if last is None or preview is None or stop.is_set():
        return None
    probabilities = _final_preview(request, preview(), stop)
    if probabilities is None:
        return None
    update = _update(last)
    update.plane = preview.last_plane
    update.foreground = foreground_probability(probabilities)
    yield update
    return probabilities if preview.last_plane == request.compare_plane else None


def _class_changes(
    request: TrainingRequest,
    images: list[np.ndarray],
    before: tuple[np.ndarray, np.ndarray | None],
    after: np.ndarray | None,
    cancel: threading.Event,
) -> Generator[str | ClassChanges, None, None]:
    """The :class:`~napari_unet.evaluation.review.ClassChanges` of the compared plane
    (predicting it with the tuned model unless ``after`` holds that already)."""
    if after is None:
        assert request.compare_plane is not None  # ``before`` was predicted for it
        yield "Comparing the slice in view with the model before training…"
        compared = _plane_image(request, images, request.compare_plane)
        after = _final_preview(request, compared, cancel)
    if after is not None:
        strokes = _strokes_of(request, request.compare_plane)
        shown = (_shown_mask(request, after), before[1])
        yield class_changes(before[0], class_mask(after), strokes, shown)


def _shown_mask(
    request: TrainingRequest, probabilities: np.ndarray, threshold: float | None = None
) -> np.ndarray | None:
    """The compared plane's classes as Predict draws them with a background ``threshold``
    (None: the model's now), gaps not closed; None: a threshold of 0.5, or no strokes there."""
    if _strokes_of(request, request.compare_plane) is None:
        return None
    level = request.model.info.background_threshold if threshold is None else threshold
    return shown_classes(probabilities, level)


def _strokes_of(request: TrainingRequest, plane: tuple[int, ...] | None) -> np.ndarray | None:
    """The annotations of ``plane`` as the run read them (None: not an annotated plane)."""
    if plane is None or plane not in request.planes:
        return None
    return request.annotations[request.planes.index(plane)]


def _plane_image(
    request: TrainingRequest, images: list[np.ndarray], plane: tuple[int, ...]
) -> np.ndarray:
    """The image of ``plane``: one read already for training, else read now."""
    if plane in request.planes:
        return images[request.planes.index(plane)]
    return request.reader(plane)


def _read_images(
    request: TrainingRequest, stop: threading.Event
) -> Generator[str, None, list[np.ndarray] | None]:
    """The annotated planes of the image, yielding a status line before each; None if stopped."""
    images = []
    for number, plane in enumerate(request.planes, start=1):
        if stop.is_set():
            return None
        where = f": slice {number} of {len(request.planes)}" if plane else ""
        yield f"Reading the image{where}…"
        images.append(request.reader(plane))
    return images


def _final_preview(
    request: TrainingRequest, image: Any, stop: threading.Event, model: UNet | None = None
) -> Any:
    """Tiled, stoppable prediction of one plane by ``model`` (None: ``request.model``);
    None if stopped or out of memory.

    Used for the comparison before training and the previews after it: a
    preview that cannot be shown must not turn the run into a failure.
    """
    model = request.model if model is None else model
    try:
        return predict(
            image, model, tile_size=default_tile_size(model), device=request.train.device, stop=stop
        )
    except (Cancelled, MemoryError, torch.OutOfMemoryError):
        return None


def _named_annotation_errors(
    steps: Generator[TrainProgress, None, None], request: TrainingRequest
) -> Generator[TrainProgress, None, None]:
    """``steps``, with "annotation N" in an AnnotationError replaced by the layer and slice."""
    try:
        yield from steps
    except AnnotationError as error:
        message = re.sub(
            r"annotation (\d+)", lambda match: request.describe(int(match.group(1))), str(error)
        )
        raise AnnotationError(message) from error


def _update(progress: TrainProgress) -> FinetuneUpdate:
    return FinetuneUpdate(
        iteration=progress.iteration,
        loss=progress.loss,
        smoothed_loss=progress.smoothed_loss,
        elapsed=progress.elapsed,
        fraction=progress.fraction,
    )

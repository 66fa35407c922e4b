"""What the Fine-tune section's Start trains on: the chosen image, its annotated planes and
the settings, checked before any worker starts (:func:`training_request`); and the run
recorded in the model once it trained (:func:`record_run`)."""

from __future__ import annotations

import hashlib
from typing import Any, NamedTuple

import napari
import numpy as np

from ..core.metadata import trained_description
from ..core.model import UNet
from ..training.distillation import has_been_trained, learning_before_last_run
from ..training.history import cut_short, note_on_last_run
from ._copied_mask import uncorrected_copy
from ._finetune_job import PlaneReader, PreviewSource, TrainingRequest
from ._finetune_settings import FinetuneSettings
from ._geometry import ImageGeometry, image_data
from ._layers import annotated_planes
from ._state import ModelState, trained_name
from ._stroke_refusals import strokes_missing


class Refusal(NamedTuple):
    """Why Start trains nothing.

    Attributes
    ----------
    message : str
    advice : bool
        What to paint first (a status line and a warning), not an error.
    """

    message: str
    advice: bool = False


def training_request(
    viewer: napari.viewer.Viewer,
    image: napari.layers.Image | None,
    labels_layer: napari.layers.Labels | None,
    state: ModelState,
    settings: FinetuneSettings,
) -> TrainingRequest | Refusal:
    """A run of ``state``'s model on the annotated planes of ``labels_layer``, the
    annotation layer of ``image``, with ``settings``; a :class:`Refusal` saying why not.

    The model is not asked for (nor the default one loaded) before an image and its
    annotation layer are chosen.
    """
    if image is None or labels_layer is None:
        said = "Choose an image and its annotation layer (see Annotate), then press Start."
        return Refusal(said, advice=True)  # a slip: in the status line, as a warning
    model = state.model
    in_channels = model.config.in_channels
    geometry = ImageGeometry.of(image, in_channels)
    problem = geometry.layout_problem(image.name) or geometry.channels_problem(
        image.name, in_channels
    )
    if problem:
        return Refusal(problem)
    annotated = _annotated(labels_layer, image, geometry, model)
    if isinstance(annotated, Refusal):
        return annotated
    planes, annotations = annotated
    restarts = state.restarts(labels_layer, settings.from_base.value)
    copied = not restarts and has_been_trained(model)  # a model still learning learns on
    if copied and uncorrected_copy(labels_layer, planes, annotations, model):
        return Refusal(OWN_MASK, advice=True)
    reader = PlaneReader(image_data(image), geometry, in_channels)
    try:
        reader.check_channels()
    except ValueError as error:
        return Refusal(f"Cannot train: {error}. Choose a model made for this kind of image.")
    in_view = geometry.plane_in_view(image, viewer)
    preview = PreviewSource(reader, in_view) if settings.live_preview.value else None
    request = TrainingRequest(
        model=model,
        reader=reader,
        annotations=annotations,
        train=settings.train_config(),
        augment=settings.augment_config(),
        weights=settings.weight_config(),
        image_name=image.name,
        planes=planes,
        preview=preview,
        annotation_name=labels_layer.name,
        compare_plane=in_view,
    )
    if restarts and state.repeat_of is not None and state.repeat_of == run_fingerprint(request):
        return Refusal(NOTHING_NEW, advice=True)
    return request


NOTHING_NEW = (
    "Nothing new to learn: these strokes and settings are the last run's, and each run "
    "starts again from the model you began with, so it would make the same model. Paint "
    "more strokes where the model is wrong (or change the settings), then press Start."
)
"""Why Start refuses to repeat a complete run (:func:`run_fingerprint`)."""


OWN_MASK = (
    "Nothing corrected yet: the strokes are the model's own mask as Start from the "
    "prediction copied it, so a run would teach it nothing new. Paint the right class "
    "where the mask is wrong, then press Start."
)
"""Why Start refuses an uncorrected copy of the current model's mask
(:func:`~napari_unet._widgets._copied_mask.uncorrected_copy`)."""


def run_fingerprint(request: TrainingRequest) -> str:
    """What decides a run's result besides its starting model: the image, the annotated
    planes and their strokes, and the settings (a SHA-1 of them)."""
    digest = hashlib.sha1(repr((request.image_name, request.planes)).encode())
    for annotation in request.annotations:
        digest.update(repr((annotation.shape, annotation.dtype.str)).encode())
        digest.update(np.ascontiguousarray(annotation).tobytes())
    digest.update(repr((request.train, request.augment, request.weights)).encode())
    return digest.hexdigest()


def _annotated(
    labels_layer: napari.layers.Labels,
    image: napari.layers.Image,
    geometry: ImageGeometry,
    model: UNet,
) -> tuple[list[tuple[int, ...]], list[np.ndarray]] | Refusal:
    """The annotated planes of ``labels_layer`` and copies of them; a :class:`Refusal`
    when the layer does not fit the image or lacks a class of ``model``'s to train on."""
    labels = np.asarray(labels_layer.data)
    if labels.shape != geometry.spatial_shape:
        channels = geometry.channel_axis
        why = ""
        if labels.shape == geometry.shape and channels is not None:  # once read as slices
            why = (
                f" This model reads “{image.name}” as {geometry.axes}, its "
                f"{geometry.shape[channels]} planes as channels; the layer was made when they "
                "were read as slices."
            )
        return Refusal(
            f"“{labels_layer.name}” has shape {labels.shape} but “{image.name}” has "
            f"{geometry.spatial_shape} (without channels).{why} Create an annotation layer "
            "for it in the Annotate section."
        )
    planes = annotated_planes(labels, len(geometry.leading_shape))
    annotations = [labels[plane].copy() for plane in planes]
    missing = strokes_missing(annotations, model, labels_layer.name, planes)
    if missing:  # said before any worker starts, as advice, not as a failure
        return Refusal(missing, advice=True)
    return planes, annotations


def record_run(state: ModelState, request: TrainingRequest | None) -> bool:
    """Note the run that trained ``request.model`` in its history (the image layer and the
    annotated slices), description and name (" (trained)", " (fine-tuned)"), and tell the
    other sections (``state.model_changed``); False when there is nothing to note."""
    if request is None or not note_on_last_run(
        request.model,
        image_layer=request.image_name,
        annotated_slices=tuple(tuple(plane) for plane in request.planes),
    ):
        return False
    metadata = request.model.metadata
    metadata["description"] = trained_description(metadata.get("description"), request.image_name)
    fine_tuned = not learning_before_last_run(request.model)  # as its history says
    state.name = trained_name(state.name, fine_tuned=fine_tuned)
    state.model_changed.emit()
    return True


def repeat_of(request: TrainingRequest | None, stopped: bool) -> str | None:
    """The fingerprint a run leaves for Start to refuse repeating it: a run that ended
    by itself after its whole iteration budget; None after a stop or a time budget that
    cut it short (a repeat would train further)."""
    if request is None or stopped or cut_short(request.model) is not None:
        return None
    return run_fingerprint(request)


def painted_since(request: TrainingRequest | None, labels_layer: Any) -> int:
    """Pixels of ``labels_layer`` whose label differs from what the run of ``request``
    trained on (strokes painted or erased while it ran); 0 for another layer."""
    if request is None or labels_layer is None or labels_layer.name != request.annotation_name:
        return 0
    labels = np.asarray(labels_layer.data)
    trained = dict(zip(request.planes, request.annotations))
    changed = int(np.count_nonzero(labels))  # every plane the run did not train on
    for plane, annotation in trained.items():
        fits = labels.ndim == len(plane) + 2 and all(i < n for i, n in zip(plane, labels.shape))
        if not fits or labels[plane].shape != annotation.shape:
            return 0  # the layer's data was replaced by another shape
        changed += int(np.count_nonzero(labels[plane] != annotation))
        changed -= int(np.count_nonzero(labels[plane]))
    return changed

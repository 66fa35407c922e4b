"""Training data from sparse annotations: validation, weight maps, patch sampling.

Annotations follow the label convention: 0 = unlabelled (ignored, weight 0),
1 = background, 2..K = foreground classes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..config import AugmentConfig, NormConfig, WeightConfig
from ..core.inference import normalization_stats, normalize
from ..core.model import UNet
from ..core.tiling import read_mirrored
from .augment import augment_patch
from .weights import weight_map


class AnnotationError(ValueError):
    """Annotations that cannot train the model; the message says what to paint or fix."""


@dataclass
class TrainingImage:
    """One normalised image with its annotation and loss weights.

    Attributes
    ----------
    image : (C, Y, X) float32, normalised
    labels : (Y, X) unsigned int (the smallest type that holds the classes), the annotation
    weights : (Y, X) float32, the paper's weight map (0 where unlabelled)
    labelled : list of (N_k, 2) int32 arrays, coordinates of each class's labelled pixels
    """

    image: np.ndarray
    labels: np.ndarray
    weights: np.ndarray
    labelled: list[np.ndarray]


def _as_channels_first(image: np.ndarray, in_channels: int) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[None]
    if image.ndim != 3 or image.shape[0] != in_channels:
        raise AnnotationError(
            f"the model expects {in_channels} input channel(s); got an image of shape "
            f"{image.shape} (give (Y, X) or (C, Y, X))"
        )
    return image


def check_labels(
    labels: np.ndarray, image_shape: tuple[int, ...], n_classes: int, index: int = 0
) -> None:
    """Refuse annotation ``index`` when its shape is not ``image_shape`` (Y, X) or a label
    is outside 0..``n_classes`` (:class:`AnnotationError`, naming the index)."""
    if labels.shape != tuple(image_shape):
        raise AnnotationError(
            f"annotation {index} has shape {labels.shape} but its image has shape "
            f"{tuple(image_shape)}; create the annotation layer from the image"
        )
    if not labels.size:
        return
    wrong = int(labels.min()) if labels.min() < 0 else int(labels.max())
    if wrong < 0 or wrong > n_classes:
        dense = (
            "; a ground truth of instance labels or a binary mask (ISBI: 255 = cell) becomes "
            "an annotation with napari_unet.annotation_from_instances or annotation_from_binary"
            if wrong > n_classes
            else ""
        )
        raise AnnotationError(
            f"annotation {index} uses label {wrong}, but the model has {n_classes} "
            f"classes (labels 1..{n_classes}; 0 = unlabelled){dense}"
        )


def integer_labels(labels: Any, index: int = 0) -> np.ndarray:
    """``labels`` as an integer array (no copy if it is one); fractions are refused."""
    labels = np.asarray(labels)
    if labels.dtype.kind in "biu":
        return labels
    with np.errstate(invalid="ignore"):  # NaN or inf: refused just below
        as_integers = labels.astype(np.int64)
    if not np.array_equal(as_integers, labels):
        raise AnnotationError(
            f"annotation {index} holds non-integer values; labels are whole numbers "
            "(0 = unlabelled, 1 = background, 2.. = classes)"
        )
    return as_integers


def prepare_training_data(
    images: Sequence[np.ndarray],
    annotations: Sequence[np.ndarray],
    model: UNet,
    weight_config: WeightConfig | None = None,
) -> list[TrainingImage]:
    """Validate annotations, normalise images and compute weight maps.

    Parameters
    ----------
    images : sequence of (Y, X) or (C, Y, X) arrays
    annotations : sequence of (Y, X) integer arrays, same length
        Images whose annotation is empty are skipped.

    Raises
    ------
    AnnotationError
        Mismatched shapes, label values beyond the model's classes, no
        annotation at all, or fewer than two classes painted.
    """
    _check_lists(images, annotations)
    weight_config = weight_config or WeightConfig()
    norm = model.info.normalization
    prepared = []
    for index, (image, labels) in enumerate(zip(images, annotations)):
        item = _training_image(image, labels, index, model, norm=norm, weights=weight_config)
        if item is not None:
            prepared.append(item)
    names = model.metadata.get("class_names") or []
    check_classes_present(annotated_pixels(prepared), dict(enumerate(map(str, names), start=1)))
    return prepared


def _check_lists(images: Sequence[np.ndarray], annotations: Sequence[np.ndarray]) -> None:
    """Refuse a single array given for the images or annotations (TypeError) and lists
    of different lengths (AnnotationError)."""
    if isinstance(images, np.ndarray) or isinstance(annotations, np.ndarray):
        raise TypeError(
            "images and annotations are lists, one array each per image: "
            "finetune(model, [image], [annotation])"
        )
    if len(images) != len(annotations):
        raise AnnotationError(f"got {len(images)} images but {len(annotations)} annotations")


def _training_image(
    image: np.ndarray,
    labels: np.ndarray,
    index: int,
    model: UNet,
    *,
    norm: NormConfig | None,
    weights: WeightConfig,
) -> TrainingImage | None:
    """Image ``index`` normalised with ``norm`` (the model's normalisation), with its
    checked annotation, its weight map under ``weights`` and its labelled pixels; None
    when nothing is painted."""
    n_classes = model.config.n_classes
    image = _as_channels_first(image, model.config.in_channels)
    labels = integer_labels(labels, index)
    check_labels(labels, image.shape[-2:], n_classes, index)
    if not labels.any():
        return None
    norm = norm or NormConfig()
    offset, scale = normalization_stats(image, norm)
    labels = labels.astype(np.min_scalar_type(n_classes))  # uint8 for < 256 classes
    coordinates = [
        np.argwhere(labels == value).astype(np.int32) for value in range(1, n_classes + 1)
    ]
    return TrainingImage(
        image=normalize(image, offset, scale, norm.clip),
        labels=labels,
        weights=weight_map(labels, weights, n_classes=n_classes),  # checked: no warning
        labelled=coordinates,
    )


def check_classes_present(counts: dict[int, int], names: dict[int, str] | None = None) -> None:
    """Refuse annotations that paint fewer than two classes.

    Strokes of one class alone are refused for a trained model too: in the annotation loop
    on DSB they made ``nuclei`` worse than it started in 6 (background only) and 23
    (nucleus only) of 24 round-metrics (docs/experiments/annotation_loop.md, 2026-12-05).

    Parameters
    ----------
    counts : dict
        Annotated pixels of each label value 1..n_classes (:func:`annotated_pixels`).
    names : dict, optional
        Class name of each label value (the model's ``class_names``), said with the labels.

    Raises
    ------
    AnnotationError
        Saying that the annotations are empty, or which one label they paint.
    """
    names = names or {}
    both = (
        f"paint at least one {names.get(1, 'background')} (label 1) and one "
        f"{names.get(2, 'foreground')} (label 2) stroke"
    )
    painted = [label for label, count in counts.items() if count > 0]
    if not painted:
        raise AnnotationError(f"the annotations are empty: {both}")
    if len(painted) < 2:
        only = painted[0]
        named = f" ({names[only]})" if only in names else ""
        raise AnnotationError(
            f"only label {only}{named} is painted: {both} (fine-tuning learns where one class "
            "ends and the other begins; beside a stroke of one, paint a short one of the other)"
        )


def annotated_pixels(prepared: list[TrainingImage]) -> dict[int, int]:
    """Number of labelled pixels per label value (1 = background, ...)."""
    n_classes = len(prepared[0].labelled) if prepared else 0
    return {
        label: int(sum(item.labelled[label - 1].shape[0] for item in prepared))
        for label in range(1, n_classes + 1)
    }


class PatchSampler:
    """Draws training patches centred on labelled pixels, class-balanced.

    Each patch: pick a class uniformly among the painted ones, then one of its
    labelled pixels (over all images), and centre the patch's output region on
    it, so no patch is wasted on unlabelled areas. With ``context_fraction`` > 0
    that share of the patches is centred on any pixel instead (images drawn by
    area), for losses that also use unpainted pixels (distillation).

    Parameters
    ----------
    data : list of TrainingImage
    input_size : int
        Input patch edge (a valid input size of the model).
    output_size : int
        Edge of the network output for that input.
    augment : AugmentConfig
    rng : numpy.random.Generator
    context_fraction : float
        Share of patches centred anywhere, in [0, 1).
    """

    def __init__(
        self,
        data: list[TrainingImage],
        input_size: int,
        output_size: int,
        augment: AugmentConfig,
        rng: np.random.Generator,
        context_fraction: float = 0.0,
    ) -> None:
        self.data = data
        self.context_fraction = context_fraction
        self.input_size = input_size
        self.output_size = output_size
        self.augment = augment
        self.rng = rng
        self.classes = [
            k for k in range(len(data[0].labelled)) if sum(d.labelled[k].shape[0] for d in data)
        ]

    def _pick_anywhere(self) -> tuple[TrainingImage, int, int]:
        areas = np.array([item.labels.size for item in self.data], float)
        item = self.data[self.rng.choice(len(self.data), p=areas / areas.sum())]
        y, x = (int(self.rng.integers(size)) for size in item.labels.shape)
        return item, y, x

    def _pick_centre(self) -> tuple[TrainingImage, int, int]:
        class_index = self.classes[self.rng.integers(len(self.classes))]
        counts = np.array([item.labelled[class_index].shape[0] for item in self.data], float)
        item = self.data[self.rng.choice(len(self.data), p=counts / counts.sum())]
        coordinates = item.labelled[class_index]
        y, x = coordinates[self.rng.integers(coordinates.shape[0])]
        return item, int(y), int(x)

    def patch(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One augmented patch: image (C, S, S), labels (O, O) int64, weights (O, O) float32.

        ``S`` is the input size, ``O`` the output size. Labels and weights
        outside the image are 0 (unlabelled).
        """
        anywhere = self.context_fraction > 0 and self.rng.random() < self.context_fraction
        for _ in range(20):
            item, y, x = self._pick_anywhere() if anywhere else self._pick_centre()
            start_y, start_x = y - self.input_size // 2, x - self.input_size // 2
            shape = (self.input_size, self.input_size)
            image = read_mirrored(item.image, start_y, start_x, shape)
            labels = _read_zero_padded(item.labels, start_y, start_x, shape)
            weights = _read_zero_padded(item.weights, start_y, start_x, shape)
            image, labels, weights = augment_patch(image, labels, weights, self.augment, self.rng)
            assert labels is not None and weights is not None  # given, so returned
            crop = slice((self.input_size - self.output_size) // 2, None)
            crop = slice(crop.start, crop.start + self.output_size)
            labels, weights = labels[crop, crop], weights[crop, crop]
            if anywhere or weights.sum() > 0:
                break
        return image, labels.astype(np.int64), weights.astype(np.float32)

    def batch(self, batch_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``batch_size`` patches stacked: (N, C, S, S), (N, O, O), (N, O, O)."""
        patches = [self.patch() for _ in range(batch_size)]
        return tuple(np.stack(parts) for parts in zip(*patches))  # type: ignore[return-value]


def _read_zero_padded(array: np.ndarray, y_start: int, x_start: int, shape: tuple[int, int]) -> Any:
    """A window of a (Y, X) array; pixels outside the array are 0."""
    out = np.zeros(shape, dtype=array.dtype)
    y0, x0 = max(y_start, 0), max(x_start, 0)
    y1 = min(y_start + shape[0], array.shape[0])
    x1 = min(x_start + shape[1], array.shape[1])
    if y1 > y0 and x1 > x0:
        out[y0 - y_start : y1 - y_start, x0 - x_start : x1 - x_start] = array[y0:y1, x0:x1]
    return out


def default_patch_size(model: UNet, min_output: int = 96) -> int:
    """Smallest valid input patch whose output is at least ``min_output`` pixels."""
    if model.config.padding == "same":
        return model.nearest_valid_sizes(max(min_output, model.size_multiple))[1]
    return model.smallest_valid_input_covering(min_output)

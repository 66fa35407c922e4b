"""What ``napari-unet train`` reads: its images and annotations, checked before training."""

from __future__ import annotations

import argparse
from pathlib import Path

from ._common import CliError

__all__ = ["training_inputs"]


def training_inputs(args: argparse.Namespace, in_channels: int, n_classes: int):
    """Images (channels first) and annotations, each error naming its file (before any
    training starts)."""
    from ..io.data import read_image, to_channels_first
    from ..training.sampling import AnnotationError, check_labels, integer_labels

    if len(args.images) != len(args.labels):
        raise CliError(f"got {len(args.images)} --images but {len(args.labels)} --labels")
    images: list = []
    labels: list = []
    for image_path, label_path in zip(args.images, args.labels):
        pixels = read_image(image_path)  # its errors name the file
        _refuse_stack(image_path, pixels.shape)
        try:
            image = to_channels_first(pixels, in_channels)
        except ValueError as error:
            raise CliError(f"{image_path}: {error}") from error
        label = read_image(label_path)
        if label.shape != image.shape[-2:]:
            raise CliError(
                f"{label_path} has shape {label.shape} but its image {image_path} has (Y, X) "
                f"{image.shape[-2:]}; annotations must cover their image pixel for pixel"
            )
        try:
            label = integer_labels(label, len(labels))
            check_labels(label, image.shape[-2:], n_classes, len(labels))
        except AnnotationError as error:
            raise CliError(f"{label_path}: {error}") from None
        images.append(image)
        labels.append(label)
    return images, labels


def _refuse_stack(image_path: Path, shape: tuple[int, ...]) -> None:
    """Refuse an image whose file declares a stack axis (Z, T, ...): ``train`` takes planes.

    Without this, a 3-slice stack would pass as channels-first RGB (and a 1-channel
    model would train on its luminance); ``predict`` reads the same axes
    (:func:`~napari_unet.io.inputs.file_axes`).
    """
    from ..io.data import ImageReadError
    from ..io.inputs import file_axes

    try:
        axes = file_axes(image_path)
        declared = f"declares a stack axis (axes {axes}, shape {shape})"
    except ImageReadError:
        raise
    except ValueError:  # several stacking axes, e.g. T and Z
        axes, declared = "Z", f"declares several stacking axes (shape {shape})"
    if axes is not None and "Z" in axes:
        raise CliError(
            f"{image_path} {declared}, but train takes 2-D images (Y, X, with or without "
            "channels) and 2-D annotations: save each annotated slice and its strokes as "
            "files of their own"
        )

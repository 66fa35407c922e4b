"""The checks :func:`napari_unet.core.inference.predict` makes on the image it is given."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .model import UNet

__all__ = ["as_array", "check_channels"]


def as_array(image: Any) -> Any:
    """Arrays as they are (numpy, memory map, zarr, dask); a torch tensor and nested
    lists as numpy."""
    if isinstance(image, torch.Tensor):
        return image.detach().cpu().numpy()
    return image if hasattr(image, "shape") and hasattr(image, "ndim") else np.asarray(image)


def check_channels(image: Any, model: UNet) -> None:
    """Raise ValueError unless ``image`` is a non-empty (Y, X) or (C, Y, X) image with
    the model's input channels (with a hint where its axes look swapped)."""
    if image.ndim not in (2, 3):
        raise ValueError(f"expected a (Y, X) or (C, Y, X) image, got shape {image.shape}")
    if min(image.shape[-2:]) < 1:
        raise ValueError(f"the image is empty (shape {tuple(image.shape)}); it needs pixels")
    channels = 1 if image.ndim == 2 else image.shape[0]
    if channels != model.config.in_channels:
        last = image.shape[-1] if image.ndim == 3 and image.shape[-1] <= 4 < image.shape[0] else 0
        hint = (
            f"; its last axis of {last} looks like channels (RGB?): predict takes them first, "
            "e.g. napari_unet.io.data.to_channels_first(image, in_channels), or "
            "predict_stack(image, model, axes='YXC')"
            if last
            else "; a stack of 2-D slices goes to predict_stack"
            if image.ndim == 3
            else ""
        )
        raise ValueError(
            f"the model expects {model.config.in_channels} input channel(s) but the image has "
            f"{channels} (shape {tuple(image.shape)}, read channels first){hint}"
        )

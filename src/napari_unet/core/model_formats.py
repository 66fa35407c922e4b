"""Other model file formats that :func:`napari_unet.core.checkpoint.load_model` opens.

The registry is kept apart from :mod:`~napari_unet.core.checkpoint` and imports neither
PyTorch nor anything from the outer layers, so that ``import napari_unet`` can register
the formats of :mod:`napari_unet.io` (bioimage.io packages) without loading PyTorch: the
napari reader and sample data need neither.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

    from .model import UNet

FormatDetector = Callable[[str | os.PathLike], bool]
FormatLoader = Callable[[str | os.PathLike, "str | torch.device | None"], "UNet"]

#: (detect, load) pairs, tried in order by ``load_model`` before its checkpoint formats.
#: Outer layers register theirs here, so that the core imports nothing from them.
_MODEL_FORMATS: list[tuple[FormatDetector, FormatLoader]] = []


def register_model_format(detect: FormatDetector, load: FormatLoader) -> None:
    """Let ``load_model`` open files for which ``detect(path)`` is true with ``load``."""
    if (detect, load) not in _MODEL_FORMATS:
        _MODEL_FORMATS.append((detect, load))

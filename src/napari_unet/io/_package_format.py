"""bioimage.io packages as a model format of ``load_model``, registered without PyTorch.

:mod:`napari_unet.io` registers the pair below on import; the loader imports
:mod:`napari_unet.io.bioimageio` (and so PyTorch) only when a package is opened.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

    from ..core.model import UNet


def is_bioimageio_package(path: str | os.PathLike) -> bool:
    """True when ``path`` is a zip with ``rdf.yaml`` (or ``bioimageio.yaml``) at its root."""
    path = Path(path).expanduser()
    if path.suffix.lower() != ".zip" or not path.is_file() or not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
    return bool(names & {"rdf.yaml", "bioimageio.yaml"})


def load_package(path: str | os.PathLike, device: str | torch.device | None) -> UNet:
    """:func:`napari_unet.io.bioimageio.load_bioimageio`, imported when first needed."""
    from .bioimageio import load_bioimageio

    return load_bioimageio(path, device)

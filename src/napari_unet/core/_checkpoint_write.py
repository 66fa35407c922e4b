"""Writing a checkpoint: a model's weights and metadata as safetensors, atomically.

The format is described in :mod:`napari_unet.core.checkpoint`, which re-exports
:func:`save_model`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ._atomic import atomic_open
from .metadata import FORMAT_VERSION, ModelMetadata
from .model import UNet

#: The key of the metadata JSON in a checkpoint: in the safetensors header's
#: ``__metadata__``, and beside ``state_dict`` in a ``.pt``/``.pth`` file.
METADATA_KEY = "napari_unet"


#: Suffixes a safetensors checkpoint must not have: other formats' (``load_model``'s reader
#: is chosen by the suffix; the CLI's ``train --output`` refuses them too).
_NOT_SAFETENSORS = (
    ".pt",
    ".pth",
    ".zip",
    ".zarr",
    ".tif",
    ".tiff",
    ".png",
    ".jpg",
    ".jpeg",
    ".npy",
)


def save_model(
    model: UNet, path: str | os.PathLike, *, half: bool = False, **metadata: Any
) -> Path:
    """Write ``model`` to a safetensors checkpoint, atomically.

    Parameters
    ----------
    model : UNet
        Its ``config`` and ``metadata`` are stored; ``metadata`` keywords update
        ``model.metadata`` first (e.g. ``description="..."``).
    path : path-like
        Target file; its folder must exist. Written to a temporary file in the
        same folder, flushed to disk, then renamed over the target, so an
        interrupted save never leaves a broken checkpoint at ``path``.
    half : bool
        Store weights as float16 (half the size).

    Returns
    -------
    Path
        The written file.

    Raises
    ------
    ValueError
        A name that :func:`~napari_unet.core.checkpoint.load_model` would read as
        something else: ``.pt``/``.pth`` (torch pickles), ``.zip`` (a bioimage.io
        package), an image or a zarr store.
    """
    from safetensors.torch import save as safetensors_bytes

    path = Path(path)
    if path.suffix.lower() in _NOT_SAFETENSORS:
        raise ValueError(
            f"{path}: checkpoints are written as .safetensors files (a {path.suffix} file "
            "would be read as something else)"
        )
    model.metadata.update(metadata)
    header = (
        ModelMetadata.of(model)
        .replace(format_version=FORMAT_VERSION, package_version=_package_version())
        .to_header()
    )
    tensors = _cpu_tensors(model, half)
    text = json.dumps(header, default=_plain_json)
    payload = safetensors_bytes(tensors, metadata={METADATA_KEY: text})
    atomic_write_bytes(path, payload)
    return path


def _cpu_tensors(model: UNet, half: bool) -> dict[str, torch.Tensor]:
    """The model's state dict as contiguous CPU tensors, floating-point ones as float16
    (``half``) or float32."""
    dtype = torch.float16 if half else torch.float32
    return {
        key: value.detach()
        .to("cpu", dtype if value.is_floating_point() else value.dtype)
        .contiguous()
        for key, value in model.state_dict().items()
    }


def _plain_json(value: Any) -> Any:
    """NumPy scalars and arrays in metadata (a seed from ``np.arange``, a ``np.float32``
    weight) as the plain numbers and lists JSON holds; anything else is refused."""
    if isinstance(value, (np.generic, np.ndarray)):
        return value.tolist()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def atomic_write_bytes(path: Path, payload: bytes) -> None:
    """Write ``payload`` to ``path`` through a temporary file and a rename."""
    with atomic_open(path) as stream:
        stream.write(payload)


def _package_version() -> str:
    from .. import __version__

    return __version__

"""Checkpoint files: safetensors weights plus JSON metadata, saved atomically.

Format (version 1)
------------------
One ``.safetensors`` file. Tensors: the model's ``state_dict`` (float32, or
float16 when saved with ``half=True``; always loaded as float32). The header's
``__metadata__`` holds one key, ``"napari_unet"``, whose value is a JSON object::

    {"format_version": 1, "package_version": "0.2.0",
     "model_config": {...ModelConfig...}, "normalization": {...NormConfig...},
     "class_names": ["background", "foreground"], "description": "...",
     "trained_on": "...", "parent": null, "training_history": [...], ...}

Loading never unpickles: safetensors only holds raw tensors and strings. A
``.pt``/``.pth`` file is accepted only through ``torch.load(weights_only=True)``
and must hold ``{"state_dict": ..., "napari_unet": <the JSON string>}``.
"""

from __future__ import annotations

import json
import os
import stat
import warnings
import zipfile
from pathlib import Path
from typing import IO, Any

import torch

from ..config import ModelConfig
from ._checkpoint_write import METADATA_KEY
from ._checkpoint_write import atomic_write_bytes as atomic_write_bytes
from ._checkpoint_write import save_model as save_model
from ._limits import (
    MAX_PARAMETERS,
    check_background_threshold,
    check_format_version,
    check_model_config,
    check_normalization,
    check_tensor_shapes,
)
from .devices import resolve_device
from .file_kinds import foreign_file_kind
from .metadata import FORMAT_VERSION, ModelMetadata
from .model import UNet
from .model_formats import _MODEL_FORMATS
from .model_formats import FormatDetector as FormatDetector
from .model_formats import FormatLoader as FormatLoader
from .model_formats import register_model_format as register_model_format

BUNDLED_DIR = Path(__file__).parent.parent / "models"  # napari_unet/models


class CheckpointError(ValueError):
    """A checkpoint could not be read or does not match its model; names the file."""


class NotAModelError(CheckpointError):
    """A file of another kind (an image, an archive...); the message says what a model is."""


def bundled_models() -> dict[str, Path]:
    """Names of the models shipped with the package, mapped to their files."""
    return {path.stem: path for path in sorted(BUNDLED_DIR.glob("*.safetensors"))}


def resolve_checkpoint(name_or_path: str | os.PathLike) -> Path:
    """A bundled model's name, or a path, to an existing checkpoint file."""
    bundled = bundled_models()
    if str(name_or_path) in bundled:
        return bundled[str(name_or_path)]
    path = Path(name_or_path).expanduser()
    if not path.exists():
        names = ", ".join(bundled) or "none"
        raise CheckpointError(
            f"{path}: no such checkpoint file, and not a bundled model name (bundled: {names})"
        )
    if path.is_dir():
        raise CheckpointError(f"{path}: is a folder, not a checkpoint file")
    check_regular_file(path)
    return path


def check_regular_file(path: Path) -> None:
    """Refuse a FIFO, socket or device, which would block or never end when read."""
    if not stat.S_ISREG(path.stat().st_mode):
        raise CheckpointError(f"{path}: not a regular file (a pipe, socket or device?)")


def default_metadata(config: ModelConfig) -> dict[str, Any]:
    """Metadata of a freshly initialised model (:meth:`ModelMetadata.new`, as a dict)."""
    return ModelMetadata.new(config).to_dict()


def new_model(config: ModelConfig | None = None, seed: int | None = 0) -> UNet:
    """A freshly initialised :class:`UNet` with default metadata.

    Parameters
    ----------
    config : ModelConfig, optional
        None: :class:`ModelConfig`'s default, the paper's network (64 base features).
        The dock's and ``train --new``'s new model is
        :data:`napari_unet.NEW_MODEL_CONFIG` (8 features), which learns the most per
        second on a CPU: ``new_model(NEW_MODEL_CONFIG)`` for a model to train from strokes.
    seed : int or None
        Makes the initial weights reproducible without touching torch's global random
        state (they are drawn from a forked CPU generator); None draws them from the
        global generator.

    Returns
    -------
    UNet
        On the CPU, in training mode, with ``model.metadata`` of an untrained model.

    Raises
    ------
    ValueError
        When a number of ``config`` is not a whole number (e.g. 2.5 features).
    """
    check_model_config((config or ModelConfig()).to_dict(), bounded=False)
    if seed is None:
        model = UNet(config or ModelConfig())
    else:
        with torch.random.fork_rng(devices=[]):  # the CPU generator, restored after
            torch.random.default_generator.manual_seed(seed)
            model = UNet(config or ModelConfig())
    model.metadata = default_metadata(model.config)
    return model


def read_checkpoint(
    path: str | os.PathLike, *, weights: bool = True
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Tensors and metadata of a checkpoint file, without building a model.

    The metadata is checked first (:mod:`napari_unet.core._limits`: a sane
    architecture, stored shapes that fit it), so a hostile file cannot make
    this allocate more than its sane weights. With ``weights=False`` a
    safetensors file's tensors are not read: they come back as empty tensors
    of the stored shapes on the ``meta`` device.

    Raises
    ------
    CheckpointError
        Naming the file and what is wrong with it.
    """
    path = resolve_checkpoint(path)
    if path.suffix.lower() in (".pt", ".pth"):
        return _read_torch(path)
    return _read_safetensors(path, weights)


def _read_safetensors(
    path: Path, weights: bool = True
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as file:
            header = file.metadata() or {}
            if METADATA_KEY not in header:
                raise CheckpointError(
                    f"{path}: a safetensors file but not a napari-unet checkpoint"
                )
            metadata = _parse_metadata(path, header[METADATA_KEY])
            shapes = {key: tuple(file.get_slice(key).get_shape()) for key in file.keys()}
            check_shapes(path, shapes, metadata)
            if weights:
                tensors = {key: file.get_tensor(key) for key in file.keys()}
            else:
                tensors = {key: torch.empty(shape, device="meta") for key, shape in shapes.items()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as error:
        if isinstance(error, CheckpointError):
            raise
        kind = foreign_file_kind(path)
        if kind is not None:
            raise NotAModelError(
                f"{path}: {kind}, not a model. A model is a .safetensors checkpoint saved by "
                "napari-unet (Save in the Model section, napari-unet train), a .pt/.pth state "
                "dict or a bioimage.io package it exported"
            ) from error
        raise CheckpointError(
            f"{path}: not a readable safetensors checkpoint (truncated, corrupt or another "
            f"format): {error}"
        ) from error
    return tensors, metadata


def _read_torch(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    check_torch_archive(path)
    try:
        with warnings.catch_warnings():  # a plain pickle: refused below, in one line
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            content = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise CheckpointError(
            f"{path}: refused or unreadable: only plain tensors are loaded from .pt/.pth files "
            f"(torch.load with weights_only=True), never code ({type(error).__name__})"
        ) from error
    if not isinstance(content, dict) or METADATA_KEY not in content or "state_dict" not in content:
        raise CheckpointError(f"{path}: a torch file but not a napari-unet checkpoint")
    state, text = content["state_dict"], content[METADATA_KEY]
    check_state_dict(path, state)
    if not isinstance(text, str):
        raise CheckpointError(f"{path}: its {METADATA_KEY} entry must be a JSON string")
    metadata = _parse_metadata(path, text)
    check_shapes(path, {key: tuple(value.shape) for key, value in state.items()}, metadata)
    return dict(state), metadata


def check_state_dict(path: Path, state: Any) -> None:
    """Refuse an unpickled ``state_dict`` that is not a dict of names to tensors."""
    if not isinstance(state, dict) or not all(
        isinstance(key, str) and isinstance(value, torch.Tensor) for key, value in state.items()
    ):
        raise CheckpointError(f"{path}: its state_dict must map names to tensors, and does not")


#: Most bytes a .pt/.pth archive may unpack to: the largest sane network in
#: float64, plus room for the pickled metadata.
MAX_TORCH_BYTES = MAX_PARAMETERS * 8 + 2**26


def check_torch_archive(path: Path, source: Path | IO[bytes] | None = None) -> None:
    """Refuse a zip archive (torch's format) that would unpack to too much.

    ``torch.save`` stores its entries uncompressed; a compressed entry could
    inflate to any size, so compressed entries are refused outright and the
    declared sizes must add up to at most :data:`MAX_TORCH_BYTES`. ``source``
    (default: ``path``) is what is read, e.g. the bytes of an entry of another
    zip; ``path`` names it in the message.
    """
    source = path if source is None else source
    try:
        if not zipfile.is_zipfile(source):
            return  # torch's legacy format: reads no more than the file holds
        with zipfile.ZipFile(source) as archive:
            entries = archive.infolist()
    except (OSError, zipfile.BadZipFile, ValueError) as error:
        raise CheckpointError(f"{path}: unreadable torch archive ({error})") from error
    if any(entry.compress_type != zipfile.ZIP_STORED for entry in entries):
        raise CheckpointError(
            f"{path}: refused: holds compressed entries, which torch.save never writes"
        )
    total = sum(entry.file_size for entry in entries)
    if total > MAX_TORCH_BYTES:
        raise CheckpointError(
            f"{path}: refused: unpacks to {total:,} bytes, above the limit of "
            f"{MAX_TORCH_BYTES:,} for a checkpoint"
        )


def check_shapes(path: Path, shapes: dict[str, tuple[int, ...]], metadata: dict) -> None:
    try:
        check_tensor_shapes(shapes, ModelConfig.from_dict(metadata["model_config"]))
    except ValueError as error:
        raise CheckpointError(f"{path}: {error}") from error


#: Longest metadata JSON text accepted (characters).
MAX_METADATA_CHARS = 2**26


def _parse_metadata(path: Path, text: str) -> dict[str, Any]:
    """The checked metadata of a checkpoint (see :mod:`napari_unet.core._limits`)."""
    if len(text) > MAX_METADATA_CHARS:
        raise CheckpointError(f"{path}: checkpoint metadata is malformed: longer than 64 MiB")
    try:
        metadata = json.loads(text)
        if not isinstance(metadata, dict):
            raise ValueError(f"expected a JSON object, got a {type(metadata).__name__}")
    except (ValueError, RecursionError) as error:
        reason = "nested too deeply" if isinstance(error, RecursionError) else error
        raise CheckpointError(f"{path}: checkpoint metadata is malformed: {reason}") from error
    check_metadata(path, metadata)
    return metadata


def check_metadata(path: Path, metadata: dict[str, Any]) -> None:
    """Refuse metadata of a newer format, an insane architecture or bad percentiles."""
    try:
        version = check_format_version(metadata.get("format_version", 0))
    except ValueError as error:
        raise CheckpointError(f"{path}: checkpoint metadata is malformed: {error}") from error
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format {version} is newer than this napari-unet understands "
            f"({FORMAT_VERSION}); upgrade napari-unet"
        )
    try:
        if "model_config" not in metadata:
            raise ValueError("no model_config")
        check_model_config(metadata["model_config"])
        check_normalization(metadata.get("normalization"))
        if "background_threshold" in metadata:
            check_background_threshold(metadata["background_threshold"])
    except ValueError as error:
        raise CheckpointError(f"{path}: checkpoint metadata is malformed: {error}") from error


def load_model(name_or_path: str | os.PathLike, device: str | torch.device | None = None) -> UNet:
    """Rebuild a :class:`UNet` from a checkpoint file or a bundled model's name.

    Parameters
    ----------
    name_or_path : str or path-like
        A bundled model's name (``napari-unet models``), a ``.safetensors`` checkpoint,
        a ``.pt``/``.pth`` file of weights (read without running code), or a file of a
        format registered with :func:`register_model_format`: a bioimage.io package
        exported by napari-unet (:mod:`napari_unet.io.bioimageio`).
    device : str or torch.device, optional
        Where the model goes (``"auto"``: CUDA, then Apple MPS, then the CPU); None: CPU.

    Returns
    -------
    UNet
        In eval mode, with ``model.config`` and ``model.metadata`` (normalisation, class
        names, training history, ``source``: where it was loaded from, a file's absolute
        path or a bundled model's name); ``model.info`` reads the metadata.

    Raises
    ------
    CheckpointError
        A missing, unreadable, hostile or broken file (e.g. NaN weights).
    """
    for detect, load in _MODEL_FORMATS:  # e.g. a bioimage.io zip (registered by napari_unet.io)
        if detect(name_or_path):
            return load(name_or_path, device)
    path = resolve_checkpoint(name_or_path)
    tensors, metadata = read_checkpoint(path)
    check_weights(path, tensors)
    config = ModelConfig.from_dict(metadata["model_config"])
    model = UNet(config)
    expected = model.state_dict()
    model.load_state_dict({k: v.to(expected[k].dtype) for k, v in tensors.items()})
    given = Path(name_or_path)  # a file by its absolute path: a parent named after a move
    source = str(given.absolute()) if given.is_file() else str(name_or_path)  # or a name
    info = ModelMetadata.from_dict(metadata, config).replace(source=source)
    model.metadata = info.to_dict()  # without the file's format_version, package_version, config
    return model.to(resolve_device(device) if device is not None else "cpu").eval()


def check_weights(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    """Refuse weights that are not floating point, or hold NaN or infinite values."""
    for key, value in tensors.items():
        if not (value.is_floating_point() or key.endswith("num_batches_tracked")):
            raise CheckpointError(f"{path}: weight {key} is {value.dtype}, not floating point")
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise CheckpointError(
                f"{path}: weight {key} holds NaN or infinite values; the checkpoint is broken "
                "(saved from a diverged run?) and cannot predict"
            )


def checkpoint_info(name_or_path: str | os.PathLike) -> dict[str, Any]:
    """The metadata of a checkpoint as a JSON-serialisable dict (safetensors: weights not read).

    A file of a format registered with :func:`register_model_format` (a bioimage.io
    package) is loaded as :func:`load_model` does, and gives the same keys: the
    model's metadata and ``model_config``, ``file`` and ``parameters``.

    Raises
    ------
    CheckpointError
        A missing, unreadable, hostile or broken file.
    ImportError
        A bioimage.io package without bioimageio.core installed (with the hint to install it).
    """
    for detect, load in _MODEL_FORMATS:
        if detect(name_or_path):
            model = load(name_or_path, None)
            metadata = ModelMetadata.of(model).to_header()
            metadata["file"] = str(metadata.pop("source", None) or name_or_path)
            metadata["parameters"] = int(sum(t.numel() for t in model.state_dict().values()))
            return metadata
    path = resolve_checkpoint(name_or_path)
    tensors, metadata = read_checkpoint(path, weights=False)
    metadata["file"] = str(path)
    metadata["parameters"] = int(sum(t.numel() for t in tensors.values()))
    return metadata

"""Sanity bounds for what a checkpoint (or the command line) may ask for.

A checkpoint is untrusted input: its metadata says which network to build, and
building a network allocates its weights. Everything here is checked before
anything large is allocated or read: the architecture's numbers (whole numbers
within :data:`LIMITS`), the parameter count it implies (computed on PyTorch's
``meta`` device, which allocates nothing) and the tensor shapes stored in the
file.
"""

from __future__ import annotations

import math
import numbers
import zipfile
from collections.abc import Mapping
from typing import Any

from ..config import ModelConfig, NormConfig, is_background_threshold

__all__ = [
    "LIMITS",
    "MAX_PARAMETERS",
    "check_background_threshold",
    "check_format_version",
    "check_model_config",
    "check_normalization",
    "check_tensor_shapes",
    "check_zip_sizes",
    "expected_shapes",
    "read_zip_entry",
]

#: Largest accepted value of each whole-number field of :class:`ModelConfig`
#: (the paper: depth 4, 64 base features, 1 channel, 2 classes). Masks are
#: uint8 with 0 reserved, hence at most 255 classes.
LIMITS = {"depth": 8, "base_features": 1024, "in_channels": 256, "n_classes": 255}

#: Most parameters a checkpoint's network may have: 2**27 (512 MiB as float32);
#: the paper's U-Net has 31 million.
MAX_PARAMETERS = 2**27

_CHOICES = {"padding": ("valid", "same"), "upsampling": ("upconv", "bilinear")}
_MINIMA = {"depth": 0, "base_features": 1, "in_channels": 1, "n_classes": 2}


def check_model_config(values: Any, *, bounded: bool = True) -> ModelConfig:
    """A :class:`ModelConfig` from untrusted values, refused unless sane.

    Parameters
    ----------
    values : Any
        The ``model_config`` of a checkpoint's metadata (a JSON object).
    bounded : bool
        Also apply :data:`LIMITS` and :data:`MAX_PARAMETERS` (False: only whole
        numbers, at least the minima, and known choices).

    Returns
    -------
    ModelConfig

    Raises
    ------
    ValueError
        When ``values`` is not an object, a number is not a whole number within
        :data:`LIMITS`, a choice is unknown, or the network would have more than
        :data:`MAX_PARAMETERS` parameters.
    """
    if not isinstance(values, Mapping):
        raise ValueError(f"model_config must be a JSON object, got {_show(values)}")
    for name, largest in LIMITS.items():
        value = values.get(name, getattr(ModelConfig, name))
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise ValueError(f"model_config {name} must be a whole number, got {_show(value)}")
        if not _MINIMA[name] <= int(value) <= (largest if bounded else int(value)):
            raise ValueError(
                f"model_config {name} is {value}; napari-unet accepts {_MINIMA[name]} to {largest}"
            )
    for name, choices in _CHOICES.items():
        value = values.get(name, getattr(ModelConfig, name))
        if value not in choices:
            raise ValueError(f"model_config {name} must be one of {choices}, got {_show(value)}")
    if not isinstance(values.get("batch_norm", False), bool):
        raise ValueError(
            f"model_config batch_norm must be true or false, got {values['batch_norm']}"
        )
    config = ModelConfig.from_dict(dict(values))
    if not bounded:
        return config
    count = sum(math.prod(shape) for shape in expected_shapes(config).values())
    if count > MAX_PARAMETERS:
        raise ValueError(
            f"model_config: a network of {count:,} parameters, above the limit of "
            f"{MAX_PARAMETERS:,}"
        )
    return config


def expected_shapes(config: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Shape of every ``state_dict`` entry of ``UNet(config)``, allocating no weights."""
    import torch

    from .model import UNet

    with torch.device("meta"):
        model = UNet(config)
    return {key: tuple(value.shape) for key, value in model.state_dict().items()}


def check_tensor_shapes(shapes: Mapping[str, tuple[int, ...]], config: ModelConfig) -> None:
    """Refuse stored tensors that are not exactly those of ``UNet(config)``.

    Raises
    ------
    ValueError
        Naming up to three missing, unexpected and wrongly shaped entries.
    """
    expected = expected_shapes(config)
    missing = sorted(set(expected) - set(shapes))
    unexpected = sorted(set(shapes) - set(expected))
    wrong = [key for key in expected if key in shapes and tuple(shapes[key]) != expected[key]]
    if missing or unexpected or wrong:
        raise ValueError(
            "the weights do not match the architecture in its metadata "
            f"(missing {missing[:3]}, unexpected {unexpected[:3]}, wrong shape {wrong[:3]})"
        )


def check_format_version(value: Any) -> int:
    """``format_version`` as a whole number >= 0, else ValueError."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"format_version must be a whole number, got {_show(value)}")
    return value


def check_normalization(values: Any) -> None:
    """Refuse normalisation percentiles that are not numbers with 0 <= low < high <= 100,
    and a clip that is neither None nor a finite number >= 1."""
    if values is None:
        return
    if not isinstance(values, Mapping):
        raise ValueError(f"normalization must be a JSON object, got {_show(values)}")
    norm = {name: values.get(name, getattr(NormConfig, name)) for name in ("low", "high")}
    numbers = all(
        isinstance(value, (int, float)) and not isinstance(value, bool) for value in norm.values()
    )
    if not numbers or not 0 <= norm["low"] < norm["high"] <= 100:
        raise ValueError(
            f"normalization percentiles must be numbers with 0 <= low < high <= 100, got "
            f"low {_show(norm['low'])}, high {_show(norm['high'])}"
        )
    clip = values.get("clip", NormConfig.clip)
    if clip is not None and not _finite_at_least_one(clip):
        raise ValueError(f"normalization clip must be null or a number >= 1, got {_show(clip)}")


def _finite_at_least_one(value: Any) -> bool:
    """Whether ``value`` is a real number (not a bool) >= 1 that a float holds."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(float(value)) and value >= 1
    except OverflowError:  # an int beyond float
        return False


def check_background_threshold(value: Any) -> None:
    """Refuse a stored background threshold that is not a number in [0.5, 1)."""
    if not is_background_threshold(value):
        raise ValueError(f"background_threshold must be a number in [0.5, 1), got {_show(value)}")


def check_zip_sizes(
    entries: list[zipfile.ZipInfo], largest: Mapping[str, int], default: int, total: int
) -> None:
    """Refuse a zip whose entries declare more than they may unpack to.

    Parameters
    ----------
    entries : list of zipfile.ZipInfo
        The archive's ``infolist()``.
    largest : mapping
        Most bytes an entry of that name may declare; ``default`` for the others.
    total : int
        Most bytes all entries may declare together (a zip bomb repeats one
        compressed entry under many names, or declares gigabytes of zeros).

    Raises
    ------
    ValueError
        Naming the first entry above its limit, or the total.
    """
    for entry in entries:
        limit = largest.get(entry.filename, default)
        if entry.file_size > limit:
            raise ValueError(
                f"entry {_show(entry.filename)} unpacks to {entry.file_size:,} bytes, above the "
                f"limit of {limit:,}"
            )
    declared = sum(entry.file_size for entry in entries)
    if declared > total:
        raise ValueError(f"unpacks to {declared:,} bytes, above the limit of {total:,}")


def read_zip_entry(archive: zipfile.ZipFile, name: str, limit: int) -> bytes:
    """The bytes of entry ``name``, read in chunks and never more than ``limit``.

    Raises
    ------
    ValueError
        When the entry declares more than ``limit``, inflates to another size than
        it declares, or is corrupt (bad CRC, unreadable compressed data).
    """
    entry = archive.getinfo(name)
    if entry.file_size > limit:
        raise ValueError(
            f"entry {_show(name)} unpacks to {entry.file_size:,} bytes, above the limit of "
            f"{limit:,}"
        )
    chunks, size = [], 0
    try:
        with archive.open(entry) as stream:
            while chunk := stream.read(min(2**20, entry.file_size + 1 - size)):
                chunks.append(chunk)
                size += len(chunk)
                if size > entry.file_size:
                    break
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as error:
        raise ValueError(
            f"entry {_show(name)} is corrupt or inflates to more than it declares ({error})"
        ) from error
    if size != entry.file_size:
        raise ValueError(
            f"entry {_show(name)} unpacks to another size than the {entry.file_size:,} bytes "
            "it declares"
        )
    return b"".join(chunks)


def _show(value: Any) -> str:
    """A short description of an untrusted value for a message."""
    text = repr(value)
    return text if len(text) <= 40 else f"a {type(value).__name__}"

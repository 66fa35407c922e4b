"""Choosing a torch device: CUDA, else Apple MPS, else CPU."""

from __future__ import annotations

import torch


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """The torch device for ``device``.

    ``"auto"`` or None picks CUDA when available, else Apple MPS, else the CPU.
    An explicit device that is not available raises ``ValueError`` saying so.
    """
    if isinstance(device, torch.device):
        return device
    name = (device or "auto").lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(
            f"device {device!r} requested but CUDA is not available; use 'auto' or 'cpu'"
        )
    if name == "mps" and not _mps_available():
        raise ValueError(
            "device 'mps' requested but Apple MPS is not available; use 'auto' or 'cpu'"
        )
    try:
        return torch.device(name)
    except RuntimeError as error:
        raise ValueError(f"unknown device {device!r}: use auto, cpu, cuda or mps") from error


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())

"""Choosing a torch device (CUDA, else Apple MPS, else CPU), its CPU thread count, and the
layout of the weights while training."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, cast

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
    if name.startswith("mps") and not _mps_available():
        raise ValueError(
            f"device {device!r} requested but Apple MPS is not available; use 'auto' or 'cpu'"
        )
    try:
        chosen = torch.device(name)
    except RuntimeError as error:
        raise ValueError(f"unknown device {device!r}: use auto, cpu, cuda or mps") from error
    if chosen.type == "cuda" and chosen.index is not None:
        count = torch.cuda.device_count()
        if chosen.index >= count:
            names = "cuda:0" if count == 1 else f"cuda:0 to cuda:{count - 1}"
            raise ValueError(
                f"device {device!r} requested but this machine has {count} CUDA "
                f"device{'s' if count != 1 else ''} ({names})"
            )
    return chosen


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


@contextmanager
def torch_threads(count: int | None) -> Iterator[None]:
    """Let torch use ``count`` CPU threads in the calling thread, and restore the count after.

    None or 0 leaves the count as it is. ``torch.set_num_threads`` sets a
    process-wide default, but with OpenMP each thread keeps the count it had
    when it first computed: a worker thread (of Qt's pool, of a dask worker)
    that ran an earlier job ignores a later change made elsewhere, so call this
    in the thread that computes.
    """
    previous = torch.get_num_threads()
    if not count or count == previous:
        yield
        return
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def training_layout(device: torch.device) -> torch.memory_format:
    """The layout of a model's weights while it trains: channels-last on the CPU.

    A one-channel batch is both layouts at once, so the layout of the weights decides
    oneDNN's: channels-last made a fine-tuning iteration 1.27x faster (BENCHMARKS.md,
    fine-tuning throughput). Other devices keep the default layout.
    """
    return torch.channels_last if device.type == "cpu" else torch.contiguous_format


def to_layout(model: torch.nn.Module, layout: torch.memory_format) -> Any:
    """``model.to(memory_format=layout)``, returning ``model`` (a keyword that torch's
    type stubs omit)."""
    return cast("Any", model).to(memory_format=layout)

"""Torch's first optimizer built ahead of the first fine-tune, in a thread of its own."""

from __future__ import annotations

import functools
import threading

import torch

__all__ = ["start_optimizer_warm_up", "warm_up_optimizer"]


@functools.cache
def warm_up_optimizer() -> None:
    """Create a throw-away Adam optimizer once per process.

    The first optimizer torch builds imports its compiler stack (``torch._dynamo``,
    sympy: 0.3-0.9 s on this CPU), holding the GIL in long stretches. In a fine-tune's
    worker that froze the napari window for 224-342 ms at the start of the first run
    (``benchmarks/bench_gui_stalls.py``).
    """
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])


_WARM_UP: list[threading.Thread] = []


def start_optimizer_warm_up() -> threading.Thread:
    """Run :func:`warm_up_optimizer` in a daemon thread, once per process; returns it.

    The Fine-tune section starts it when it is built: the imports then happen while the
    user looks at the new dock, in a thread, instead of freezing the dock's opening (1.4 s
    on the Qt thread) or the first fine-tune.
    """
    if not _WARM_UP:
        thread = threading.Thread(
            target=warm_up_optimizer, name="napari-unet optimizer warm-up", daemon=True
        )
        thread.start()
        _WARM_UP.append(thread)
    return _WARM_UP[0]

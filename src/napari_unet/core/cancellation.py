"""Stop flags: how long work is asked to end early, also inside post-processing steps.

Long work takes a stop flag (a callable or a :class:`threading.Event`) and raises
:class:`Cancelled` at its next check once the flag is set. The post-processing of one
large image (:func:`~napari_unet.core.postprocess.prediction_mask`: the closing of gaps,
its watershed, the growth of objects) is a handful of library calls of seconds each on a
large image, and its functions take no flag. A caller runs them inside
``with stopping(flag):`` and they check the flag of that context between those calls
(:func:`check_stopped`), so a Cancel pressed during the mask of a 4096² image ends it after
the call under way instead of after the whole mask. The context is the thread's own
(:mod:`contextvars`): a flag set for one job's worker thread is never seen by another's.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

StopFlag = Callable[[], bool] | threading.Event | None

_CURRENT: ContextVar[StopFlag] = ContextVar("napari_unet_stop_flag", default=None)


class Cancelled(RuntimeError):
    """Raised when a stop flag ends a long task early."""


def is_stopped(stop: StopFlag) -> bool:
    """True when ``stop`` (a callable or a ``threading.Event``) says so."""
    if stop is None:
        return False
    if isinstance(stop, threading.Event):
        return stop.is_set()
    return bool(stop())


@contextmanager
def stopping(stop: StopFlag) -> Iterator[None]:
    """Within the block, :func:`check_stopped` raises :class:`Cancelled` once ``stop`` is set."""
    token = _CURRENT.set(stop)
    try:
        yield
    finally:
        _CURRENT.reset(token)


def check_stopped(what: str = "post-processing") -> None:
    """Raise :class:`Cancelled` when the flag of the enclosing :func:`stopping` is set
    (nothing happens outside one)."""
    if is_stopped(_CURRENT.get()):
        raise Cancelled(f"{what} cancelled")

"""Ctrl-C in ``napari-unet train``: the dock's Stop, its second Stop, then Python's own.

:class:`CtrlC` counts the presses (SIGINT) while :func:`ctrl_c_stops` has its handler
installed:

1. the first stops training at its next iteration (:meth:`CtrlC.stop_requested`, the
   ``stop`` flag of :func:`~napari_unet.training.loop.finetune`); the run ends as usual
   with the best weights so far: the background threshold is set, the checkpoint
   written and the first image compared with the model before;
2. the second ends the threshold's calibration and the comparison at their next batch
   of tiles (:meth:`CtrlC.cancel_requested`, ``finetune``'s ``cancel``); the model
   keeps its threshold from before, its weights are still written;
3. the third raises :class:`KeyboardInterrupt` where the program is, as Python does
   (nothing more is written), unless the checkpoint is being written
   (:meth:`CtrlC.writing_file`): that press is counted and the file completed.

The handler only counts and prints (a failed print is retried at the next poll: a
handler that interrupts a write to the same stream cannot write to it); the training
loop polls the flags in its own code between iterations and batches of tiles.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence

__all__ = [
    "INTERRUPTED",
    "QUIT_PRESS",
    "WRITING_NOTICE",
    "CtrlC",
    "ctrl_c_notices",
    "ctrl_c_stops",
    "to_stderr",
]

#: Exit status of a run that Ctrl-C ended (128 + SIGINT, as a shell reports it).
INTERRUPTED = 128 + int(signal.SIGINT)

#: The press that raises KeyboardInterrupt (outside :meth:`CtrlC.writing_file`).
QUIT_PRESS = 3

#: What a press prints while the checkpoint is written (from the third press on).
WRITING_NOTICE = "Ctrl-C: the checkpoint is being written; stopping once it is complete"


def ctrl_c_notices(calibrates: bool) -> tuple[str, str]:
    """What the first and the second Ctrl-C of ``train`` print; ``calibrates``: whether
    the run sets the model's background threshold at its end
    (:func:`~napari_unet.training.loop.sets_threshold`)."""
    skipped = "the comparison"
    if calibrates:
        skipped = f"setting the background threshold and {skipped}"
    kept = " (the model keeps its threshold from before)" if calibrates else ""
    return (
        "Ctrl-C: stopping after this iteration; the best weights so far will be saved. "
        f"Ctrl-C again to skip {skipped}, a third time to quit without saving.",
        f"Ctrl-C again: skipping {skipped}{kept}; the best weights are still saved. "
        "A third Ctrl-C quits without saving.",
    )


def to_stderr(text: str) -> None:
    """Print ``text`` on stderr."""
    print(text, file=sys.stderr, flush=True)


class CtrlC:
    """The Ctrl-C presses of one run and the flags they set.

    Parameters
    ----------
    notices : sequence of str
        What the first and the second press print (once each).
    writing_notice : str
        What a press from the third on prints while the checkpoint is written.
    say : callable, optional
        Prints one line (default: stderr); ``train`` points it at its progress bar
        while the bar is shown.
    """

    def __init__(
        self,
        notices: Sequence[str] = (),
        writing_notice: str = "",
        say: Callable[[str], None] | None = None,
    ) -> None:
        self.presses = 0
        self.cancelled = False
        self.notices = tuple(notices)
        self.writing_notice = writing_notice
        self.say: Callable[[str], None] = say or to_stderr
        self._writing = False
        self._announced = 0

    @property
    def status(self) -> int:
        """:data:`INTERRUPTED` once Ctrl-C was pressed, else 0."""
        return INTERRUPTED if self.presses else 0

    def handler(self, signum: int, frame: object) -> None:
        """The SIGINT handler: count; raise KeyboardInterrupt from :data:`QUIT_PRESS` on."""
        self.presses += 1
        if self.presses >= QUIT_PRESS:
            if not self._writing:
                raise KeyboardInterrupt
            self._say(self.writing_notice)
            return
        self.announce()

    def stop_requested(self) -> bool:
        """Whether training should stop (the first press); ``finetune``'s ``stop``."""
        self.announce()
        return self.presses >= 1

    def cancel_requested(self) -> bool:
        """Whether the calibration and comparison should end (the second press);
        ``cancelled`` records that it said so."""
        self.announce()
        self.cancelled = self.cancelled or self.presses >= 2
        return self.presses >= 2

    def announce(self) -> None:
        """Print the notices of the presses so far that were not printed yet."""
        while self._announced < min(self.presses, len(self.notices)):
            self._announced += 1
            if not self._say(self.notices[self._announced - 1]):
                self._announced -= 1  # said at the next poll
                return

    @contextlib.contextmanager
    def writing_file(self) -> Iterator[None]:
        """Within the block a press never raises: it is counted and the block finishes."""
        self._writing = True
        try:
            yield
        finally:
            self._writing = False

    def _say(self, text: str) -> bool:
        """Print ``text`` (if any); False when the stream was busy (a reentrant write)."""
        if not text:
            return True
        try:
            self.say(text)
        except RuntimeError:  # the handler interrupted a write to the same stream
            return False
        return True


@contextlib.contextmanager
def ctrl_c_stops(ctrl_c: CtrlC) -> Iterator[CtrlC]:
    """Install ``ctrl_c.handler`` for SIGINT within the block; the previous handler is
    put back after it.

    Nothing is installed outside the main thread (Python runs signal handlers there
    only), nor when SIGINT is ignored (a background job of a shell): Ctrl-C then does
    what it did before.
    """
    if threading.current_thread() is not threading.main_thread():
        yield ctrl_c
        return
    previous = signal.getsignal(signal.SIGINT)
    if previous is signal.SIG_IGN:
        yield ctrl_c
        return
    signal.signal(signal.SIGINT, ctrl_c.handler)
    try:
        yield ctrl_c
    finally:  # None: a handler not installed from Python; Python's own is the closest
        signal.signal(signal.SIGINT, signal.default_int_handler if previous is None else previous)

"""The CLI's progress bar: tqdm on a terminal, a few plain lines in a log."""

from __future__ import annotations

import shutil
import sys
import time
from typing import TextIO

from tqdm import tqdm

_STEPS = 1000  # the bar counts fractions in steps of 0.1 %


#: A log (not a terminal) gets a line for a stage that ends this long or more after its last line.
STAGE_LINE_SECONDS = 5.0

#: In a log, a stage that has run this long gets a line each time it has gone
#: :data:`LOG_STEP` further since its last line (besides one every ``log_interval``).
LONG_STAGE_SECONDS = 10.0

#: The progress (a fraction) between two lines of a long stage in a log.
LOG_STEP = 0.1

#: In a log, two lines of one stage are at least this far apart (seconds).
MIN_LINE_SECONDS = 2.0


class ProgressBar:
    """``label |#####     |  45%, detail [elapsed]`` for a fraction done (a 30-wide bar).

    On a terminal it is a tqdm bar redrawn in place (at most 10 times a second).
    When ``stream`` is not a terminal (a log file, a pipe, a cluster job's
    output), no carriage returns are written, only plain lines (:meth:`update`):
    one every ``log_interval`` seconds, one each :data:`LOG_STEP` of a stage running
    :data:`LONG_STAGE_SECONDS` or longer, a stage's last, and one when the bar is
    closed. A short run gets its closing line alone.
    """

    def __init__(
        self, label: str, stream: TextIO | None = None, log_interval: float = 60.0
    ) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.log_interval = log_interval
        self.start = time.perf_counter()
        self._fraction = 0.0
        self._detail = ""
        self._last_line = self.start
        self._stage_start = self.start
        self._stage_lines = 0  # lines written of the stage under way
        self._line_fraction = 0.0  # the fraction in the last line written
        self._written: tuple[float, str] | None = None  # and its fraction and detail
        self._closed = False
        self._tqdm: tqdm | None = None
        if _is_terminal(self.stream):
            size = shutil.get_terminal_size()
            self._tqdm = tqdm(
                total=_STEPS,
                desc=label,
                file=self.stream,
                leave=True,
                ncols=size.columns,  # not tqdm's own query: a terminal may say 0 x 0,
                nrows=size.lines,  # and tqdm then hides the bar (80 x 24 here)
                bar_format="{desc} |{bar:30}| {percentage:3.0f}%{postfix} [{elapsed}]",
            )

    def update(self, fraction: float, detail: str = "") -> None:
        """Show ``fraction`` (0 to 1) done, with ``detail`` after the percentage.

        A fraction below the last one starts a new stage (e.g. refining the mask after
        the tiles): a terminal shows it at once; a log gets the finished stage's last
        line when that stage had lines already or the last line is
        :data:`STAGE_LINE_SECONDS` or more old.
        """
        fraction = min(max(fraction, 0.0), 1.0)
        new_stage = fraction < self._fraction
        now = time.perf_counter()
        if new_stage and self._tqdm is None:
            said = self._written == (self._fraction, self._detail)
            if not said and (self._stage_lines or now - self._last_line >= STAGE_LINE_SECONDS):
                self._write_line(now)  # the stage that ended, as it ended
            self._stage_start, self._stage_lines, self._line_fraction = now, 0, 0.0
        self._fraction, self._detail = fraction, detail
        if self._tqdm is not None:
            # n is set, not incremented: a stage may start again from 0
            self._tqdm.n = round(fraction * _STEPS)
            self._tqdm.set_postfix_str(detail, refresh=False)
            if new_stage or fraction >= 1.0 or now - self._last_line >= 0.1:
                self._last_line = now
                self._tqdm.refresh()
            return
        if self._log_due(now):
            self._write_line(now)
            self._stage_lines += 1

    def _log_due(self, now: float) -> bool:
        """Whether a log gets a line now (see the class docstring)."""
        since_line = now - self._last_line
        if since_line >= self.log_interval:
            return True
        return (
            now - self._stage_start >= LONG_STAGE_SECONDS
            and since_line >= MIN_LINE_SECONDS
            and self._fraction - self._line_fraction >= LOG_STEP - 1e-9
        )

    def note(self, text: str) -> None:
        """Print ``text`` as a line of its own, above the bar (which is redrawn below it)."""
        if self._tqdm is not None and not self._closed:
            self._tqdm.write(text, file=self.stream)
            return
        self.stream.write(f"{text}\n")
        self.stream.flush()

    def close(self) -> None:
        """End the bar: the final state stays on screen, or is the log's last line."""
        if self._closed:
            return
        self._closed = True
        if self._tqdm is not None:
            self._tqdm.close()
        elif self._written != (self._fraction, self._detail):  # not said just now
            self._write_line(time.perf_counter())

    def _write_line(self, now: float) -> None:
        self._last_line, self._line_fraction = now, self._fraction
        self._written = (self._fraction, self._detail)
        detail = f" {self._detail}" if self._detail else ""
        elapsed = now - self.start
        since = f"{elapsed:.1f} s since the start"  # not the stage's own time
        self.stream.write(f"{self.label}: {self._fraction:.0%}{detail} ({since})\n")
        self.stream.flush()


def _is_terminal(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False

"""A minimal text progress bar for the CLI (no extra dependency)."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class ProgressBar:
    """Redraws ``label [#####.....] done/total`` on one line of ``stream``."""

    def __init__(self, label: str, stream: TextIO | None = None, width: int = 30) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.width = width
        self.start = time.perf_counter()
        self._last_draw = 0.0

    def update(self, fraction: float, detail: str = "") -> None:
        """Redraw at most 10 times a second, and always at 100 %."""
        now = time.perf_counter()
        if fraction < 1.0 and now - self._last_draw < 0.1:
            return
        self._last_draw = now
        fraction = min(max(fraction, 0.0), 1.0)
        filled = round(fraction * self.width)
        bar = "#" * filled + "." * (self.width - filled)
        elapsed = now - self.start
        self.stream.write(f"\r{self.label} [{bar}] {fraction:4.0%} {detail} {elapsed:5.1f}s ")
        self.stream.flush()

    def close(self) -> None:
        """End the line."""
        self.stream.write("\n")
        self.stream.flush()

"""A live training-loss curve (matplotlib) for the Fine-tune section."""

from __future__ import annotations

import time

from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure

REDRAW_INTERVAL = 0.25
"""Seconds between two redraws while points keep arriving."""


class LossPlot(FigureCanvasQTAgg):
    """The loss of every iteration (thin) and its moving average (thick).

    Parameters
    ----------
    background, foreground : str
        Colours of the figure and of its text and axes (the napari theme's).
    """

    def __init__(self, background: str = "#262930", foreground: str = "#f0f1f2") -> None:
        figure = Figure(figsize=(3.2, 2.0), dpi=100, layout="tight")
        super().__init__(figure)
        self.axes = figure.add_subplot()
        (self.raw_line,) = self.axes.plot(
            [], [], color="#7fa7d9", linewidth=0.8, alpha=0.6, label="per iteration"
        )
        (self.smooth_line,) = self.axes.plot(
            [], [], color="#f59e0b", linewidth=2.0, label="moving average"
        )
        self.set_colours(background, foreground)
        self.iterations: list[int] = []
        self.losses: list[float] = []
        self.smoothed: list[float] = []
        self._last_draw = 0.0
        self.setMinimumHeight(170)
        self.clear()

    def set_colours(self, background: str, foreground: str) -> None:
        """Follow the napari theme: figure background, text and axes colours."""
        self.figure.set_facecolor(background)
        self.axes.set_facecolor(background)
        for spine in self.axes.spines.values():
            spine.set_color(foreground)
        self.axes.tick_params(colors=foreground, labelsize=8)
        self.axes.set_xlabel("iteration", color=foreground, fontsize=8)
        self.axes.set_ylabel("weighted loss", color=foreground, fontsize=8)
        self.axes.legend(fontsize=7, frameon=False, labelcolor=foreground, loc="upper right")
        self.draw_idle()

    def clear(self) -> None:
        """Forget all points."""
        self.iterations.clear()
        self.losses.clear()
        self.smoothed.clear()
        self._update_lines()
        self.axes.set_xlim(0, 10)
        self.axes.set_ylim(0, 1)
        self.draw_idle()

    def add(self, iteration: int, loss: float, smoothed: float) -> None:
        """Append one iteration's loss; redraws at most every ``REDRAW_INTERVAL`` s."""
        self.iterations.append(iteration)
        self.losses.append(loss)
        self.smoothed.append(smoothed)
        if time.monotonic() - self._last_draw >= REDRAW_INTERVAL:
            self.redraw()

    def redraw(self) -> None:
        """Draw all points now."""
        self._last_draw = time.monotonic()
        self._update_lines()
        if self.iterations:
            self.axes.set_xlim(0, max(10, self.iterations[-1]))
            top = max(max(self.losses), max(self.smoothed))
            self.axes.set_ylim(0, top * 1.05 if top > 0 else 1)
        self.draw_idle()

    def _update_lines(self) -> None:
        self.raw_line.set_data(self.iterations, self.losses)
        self.smooth_line.set_data(self.iterations, self.smoothed)

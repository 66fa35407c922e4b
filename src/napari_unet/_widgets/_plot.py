"""A live training-loss curve (matplotlib) for the Fine-tune section.

The curve must not stall napari while a fine-tune runs: a full matplotlib draw
(axes, ticks, legend, and the tight layout) takes 40-70 ms on a slow core, and
two or three times that while the worker thread competes for the core and the
GIL. So the layout is computed only when the canvas is cleared, resized or
re-coloured; the axis limits grow in steps (1-2-5 for the iterations), so
they rarely change; and in between, new points are drawn by blitting: the
saved background of the axes is restored and only the two lines are drawn (about
7 ms instead of 40-70 ms; the legend sits above the axes, in the saved picture).

Even so, each draw holds the GIL in the Qt thread, and the worker thread needs the
GIL between torch's operations (on a loaded machine the draws cost the fine-tune
iterations; on an idle one no difference was measured). So the loss axis grows in
steps too (a full draw each time its top changes: with ``top * 1.05`` that was every
new highest loss), and new points are drawn at most once a second
(:data:`REDRAW_INTERVAL`).
"""

from __future__ import annotations

import math
import time
import warnings
from typing import Any

from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

REDRAW_INTERVAL = 1.0
"""Seconds between two redraws while points keep arriving. Each blit holds the GIL in
the Qt thread for 10-15 ms (2-core AMD EPYC), which the fine-tune's worker waits out. On a
loaded machine redrawing every 0.25 s (and at each new highest loss) cost the dock's
fine-tune iterations; on an idle one no difference was measured
(``docs/experiments/gui_load.md``, 2026-12-03)."""

LOSS_AXIS_STEPS = (1.0, 1.5, 2.0, 3.0, 5.0, 7.5, 10.0)
"""Where the loss axis may end, times a power of ten (see :func:`loss_axis_end`)."""


def axis_end(value: float, smallest: float = 10) -> float:
    """The first of ``smallest`` and 1, 2, 5 x 10^k that is at least ``value``."""
    if value <= smallest:
        return smallest
    power = 10.0 ** math.floor(math.log10(value))
    return next(step * power for step in (1, 2, 5, 10) if step * power >= value)


def loss_axis_end(value: float) -> float:
    """The top of the loss axis for a highest loss ``value``: the first of 1, 1.5, 2, 3,
    5, 7.5 x 10^k at least 5 % above it (1 when ``value`` is not positive or not finite)."""
    if not math.isfinite(value) or value <= 0:
        return 1.0
    wanted = value * 1.05
    power = 10.0 ** math.floor(math.log10(wanted))
    return next(step * power for step in LOSS_AXIS_STEPS if step * power >= wanted)


LOSS_TOOLTIP = (
    "The training loss: the paper's weighted cross-entropy on your strokes. A trained "
    "model's fine-tune adds how far it moves from its own predictions where you did not "
    "paint (0 at its start), so its loss may rise while it learns the strokes, and it is "
    "not comparable with a first training's. The status line says what the run changed."
)
"""The loss curve's tooltip."""


class LossPlot(FigureCanvasQTAgg):
    """The loss of every iteration (thin) and its moving average (thick).

    Parameters
    ----------
    background, foreground : str
        Colours of the figure and of its text and axes (the napari theme's).
    """

    def __init__(self, background: str = "#262930", foreground: str = "#f0f1f2") -> None:
        figure = Figure(figsize=(3.2, 2.0), dpi=100)
        super().__init__(figure)
        self.axes = figure.add_subplot()
        # whole iterations in 1-2-5 steps, as many as fit (the default locator says 2.5)
        self.axes.xaxis.set_major_locator(
            MaxNLocator(nbins="auto", steps=[1, 2, 5, 10], integer=True)
        )
        # animated: full draws leave the lines out; _on_draw adds them
        (self.raw_line,) = self.axes.plot(
            [], [], color="#7fa7d9", linewidth=0.8, alpha=0.6, label="per iteration", animated=True
        )
        (self.smooth_line,) = self.axes.plot(
            [], [], color="#f59e0b", linewidth=2.0, label="moving average", animated=True
        )
        self._background: Any = None
        self.mpl_connect("draw_event", self._on_draw)
        self.set_colours(background, foreground)
        self.iterations: list[int] = []
        self.losses: list[float] = []
        self.smoothed: list[float] = []
        self._last_draw = 0.0
        self.setMinimumHeight(170)
        self.setToolTip(LOSS_TOOLTIP)
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
        self.axes.legend(  # above the axes: a flat curve at the top stays clear
            fontsize=7,
            frameon=False,
            labelcolor=foreground,
            loc="lower right",
            bbox_to_anchor=(1.0, 1.0),
            ncols=2,
            borderaxespad=0.2,
        )
        self._full_draw(layout=True)

    def clear(self) -> None:
        """Forget all points."""
        self.iterations.clear()
        self.losses.clear()
        self.smoothed.clear()
        self._update_lines()
        self.axes.set_xlim(0, 10)
        self.axes.set_ylim(0, 1)
        self._full_draw(layout=True)

    def add(self, iteration: int, loss: float, smoothed: float) -> None:
        """Append one iteration's loss; redraws at most every ``REDRAW_INTERVAL`` s."""
        self.iterations.append(iteration)
        self.losses.append(loss)
        self.smoothed.append(smoothed)
        if time.monotonic() - self._last_draw >= REDRAW_INTERVAL:
            self.redraw()

    def extend(self, iterations, losses, smoothed) -> None:
        """Append many iterations' losses at once (equal-length sequences) and draw them."""
        self.iterations.extend(iterations)
        self.losses.extend(losses)
        self.smoothed.extend(smoothed)
        self.redraw()

    def redraw(self) -> None:
        """Draw all points now (blitting them when the axis limits stay as they are)."""
        self._last_draw = time.monotonic()
        self._update_lines()
        if self.iterations:
            top = max(max(self.losses), max(self.smoothed))
            limits = ((0.0, axis_end(self.iterations[-1])), (0.0, loss_axis_end(top)))
            if limits != (self.axes.get_xlim(), self.axes.get_ylim()):  # rare: a full draw
                self.axes.set_xlim(*limits[0])
                self.axes.set_ylim(*limits[1])
                self._full_draw()
                return
        self._blit_lines()

    def resizeEvent(self, event: Any) -> None:
        """Lay the figure out again for its new size."""
        super().resizeEvent(event)
        self._full_draw(layout=True)

    def _full_draw(self, layout: bool = False) -> None:
        """Draw everything at the next chance; with ``layout``, fit the margins first."""
        if layout:
            with warnings.catch_warnings():  # too small to fit: keep the previous margins
                warnings.simplefilter("ignore", UserWarning)
                self.figure.tight_layout()
        self._background = None  # no blitting on an outdated background until the draw
        self.draw_idle()

    def _on_draw(self, _event: Any) -> None:
        """After a full draw: keep the empty axes for blitting, then draw the lines."""
        self._background = self.copy_from_bbox(self.axes.bbox)
        self._draw_animated()

    def _blit_lines(self) -> None:
        if self._background is None:  # a full draw is on its way: it draws the lines
            return
        self.restore_region(self._background)
        self._draw_animated()
        self.blit(self.axes.bbox)

    def _draw_animated(self) -> None:
        self.axes.draw_artist(self.raw_line)
        self.axes.draw_artist(self.smooth_line)

    def _update_lines(self) -> None:
        self.raw_line.set_data(self.iterations, self.losses)
        self.smooth_line.set_data(self.iterations, self.smoothed)
        # a line through one point draws nothing: a run stopped after its first iteration
        self.smooth_line.set_marker("o" if len(self.iterations) == 1 else "None")

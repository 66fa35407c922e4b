"""Event-loop stalls over one annotate → fine-tune → predict round on a 1024² image.

Issue 15 item 13 asks that napari's Qt event loop never stall more than 100 ms during
a whole round, in a shown window (software OpenGL under Xvfb). This script measures it:
a 10 ms precise ``QTimer`` records when it fires while a shown viewer with the U-Net
dock goes through

1. ``annotate``: *Create annotation layer*, then brush dabs along strokes
   (``Labels.paint``, as a mouse drag does), one dab per event-loop turn;
2. ``fine-tune``: a ``--seconds`` fine-tune with the live preview;
3. ``predict (first)``: Predict, which creates the output layers;
4. ``predict (again)``: Predict once more, which reuses them;
5. ``idle``: nothing, for the noise floor.

A gap over ``--threshold`` ms between two ticks is a stall. Each stall is listed with
its phase and the widget's Qt-thread handlers (and napari's canvas draws) that ran in it;
those are timed by wrapping them.

Usage (from the repository root; re-runs itself under ``xvfb-run -a`` without a display)::

    python benchmarks/bench_gui_stalls.py [--size 1024] [--seconds 10] [--model nuclei]
        [--json benchmarks/results/gui_stalls.json]

Prints a markdown report on stdout (progress on stderr); figures in ``results_gui_stalls.md``.
``--json PATH`` also writes the raw numbers: each phase's gaps, every stall and every timed
call (seconds from the first tick).
"""

from __future__ import annotations

import argparse
import functools
import itertools
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from bench_gui_load import ensure_display, machine_lines, wait_for, wait_until
from raw_results import add_json_option, utc_now, write_json

if TYPE_CHECKING:
    import napari
    from qtpy.QtCore import QTimer

    from napari_unet._widgets import UNetWidget

TICK_MS = 10


@dataclass
class Recorder:
    """Timer ticks, phases and timed Qt-thread calls, all on ``time.perf_counter``."""

    ticks: list[float] = field(default_factory=list)
    phases: list[tuple[str, float, float]] = field(default_factory=list)
    calls: list[tuple[str, float, float]] = field(default_factory=list)

    def time_method(self, owner: type, name: str, label: str) -> None:
        """Wrap ``owner.name`` so that each call is recorded as ``label``."""
        function = getattr(owner, name)

        @functools.wraps(function)
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.calls.append((label, started, time.perf_counter()))

        setattr(owner, name, timed)

    def phase(self, name: str, run: Callable[[], None]) -> None:
        """Run one phase, remembering when it started and ended."""
        print(f"[bench_gui_stalls] {name}", file=sys.stderr, flush=True)
        started = time.perf_counter()
        run()
        self.phases.append((name, started, time.perf_counter()))

    def stalls(self, threshold_ms: float) -> list[tuple[float, float]]:
        """(start, end) of every gap between ticks longer than ``threshold_ms``."""
        times = np.array(self.ticks)
        gaps = np.diff(times) * 1000
        return [(times[i], times[i + 1]) for i in np.flatnonzero(gaps > threshold_ms)]


def instrument(recorder: Recorder) -> None:
    """Time the widgets' Qt-thread handlers, the loss plot and napari's canvas draw."""
    from napari._vispy.canvas import VispyCanvas

    from napari_unet._widgets._annotate import AnnotateWidget
    from napari_unet._widgets._finetune import FinetuneWidget
    from napari_unet._widgets._plot import LossPlot
    from napari_unet._widgets._predict import PredictWidget

    for owner, names in [
        (AnnotateWidget, ["create_annotation_layer", "update_counts"]),
        (FinetuneWidget, ["start_finetune", "_on_update", "_show_preview", "_on_result"]),
        (LossPlot, ["redraw", "draw", "paintEvent"]),
        (PredictWidget, ["run_prediction", "_on_progress", "show_outputs"]),
        (VispyCanvas, ["on_draw"]),
    ]:
        for name in names:
            recorder.time_method(owner, name, f"{owner.__name__}.{name}")


def strokes(truth: np.ndarray, rng: np.random.Generator, count: int) -> list[list[tuple]]:
    """``count`` short straight strokes: half inside objects (label 2), half outside (1)."""
    result = []
    for label in (2, 1):
        ys, xs = np.nonzero((truth > 0) == (label == 2))
        for index in rng.choice(len(ys), count // 2, replace=False):
            y, x = ys[index], xs[index]
            result.append([((y, x + step), label) for step in range(0, 20, 2)])
    return result


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (``argv``, else ``sys.argv``) as parsed arguments."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--seconds", type=float, default=10.0, help="fine-tuning budget")
    parser.add_argument("--model", default="nuclei", help="bundled name (else a new model)")
    parser.add_argument("--threshold", type=float, default=100.0, help="stall, in ms")
    parser.add_argument("--strokes", type=int, default=20)
    add_json_option(parser, "gui_stalls")
    return parser.parse_args(argv)


def open_dock(
    size: int, model: str, title: str = "bench_gui_stalls"
) -> tuple[napari.Viewer, UNetWidget, np.ndarray]:
    """A shown viewer with a ``size``² synthetic nuclei image and the U-Net dock, the
    bundled ``model`` loaded; also the image's true nuclei (instance labels, for strokes)."""
    import napari

    from napari_unet._widgets import UNetWidget
    from napari_unet.core.checkpoint import bundled_models
    from napari_unet.io.data import synthetic_nuclei

    image, truth = synthetic_nuclei(shape=(size, size), n_nuclei=size // 6, rng=0)
    viewer = napari.Viewer(title=title)  # shown: Xvfb's software OpenGL draws
    viewer.window.resize(1500, 980)
    viewer.add_image(image, name="nuclei", colormap="gray")
    dock = UNetWidget(viewer)
    viewer.window.add_dock_widget(dock, name="U-Net", area="right")
    if model in bundled_models() and dock.model.state.name != model:
        dock.model.source.value = model
        dock.model.load()
    wait_until(lambda: False, 1.0)  # the window is drawn, the model loaded
    return viewer, dock, truth


def open_viewer(args: argparse.Namespace) -> tuple[napari.Viewer, UNetWidget, np.ndarray]:
    """:func:`open_dock` for this benchmark's ``--size`` and ``--model``, with its budget."""
    viewer, dock, truth = open_dock(args.size, args.model)
    dock.finetune.settings.seconds.value = int(args.seconds)
    return viewer, dock, truth


def start_ticks(recorder: Recorder) -> QTimer:
    """Start the precise ``TICK_MS`` timer whose ticks ``recorder`` keeps (the first now)."""
    from qtpy.QtCore import Qt, QTimer

    timer = QTimer()
    timer.setTimerType(Qt.TimerType.PreciseTimer)
    timer.setInterval(TICK_MS)
    timer.timeout.connect(lambda: recorder.ticks.append(time.perf_counter()))
    recorder.ticks.append(time.perf_counter())
    timer.start()
    return timer


def annotate_phase(dock: UNetWidget, truth: np.ndarray, stroke_count: int) -> None:
    """Create the annotation layer and paint the strokes, one dab per event-loop turn."""
    dock.show_section(dock.annotate)
    layer = dock.annotate.create_annotation_layer()
    for stroke in strokes(truth, np.random.default_rng(1), stroke_count):
        for coordinates, label in stroke:
            layer.paint(coordinates, label)
            wait_until(lambda: False, 0.0, poll_ms=1)  # one event-loop turn per dab
    wait_until(lambda: False, 1.0)  # the painted-pixel recount (throttled) runs


def finetune_phase(dock: UNetWidget, seconds: float) -> None:
    """Fine-tune with the dock's settings (a ``seconds`` budget) until it finishes."""
    dock.show_section(dock.finetune)
    wait_for(dock.finetune.finished, dock.finetune.start_finetune, seconds + 300)
    wait_until(lambda: False, 0.5)


def predict_phase(dock: UNetWidget) -> None:
    """Predict the image until it finishes."""
    dock.show_section(dock.predict)
    wait_for(dock.predict.finished, dock.predict.run_prediction, 600)
    wait_until(lambda: False, 0.5)


def run_round(
    recorder: Recorder, dock: UNetWidget, truth: np.ndarray, args: argparse.Namespace
) -> None:
    """The phases of one round, each recorded: annotate, fine-tune, predict twice, idle."""
    recorder.phase("annotate", lambda: annotate_phase(dock, truth, args.strokes))
    recorder.phase("fine-tune", lambda: finetune_phase(dock, args.seconds))
    recorder.phase("predict (first)", lambda: predict_phase(dock))
    recorder.phase("predict (again)", lambda: predict_phase(dock))
    recorder.phase("idle", lambda: wait_until(lambda: False, 3.0))


def main(argv: list[str] | None = None) -> None:
    """Measure the stalls of one round in a shown viewer; print the report, write the JSON."""
    args = parse_arguments(argv)
    started = utc_now()
    ensure_display()
    recorder = Recorder()
    instrument(recorder)
    viewer, dock, truth = open_viewer(args)
    timer = start_ticks(recorder)
    run_round(recorder, dock, truth, args)
    timer.stop()
    recorder.ticks.append(time.perf_counter())
    print("\n".join(report(recorder, args)))
    viewer.close()
    write_json(
        args.json,
        {"arguments": vars(args), **raw_numbers(recorder, args.threshold)},
        started=started,
    )


def phase_of(recorder: Recorder, start: float, end: float) -> tuple[str, float]:
    """The phase that overlaps the interval ``start``-``end`` most, and when it began.

    A stall that spans two phases (the last tick of one, then a handler the next one
    called) belongs to the phase it overlaps most, not to the first it touches.
    """
    overlaps = [(min(end, b) - max(start, a), name, a) for name, a, b in recorder.phases]
    overlap, name, began = max(overlaps, default=(0.0, "?", start))
    return (name, began) if overlap > 0 else ("?", start)


def phase_summaries(recorder: Recorder, threshold_ms: float) -> list[dict[str, Any]]:
    """Per phase: its length, its longest and 99th-percentile gap, its stalls (each gap
    between ticks counted in the one phase it overlaps most)."""
    times = np.array(recorder.ticks)
    gaps = np.diff(times) * 1000
    owners = np.array([phase_of(recorder, a, b)[0] for a, b in itertools.pairwise(times)])
    summaries = []
    for name, start, end in recorder.phases:
        inside = gaps[owners == name]
        over = inside[inside > threshold_ms]
        summaries.append(
            {
                "phase": name,
                "seconds": end - start,
                "longest_gap_ms": float(inside.max()),
                "p99_gap_ms": float(np.percentile(inside, 99)),
                "stalls": len(over),
                "stalled_s": float(over.sum() / 1000),
            }
        )
    return summaries


def raw_numbers(recorder: Recorder, threshold_ms: float) -> dict[str, Any]:
    """The phases, every stall and every timed call, in seconds from the first tick."""
    origin = recorder.ticks[0]
    return {
        "tick_ms": TICK_MS,
        "phases": phase_summaries(recorder, threshold_ms),
        "stalls": [
            {"start_s": start - origin, "ms": (end - start) * 1000}
            for start, end in recorder.stalls(threshold_ms)
        ],
        "calls": [
            {"call": label, "start_s": start - origin, "ms": (end - start) * 1000}
            for label, start, end in recorder.calls
        ],
    }


def report(recorder: Recorder, args: argparse.Namespace) -> list[str]:
    """The markdown report: stalls per phase, then each stall with what ran in it."""
    lines = [
        f"# Event-loop stalls: annotate → fine-tune → predict on {args.size}²",
        "",
        f"`python benchmarks/bench_gui_stalls.py --size {args.size} --seconds {args.seconds:g} "
        f"--model {args.model}`; shown window, {TICK_MS} ms precise QTimer, stall > "
        f"{args.threshold:g} ms.",
        "",
        *machine_lines(),
        "",
        "| phase | s | longest gap (ms) | 99th pct (ms) | stalls | time stalled (s) |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for phase in phase_summaries(recorder, args.threshold):
        lines.append(
            f"| {phase['phase']} | {phase['seconds']:.1f} | {phase['longest_gap_ms']:.0f} | "
            f"{phase['p99_gap_ms']:.0f} | {phase['stalls']} | {phase['stalled_s']:.2f} |"
        )
    lines += ["", "Stalls, longest first, with the timed calls inside them (ms):", ""]
    stalls = sorted(recorder.stalls(args.threshold), key=lambda s: s[0] - s[1])
    for start, end in stalls[:25]:
        phase, began = phase_of(recorder, start, end)
        into_phase = max(start - began, 0.0)  # a stall may start on the last tick before it
        inside = [
            (label, (b - a) * 1000) for label, a, b in recorder.calls if a < end and b > start
        ]
        inside.sort(key=lambda item: -item[1])
        calls = ", ".join(f"{label} {ms:.0f}" for label, ms in inside[:4]) or "none timed"
        lines.append(
            f"* {(end - start) * 1000:.0f} ms in {phase} (at {into_phase:+.1f} s): {calls}"
        )
    totals: dict[str, list[float]] = {}
    for label, a, b in recorder.calls:
        totals.setdefault(label, []).append((b - a) * 1000)
    lines += [
        "",
        "| timed call | calls | longest (ms) | median (ms) |",
        "| --- | ---: | ---: | ---: |",
    ]
    for label, spent in sorted(totals.items(), key=lambda item: -max(item[1])):
        lines.append(f"| {label} | {len(spent)} | {max(spent):.0f} | {np.median(spent):.1f} |")
    return lines


if __name__ == "__main__":
    main()

"""Benchmark the napari widgets under load: leaks over many runs, and GUI responsiveness.

One napari viewer with the U-Net dock (:class:`napari_unet._widgets.UNetWidget`)
is driven through its own methods, as the tests do, with Qt's event loop
running the whole time (waiting is done with ``QEventLoop``, never with
``time.sleep`` on the GUI thread).

``load``
    A small fresh U-Net (depth 3, 8 base features) on a 256x256 synthetic
    nuclei image with simulated scribbles: ``--cycles`` fine-tune start/stop
    cycles (start, wait for the first progress report or 0.5 s, press Stop,
    wait for ``finished``) and ``--cycles`` predictions. Records
    ``threading.active_count()``, the process's OS thread count
    (``/proc/self/status``) and its RSS at the baseline (viewer and dock
    built, no job run yet), after ``--warmup`` warm-up cycles (torch's
    allocator, the optimizer and the output layers reach their working size),
    after every cycle, at the end once every worker has finished, and once the
    idle threads of Qt's thread pool have expired
    (``QThreadPool.expiryTimeout()``, 30 s by default).
``responsiveness``
    A 20 ms ``QTimer`` records when it fires while (a) a ``--seconds`` fine-tune
    (live preview on) of the small model (many iterations a second, so many
    loss-curve updates), (b) the same with the bundled ``em-membranes`` model
    (depth 4, 16 base features; a fresh model of that shape when it is not
    installed), and (c) a prediction of a ``--predict-size`` square image with
    572 px tiles by that model (post-processing and outputs included) run. The
    gaps between ticks tell how long the event loop could not serve: the
    longest gap (stall) and the 99th percentile, medians over ``--repeats``
    runs, for each torch thread count of ``--threads`` (the worker's
    ``torch.set_num_threads``, through ``napari_unet._widgets._tasks.JOB_THREADS``).
    The longest time spent in one of the widget's own Qt-thread handlers
    (progress updates, showing the outputs) is reported too, to tell the
    GUI's own work from starvation by the worker. An idle run (no job) gives
    the noise floor of the machine.

Usage (from the repository root; re-runs itself under ``xvfb-run -a`` when there is no display)::

    xvfb-run -a python benchmarks/bench_gui_load.py [--cycles 50] [--warmup 3] [--repeats 3]
        [--seconds 10] [--predict-size 2048] [--threads 2 1] [--sections load responsiveness]
        [--show] [--quick] [--json benchmarks/results/gui_load.json]

``--quick`` (a smoke run, under a minute): 5 cycles, 1 repeat, 3 s fine-tunes, a
512x512 prediction. ``--show`` shows the viewer window (rendered by Xvfb's
software OpenGL, which adds its own drawing time to the Qt thread).

Prints a markdown report on stdout (progress on stderr); ``--json PATH`` also writes the
raw numbers (every snapshot, every cycle's threads and RSS, every timed run) as JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import platform
import shutil
import statistics
import sys
import threading
import time
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from raw_results import add_json_option, utc_now, write_json


def ensure_display() -> None:
    """Re-run this script under ``xvfb-run -a`` when there is no X display (napari needs one)."""
    if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
        return
    if shutil.which("xvfb-run") is None:
        sys.exit("No display: run this under xvfb-run -a (or install Xvfb).")
    os.execvp("xvfb-run", ["xvfb-run", "-a", sys.executable, *sys.argv])


def log(message: str) -> None:
    """Progress on stderr."""
    print(f"[bench_gui_load] {message}", file=sys.stderr, flush=True)


# ---- what the process holds ---------------------------------------------------------
def os_threads() -> int:
    """The process's thread count as the kernel sees it (``Threads:`` of /proc/self/status)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Threads:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return -1


def rss_mb() -> float:
    """Resident set size of this process in MB (psutil, else /proc/self/status VmRSS)."""
    try:
        import psutil

        return psutil.Process().memory_info().rss / 1e6
    except ImportError:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024 / 1e6
    return float("nan")


@dataclass
class Snapshot:
    """Threads and memory at one moment."""

    label: str
    python_threads: int
    os_threads: int
    rss_mb: float

    @classmethod
    def take(cls, label: str) -> Snapshot:
        """Collect garbage, then measure."""
        gc.collect()
        return cls(label, threading.active_count(), os_threads(), rss_mb())


# ---- waiting with the event loop running ----------------------------------------------
def wait_for(signal: Any, trigger: Callable[[], Any], timeout: float) -> tuple[bool, Any]:
    """Call ``trigger()`` and run the event loop until ``signal`` fires (or ``timeout`` s).

    Returns whether it fired, and what ``trigger`` returned.
    """
    from qtpy.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    fired: list[bool] = []

    def done(*_: Any) -> None:
        fired.append(True)
        loop.quit()

    signal.connect(done)
    timer = QTimer()
    timer.setSingleShot(True)
    timer.timeout.connect(loop.quit)
    try:
        value = trigger()
        if not fired:
            timer.start(int(timeout * 1000))
            loop.exec()
    finally:
        timer.stop()
        signal.disconnect(done)
    return bool(fired), value


def wait_until(predicate: Callable[[], bool], timeout: float, poll_ms: int = 5) -> bool:
    """Run the event loop until ``predicate()`` is true (checked every ``poll_ms``) or timeout."""
    from qtpy.QtCore import QEventLoop, QTimer

    if predicate():
        return True
    loop = QEventLoop()
    deadline = time.monotonic() + timeout

    def check() -> None:
        if predicate() or time.monotonic() >= deadline:
            loop.quit()

    timer = QTimer()
    timer.timeout.connect(check)
    timer.start(poll_ms)
    try:
        loop.exec()
    finally:
        timer.stop()
    return predicate()


def settle(timeout: float = 30.0) -> bool:
    """Wait until no napari worker is alive and Qt's thread pool runs nothing."""
    from napari.qt.threading import WorkerBase
    from qtpy.QtCore import QThreadPool

    pool = QThreadPool.globalInstance()
    done = wait_until(lambda: not WorkerBase._worker_set and pool.activeThreadCount() == 0, timeout)
    wait_until(lambda: False, 0.2)  # let the last queued signals and deleteLater()s run
    return done


# ---- the event loop's heartbeat --------------------------------------------------------
class TickRecorder:
    """Records when a ``interval_ms`` precise ``QTimer`` fires; the gaps show stalls."""

    def __init__(self, interval_ms: int = 20) -> None:
        from qtpy.QtCore import Qt, QTimer

        self.interval_ms = interval_ms
        self.ticks: list[float] = []
        self.timer = QTimer()
        self.timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(lambda: self.ticks.append(time.perf_counter()))

    def start(self) -> None:
        """Start recording (forgets earlier ticks)."""
        self.ticks = [time.perf_counter()]
        self.timer.start()

    def stop(self) -> Stalls:
        """Stop recording; the gaps between ticks, the start and now."""
        self.timer.stop()
        times = np.array([*self.ticks, time.perf_counter()])
        return Stalls.of(np.diff(times) * 1000)


@dataclass
class Stalls:
    """Gaps between timer ticks, in milliseconds."""

    longest: float
    p99: float
    median: float
    over_100: int
    ticks: int

    @classmethod
    def of(cls, gaps_ms: np.ndarray) -> Stalls:
        """Summarise the gaps."""
        return cls(
            longest=float(gaps_ms.max()),
            p99=float(np.percentile(gaps_ms, 99)),
            median=float(np.median(gaps_ms)),
            over_100=int((gaps_ms > 100).sum()),
            ticks=len(gaps_ms),
        )


@dataclass
class HandlerTimes:
    """How long the widget's handlers ran in the Qt thread: name -> longest call (ms)."""

    longest: dict[str, float] = field(default_factory=dict)

    def instrument(self, widget: Any, names: list[str]) -> None:
        """Replace the bound methods ``names`` of ``widget`` by timed bound methods.

        They stay bound methods, so :func:`~napari_unet._widgets._tasks.start_job`
        still holds the widget weakly.
        """
        for name in names:
            function = getattr(type(widget), name)

            def timed(self: Any, *args: Any, _function=function, _name=name) -> Any:
                started = time.perf_counter()
                try:
                    return _function(self, *args)
                finally:
                    spent = (time.perf_counter() - started) * 1000
                    self_times = self._bench_handler_times.longest
                    self_times[_name] = max(self_times.get(_name, 0.0), spent)

            setattr(widget, name, types.MethodType(timed, widget))
        widget._bench_handler_times = self

    def reset(self) -> None:
        """Forget the times measured so far."""
        self.longest.clear()

    def worst(self) -> tuple[str, float]:
        """The slowest handler and its longest call."""
        if not self.longest:
            return "", 0.0
        name = max(self.longest, key=self.longest.__getitem__)
        return name, self.longest[name]


# ---- the session -----------------------------------------------------------------------
@dataclass
class Session:
    """A viewer with the dock, an annotated image and a small model."""

    viewer: Any
    dock: Any
    small_model: Any
    timings: HandlerTimes


def annotated_nuclei(shape: tuple[int, int], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A synthetic nuclei image and scribbles of background (1) and nuclei (2)."""
    from napari_unet.io.data import simulate_scribbles, synthetic_nuclei

    count = min(400, max(4, shape[0] * shape[1] // 1600))
    image, instances = synthetic_nuclei(shape, n_nuclei=count, rng=seed)
    dense = np.where(instances > 0, 2, 1).astype(np.uint8)
    return image, simulate_scribbles(dense, seed, fraction=0.03, stroke_width=3)


def open_session(show: bool, image_size: int) -> Session:
    """Build the viewer, the dock (a small model, CPU), the image and its annotations."""
    import napari

    from napari_unet._widgets import UNetWidget
    from napari_unet.config import ModelConfig
    from napari_unet.core.checkpoint import new_model

    viewer = napari.Viewer(show=show)
    image, scribbles = annotated_nuclei((image_size, image_size), seed=0)
    viewer.add_image(image, name="nuclei")
    dock = UNetWidget(viewer)
    viewer.window.add_dock_widget(dock, name="U-Net")
    small = new_model(ModelConfig(base_features=8, depth=3), seed=0)
    dock.model.use_model(small, "small")
    layer = dock.annotate.create_annotation_layer()
    layer.data[:] = scribbles
    layer.refresh()
    settings = dock.finetune.settings
    settings.device.value = "cpu"
    dock.predict.device.value = "cpu"
    timings = HandlerTimes()
    timings.instrument(dock.finetune, ["_on_update", "_on_result", "_on_finish"])
    timings.instrument(dock.predict, ["_on_progress", "_on_result", "_on_finish"])
    wait_until(lambda: False, 0.5)
    return Session(viewer, dock, small, timings)


def finetune_cycle(session: Session, timeout: float = 60.0) -> int:
    """Start a fine-tune, wait for a report (or 0.5 s), Stop, wait for the end; iterations run."""
    finetune = session.dock.finetune
    settings = finetune.settings
    settings.iterations.value = 0
    settings.seconds.value = 600
    reported: list[Any] = []
    worker = finetune.start_finetune()
    if worker is None:
        raise RuntimeError("the fine-tune was refused")
    worker.yielded.connect(reported.append)
    started = time.monotonic()
    wait_until(lambda: bool(reported) or time.monotonic() - started >= 0.5, timeout)
    fired, _ = wait_for(finetune.finished, finetune.stop, timeout)
    if not fired:
        raise RuntimeError("the fine-tune did not stop")
    return len(reported)


def predict_once(session: Session, timeout: float = 600.0) -> None:
    """Run one prediction and wait for its end."""
    predict = session.dock.predict
    fired, worker = wait_for(predict.finished, predict.run_prediction, timeout)
    if worker is None or not fired:
        raise RuntimeError("the prediction was refused or did not end")


# ---- (a) many runs in one session -------------------------------------------------------
@dataclass
class LoadResult:
    """Snapshots of the load section and per-cycle thread counts."""

    snapshots: list[Snapshot]
    cycle_threads: list[int]
    cycle_rss: list[float]
    warmup: int
    reported_cycles: int
    cycles: int
    seconds: float
    pool_expiry_s: float
    expired_after_s: float | None


def load_section(session: Session, cycles: int, warmup: int) -> LoadResult:
    """``cycles`` fine-tune start/stop cycles and ``cycles`` predictions, with measurements.

    ``warmup`` cycles run first: torch's allocator, the optimizer's state and the
    output layers reach their working size in the first two or three.
    """
    from qtpy.QtCore import QThreadPool

    dock = session.dock
    dock.predict.image_picker.combo.value = session.viewer.layers["nuclei"]
    dock.predict.tile_size.value = 0  # the whole 256x256 image in one pass
    settle()
    snapshots = [Snapshot.take("baseline (dock built, no job run yet)")]
    for _ in range(warmup):
        finetune_cycle(session)
        predict_once(session)
    settle()
    snapshots.append(Snapshot.take(f"after {warmup} warm-up fine-tune cycles and predictions"))
    cycle_threads, cycle_rss = [], []
    reported = 0
    started = time.perf_counter()
    for cycle in range(cycles):
        reported += finetune_cycle(session) > 0
        predict_once(session)
        cycle_threads.append(os_threads())
        cycle_rss.append(rss_mb())
        if (cycle + 1) % 10 == 0:
            log(f"load: {cycle + 1}/{cycles} cycles, {os_threads()} threads, {rss_mb():.0f} MB")
    seconds = time.perf_counter() - started
    settle()
    snapshots.append(Snapshot.take(f"end: after {cycles} cycles, every worker finished"))
    pool = QThreadPool.globalInstance()
    expiry = pool.expiryTimeout() / 1000
    baseline = snapshots[0].os_threads
    waited = time.monotonic()
    expired = wait_until(lambda: os_threads() <= baseline, expiry + 15, poll_ms=100)
    expired_after = time.monotonic() - waited if expired else None
    snapshots.append(Snapshot.take("end, once the thread pool's idle threads expired"))
    return LoadResult(
        snapshots,
        cycle_threads,
        cycle_rss,
        warmup,
        reported,
        cycles,
        seconds,
        expiry,
        expired_after,
    )


# ---- (b) responsiveness ------------------------------------------------------------------
@dataclass
class RunStalls:
    """One timed run: its stalls, how long it took, the work done, the slowest handler."""

    stalls: Stalls
    seconds: float
    work: float
    handler: tuple[str, float]


def responsive_model() -> tuple[Any, str]:
    """The bundled em-membranes model, else a fresh one of its shape (depth 4, 16 features)."""
    from napari_unet.config import ModelConfig
    from napari_unet.core.checkpoint import bundled_models, load_model, new_model

    if "em-membranes" in bundled_models():
        return load_model("em-membranes"), "em-membranes"
    return new_model(ModelConfig(base_features=16, depth=4), seed=0), "fresh depth 4, 16 features"


def timed_run(session: Session, start: Callable[[], Any], finished: Any) -> tuple[Stalls, float]:
    """Record ticks while ``start()``'s job runs until ``finished`` fires."""
    recorder = TickRecorder(20)
    session.timings.reset()
    recorder.start()
    began = time.perf_counter()
    fired, worker = wait_for(finished, start, 900)
    seconds = time.perf_counter() - began
    stalls = recorder.stop()
    if worker is None or not fired:
        raise RuntimeError("the job was refused or did not end")
    return stalls, seconds


def timed_finetune(session: Session, seconds: float) -> RunStalls:
    """A ``seconds`` fine-tune with live preview, under the tick recorder."""
    finetune = session.dock.finetune
    finetune.settings.iterations.value = 0
    finetune.settings.seconds.value = max(1, round(seconds))
    finetune.settings.live_preview.value = True
    stalls, took = timed_run(session, finetune.start_finetune, finetune.finished)
    iterations = float(finetune.plot.iterations[-1]) if finetune.plot.iterations else 0.0
    return RunStalls(stalls, took, iterations, session.timings.worst())


def timed_prediction(session: Session) -> RunStalls:
    """One prediction of the big image, under the tick recorder."""
    predict = session.dock.predict
    stalls, took = timed_run(session, predict.run_prediction, predict.finished)
    return RunStalls(stalls, took, 0.0, session.timings.worst())


def idle_run(seconds: float) -> Stalls:
    """The tick recorder with no job running: the machine's noise floor."""
    recorder = TickRecorder(20)
    recorder.start()
    wait_until(lambda: False, seconds)
    return recorder.stop()


@dataclass
class Responsiveness:
    """Per case ("fine-tune, 2 threads", ...): the runs."""

    model_name: str
    idle: list[Stalls] = field(default_factory=list)
    runs: dict[str, list[RunStalls]] = field(default_factory=dict)
    first: dict[str, RunStalls] = field(default_factory=dict)


def responsiveness_section(
    session: Session, threads: list[int], repeats: int, seconds: float, predict_size: int
) -> Responsiveness:
    """Time fine-tunes (both models) and predictions with each torch thread count, interleaved.

    The small model makes many iterations a second (many loss-curve updates);
    the big one few, but each longer, with a heavier live preview.
    """
    from napari_unet._widgets import _tasks

    dock, viewer = session.dock, session.viewer
    model, name = responsive_model()
    big, _ = annotated_nuclei((predict_size, predict_size), seed=1)
    viewer.add_image(big, name="big")
    dock.finetune.image_picker.combo.value = viewer.layers["nuclei"]
    dock.predict.image_picker.combo.value = viewer.layers["big"]
    models = {"small model": session.small_model, name: model}

    def use(label: str) -> None:
        dock.model.use_model(models[label], label)
        dock.predict.tile_size.value = 572 if label == name else 0

    def finetune(label: str, budget: float) -> RunStalls:
        use(label)
        return timed_finetune(session, budget)

    def prediction() -> RunStalls:
        use(name)
        return timed_prediction(session)

    cases: list[tuple[str, Callable[[], RunStalls]]] = [
        ("fine-tune, small model", lambda: finetune("small model", seconds)),
        (f"fine-tune, {name}", lambda: finetune(name, seconds)),
        (f"prediction, {name}", prediction),
    ]
    result = Responsiveness(name)
    log(f"responsiveness: warm-up with {name}")
    original = _tasks.JOB_THREADS
    _tasks.JOB_THREADS = threads[0]
    first = f"{threads[0]} torch thread(s)"
    result.first[f"warm-up fine-tune (2 s), {name}, {first}"] = finetune(name, 2)
    result.first[f"warm-up prediction (creates the output layers), {first}"] = prediction()
    try:
        for repeat in range(repeats):
            result.idle.append(idle_run(min(5.0, seconds)))
            for count in threads:
                _tasks.JOB_THREADS = count
                for case, run in cases:
                    settle()
                    outcome = run()
                    result.runs.setdefault(f"{case}, {count} torch thread(s)", []).append(outcome)
                    log(
                        f"repeat {repeat + 1}/{repeats} {case} threads={count}: "
                        f"{outcome.seconds:.1f} s, longest stall {outcome.stalls.longest:.0f} ms, "
                        f"p99 {outcome.stalls.p99:.0f} ms, slowest handler "
                        f"{outcome.handler[0]} {outcome.handler[1]:.0f} ms"
                    )
    finally:
        _tasks.JOB_THREADS = original
    return result


# ---- report -------------------------------------------------------------------------------
def machine_lines() -> list[str]:
    """CPU, cores, versions and load."""
    import napari
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next(line.split(":", 1)[1].strip() for line in info if "model name" in line)
    except (OSError, StopIteration):
        pass
    one, five, fifteen = os.getloadavg()
    return [
        f"- machine: {cpu}, {os.cpu_count()} logical cores; Python {platform.python_version()}, "
        f"napari {napari.__version__}, torch {torch.__version__} "
        f"(default {torch.get_num_threads()} threads)",
        f"- load average at the end (1/5/15 min): {one:.2f} / {five:.2f} / {fifteen:.2f}",
    ]


def load_report(result: LoadResult) -> list[str]:
    """Markdown of the load section."""
    base, warm = result.snapshots[0], result.snapshots[1]
    end = result.snapshots[2]
    lines = [
        f"### {result.cycles} fine-tune start/stop cycles + {result.cycles} predictions",
        "",
        f"{result.seconds:.0f} s; {result.reported_cycles} of {result.cycles} fine-tunes "
        "reported an iteration before Stop (the others stopped while preparing).",
        "",
        "| moment | threading.active_count() | OS threads | RSS (MB) |",
        "| --- | ---: | ---: | ---: |",
    ]
    for snap in result.snapshots:
        lines.append(
            f"| {snap.label} | {snap.python_threads} | {snap.os_threads} | {snap.rss_mb:.1f} |"
        )
    cycle, rss = result.cycle_threads, result.cycle_rss
    slope = float(np.polyfit(np.arange(len(rss)), rss, 1)[0]) if len(rss) > 1 else 0.0
    expired = (
        f"{result.expired_after_s:.1f} s"
        if result.expired_after_s is not None
        else "not within the wait"
    )
    lines += [
        "",
        f"- OS threads after each cycle: min {min(cycle)}, max {max(cycle)} "
        f"(first {cycle[0]}, last {cycle[-1]})",
        f"- RSS growth from the warm-up to the end: **{end.rss_mb - warm.rss_mb:+.1f} MB**; "
        f"from the baseline (before any job): {end.rss_mb - base.rss_mb:+.1f} MB",
        f"- RSS after each cycle: min {min(rss):.0f}, max {max(rss):.0f} MB; trend "
        f"{slope:+.3f} MB per cycle (least squares)",
        f"- back to the baseline's OS thread count after {expired} "
        f"(Qt thread pool expiry {result.pool_expiry_s:.0f} s)",
        "",
    ]
    return lines


def responsiveness_report(result: Responsiveness, seconds: float, predict_size: int) -> list[str]:
    """Markdown of the responsiveness section (medians over the repeats)."""
    lines = [
        "### Event-loop stalls (20 ms QTimer)",
        "",
        f"Fine-tune: {seconds:.0f} s budget with live preview on a 256x256 image, with the small "
        f"model and with {result.model_name}; prediction with {result.model_name}: "
        f"{predict_size}x{predict_size} image, 572 px tiles, with post-processing and the "
        f"four output layers. Medians over {len(result.idle)} run(s); [min-max] in brackets.",
        "",
        "| case | longest stall (ms) | p99 gap (ms) | gaps > 100 ms | run (s) "
        "| iterations | slowest handler (ms) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]

    def cell(values: list[float]) -> str:
        middle = statistics.median(values)
        if len(values) == 1:
            return f"{middle:.0f}"
        return f"{middle:.0f} [{min(values):.0f}-{max(values):.0f}]"

    for case, run in result.first.items():
        lines.append(
            f"| {case} | {run.stalls.longest:.0f} | {run.stalls.p99:.0f} | {run.stalls.over_100} "
            f"| {run.seconds:.0f} | | {run.handler[1]:.0f} ({run.handler[0]}) |"
        )
    idle = result.idle
    lines.append(
        f"| idle (no job) | {cell([s.longest for s in idle])} | {cell([s.p99 for s in idle])} "
        f"| {cell([s.over_100 for s in idle])} | | | |"
    )
    for case, runs in result.runs.items():
        name, _ = max((run.handler for run in runs), key=lambda item: item[1])
        handler = f"{cell([run.handler[1] for run in runs])} ({name})"
        work = cell([run.work for run in runs]) if case.startswith("fine-tune") else ""
        lines.append(
            f"| {case} | {cell([run.stalls.longest for run in runs])} "
            f"| {cell([run.stalls.p99 for run in runs])} "
            f"| {cell([run.stalls.over_100 for run in runs])} "
            f"| {cell([run.seconds for run in runs])} | {work} | {handler} |"
        )
    lines.append("")
    return lines


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cycles", type=int, default=50, help="fine-tune cycles and predictions")
    parser.add_argument("--warmup", type=int, default=3, help="warm-up cycles before measuring")
    parser.add_argument("--repeats", type=int, default=3, help="responsiveness runs per case")
    parser.add_argument("--seconds", type=float, default=10.0, help="fine-tune budget (s)")
    parser.add_argument("--predict-size", type=int, default=2048, help="big image edge (px)")
    parser.add_argument(
        "--threads",
        type=int,
        nargs="+",
        default=None,
        help="torch thread counts to compare (default: all cores, and all cores but one)",
    )
    parser.add_argument(
        "--sections", nargs="+", default=["load", "responsiveness"], help="what to run"
    )
    parser.add_argument("--show", action="store_true", help="show the viewer window (Xvfb)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: few cycles, short runs")
    add_json_option(parser, "gui_load")
    args = parser.parse_args(argv)
    if args.threads is None:
        cores = os.cpu_count() or 1
        args.threads = sorted({cores, max(1, cores - 1)}, reverse=True)
    if args.quick:
        args.cycles, args.repeats = min(args.cycles, 5), 1
        args.seconds, args.predict_size = min(args.seconds, 3.0), min(args.predict_size, 512)
    return args


def main(argv: list[str] | None = None) -> None:
    """Run the chosen sections and print the report."""
    args = parse_args(argv)
    ensure_display()
    from qtpy.QtWidgets import QApplication

    report = [
        "## GUI under load (`benchmarks/bench_gui_load.py`)",
        "",
        f"Command: `xvfb-run -a python benchmarks/bench_gui_load.py {' '.join(sys.argv[1:])}`"
        f" (viewer {'shown' if args.show else 'hidden'})",
        "",
    ]
    started, began = time.perf_counter(), utc_now()
    numbers: dict[str, Any] = {"arguments": vars(args)}
    with contextlib.redirect_stdout(sys.stderr):  # napari prints its notifications
        log("building the viewer")
        session = open_session(args.show, 256)
        if "load" in args.sections:
            log(f"load: {args.cycles} cycles")
            numbers["load"] = load_section(session, args.cycles, args.warmup)
            report += load_report(numbers["load"])
        if "responsiveness" in args.sections:
            result = responsiveness_section(
                session, args.threads, args.repeats, args.seconds, args.predict_size
            )
            numbers["responsiveness"] = result
            report += responsiveness_report(result, args.seconds, args.predict_size)
        report += [*machine_lines(), f"- total time {time.perf_counter() - started:.0f} s", ""]
        session.viewer.close()
        QApplication.processEvents()
    print("\n".join(report), flush=True)
    write_json(args.json, numbers, started=began)


if __name__ == "__main__":
    main()

"""The GUI-load benchmark's session and measuring tools (``bench_gui_load.py`` runs the sections).

* The display (:func:`ensure_display`) and progress (:func:`log`).
* What the process holds: :func:`os_threads`, :func:`rss_mb`, :class:`Snapshot`.
* Waiting with Qt's event loop running: :func:`wait_for`, :func:`wait_until`, :func:`settle`.
* The event loop's heartbeat (:class:`TickRecorder`, :class:`Stalls`) and the timing of the
  widget's own Qt-thread handlers (:class:`HandlerTimes`).
* The viewer with the dock (:class:`Session`, :func:`open_session`), one fine-tune cycle, one
  prediction, and the timed runs of the responsiveness section (:class:`RunStalls`).

``bench_gui_load.py`` re-exports :func:`ensure_display`, :func:`wait_for` and
:func:`wait_until`, which ``bench_gui_stalls.py`` and ``bench_activity_dock.py`` import from it.
"""

from __future__ import annotations

import gc
import os
import shutil
import sys
import threading
import time
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np


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


# ---- timed runs (the responsiveness section) ---------------------------------------------
@dataclass
class RunStalls:
    """One timed run: its stalls, how long it took, the work done, the slowest handler."""

    stalls: Stalls
    seconds: float
    work: float
    handler: tuple[str, float]


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

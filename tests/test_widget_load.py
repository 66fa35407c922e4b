"""The widgets under load: no threads or memory left behind, and runs that stop when asked.

A quick version of the ``load`` section of ``benchmarks/bench_gui_load.py``; how long
the Qt event loop stalls during a run is measured there (``responsiveness``), not here
(see ``benchmarks/results_gui_load.md`` for the figures).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import sys
import threading

import psutil
import pytest
import torch
from napari.qt.threading import WorkerBase
from qtpy.QtCore import QThreadPool
from qtpy.QtWidgets import QWidget

from helpers import CENTRES, discs_image, tiny_model
from napari_unet._widgets import UNetWidget, _tasks, model_state

pytestmark = pytest.mark.gui

CYCLES = 10
RSS_GROWTH_LIMIT_MB = 50


def os_threads() -> int:
    """The process's thread count as the kernel sees it."""
    return psutil.Process().num_threads()


def release_free_heap() -> None:
    """Give glibc's freed but retained heap back to the system (Linux only).

    Memory that was freed and kept in malloc's arenas for reuse is not a leak, but it
    counts in the RSS; how much of it is kept depends on which threads ran where, so a
    busy machine moved the figure by more than the limit below.
    """
    if sys.platform.startswith("linux"):
        libc_name = ctypes.util.find_library("c")
        if libc_name:
            ctypes.CDLL(libc_name).malloc_trim(0)


def rss_mb() -> float:
    """Resident set size in MB, after a garbage collection and the heap's trim."""
    gc.collect()
    release_free_heap()
    return psutil.Process().memory_info().rss / 1e6


@pytest.fixture
def short_pool_expiry():
    """Idle threads of Qt's global pool exit after 0.3 s instead of 30 s (restored after)."""
    pool = QThreadPool.globalInstance()
    expiry = pool.expiryTimeout()
    pool.setExpiryTimeout(300)
    yield pool
    pool.setExpiryTimeout(expiry)


@pytest.fixture
def loaded_dock(make_napari_viewer):
    """A viewer with the discs image, painted strokes and the U-Net dock holding a tiny model."""
    viewer = make_napari_viewer()
    viewer.add_image(discs_image(centres=CENTRES[:5]), name="discs")
    widget = UNetWidget(viewer)
    viewer.window.add_dock_widget(widget, name="U-Net")
    widget.model.use_model(tiny_model(), "tiny")
    layer = widget.annotate.create_annotation_layer()
    layer.data[28:33, 20:40] = 2
    layer.data[68:72, 50:70] = 2
    layer.data[5:9, 5:120] = 1
    layer.data[118:122, 40:90] = 1
    layer.refresh()
    settings = widget.finetune.settings
    settings.iterations.value = 0
    settings.seconds.value = 600
    settings.elastic.value = False
    settings.device.value = "cpu"
    widget.predict.device.value = "cpu"
    return viewer, widget


def finetune_cycle(qtbot, widget) -> None:
    """Start a fine-tune, wait for its first iteration, Stop, wait for the end."""
    finetune = widget.finetune
    assert finetune.start_finetune() is not None
    qtbot.waitUntil(lambda: bool(finetune.plot.iterations), timeout=30_000)
    with qtbot.waitSignal(finetune.finished, timeout=30_000):
        finetune.stop()


def predict_once(qtbot, widget) -> None:
    with qtbot.waitSignal(widget.predict.finished, timeout=30_000):
        assert widget.predict.run_prediction() is not None


def settled(pool: QThreadPool) -> bool:
    """No napari worker alive and nothing running in Qt's thread pool."""
    return not WorkerBase._worker_set and pool.activeThreadCount() == 0


def test_many_runs_leave_no_threads_and_little_memory(qtbot, loaded_dock, short_pool_expiry):
    viewer, widget = loaded_dock
    pool = short_pool_expiry
    for _ in range(2):  # warm-up: torch's allocator, the optimizer, the output layers
        finetune_cycle(qtbot, widget)
        predict_once(qtbot, widget)
    qtbot.waitUntil(lambda: settled(pool), timeout=10_000)
    assert pool.waitForDone(10_000)  # the pool's idle threads exit (joined): a clean baseline
    threads, python_threads, rss = os_threads(), threading.active_count(), rss_mb()

    for _ in range(CYCLES):
        finetune_cycle(qtbot, widget)
        predict_once(qtbot, widget)

    qtbot.waitUntil(lambda: settled(pool), timeout=10_000)

    def back_to_baseline() -> None:
        assert os_threads() <= threads, f"{os_threads()} OS threads, {threads} before the cycles"

    qtbot.waitUntil(back_to_baseline, timeout=10_000)
    assert threading.active_count() == python_threads
    growth = rss_mb() - rss
    assert growth < RSS_GROWTH_LIMIT_MB, f"RSS grew by {growth:.1f} MB over {CYCLES} cycles"
    state = model_state(viewer)
    assert state.busy == "" and widget.finetune.worker is None and widget.predict.worker is None
    assert "discs mask" in viewer.layers


def test_job_threads_are_set_in_the_worker_and_restored(qtbot, monkeypatch):
    def job():
        yield torch.get_num_threads()
        return "done"

    def run_job() -> tuple[list[int], list[_tasks.JobResult]]:
        seen: list[int] = []
        results: list[_tasks.JobResult] = []
        finished: list[bool] = []
        _tasks.start_job(
            owner,
            job(),
            "Test",
            threading.Event(),
            on_yield=seen.append,
            on_result=results.append,
            on_finish=lambda: finished.append(True),
            release=lambda: None,
        )
        qtbot.waitUntil(lambda: bool(finished), timeout=10_000)
        return seen, results

    owner = QWidget()
    before = torch.get_num_threads()
    other = 2 if before == 1 else 1  # a count the worker would not have by itself
    monkeypatch.setattr(_tasks, "JOB_THREADS", other)
    seen, results = run_job()
    assert seen == [other] and results[0].value == "done"
    assert torch.get_num_threads() == before  # the Qt thread's count is left alone
    monkeypatch.setattr(_tasks, "JOB_THREADS", None)
    seen, _ = run_job()  # most likely in the same pool thread: its count was restored
    assert seen == [before]


def test_closing_the_viewer_stops_a_running_prediction(qtbot, loaded_dock):
    viewer, widget = loaded_dock
    predict = widget.predict
    viewer.add_image(discs_image((512, 512), seed=2, centres=CENTRES[:5]), name="large")
    predict.image_picker.combo.value = viewer.layers["large"]
    predict.tile_size.value = predict.tile_size.choices[1]  # the smallest: over 1000 tiles
    worker = predict.run_prediction()
    assert worker is not None
    fractions: list[float] = []
    ends: list[str] = []
    worker.yielded.connect(lambda update: fractions.append(update.fraction))
    worker.returned.connect(lambda result: ends.append(result.cancelled and "cancelled"))
    worker.aborted.connect(lambda: ends.append("aborted"))
    qtbot.waitUntil(lambda: predict.progress.value() > 0, timeout=30_000)
    with qtbot.waitSignal(worker.finished, timeout=10_000):
        viewer.close()
    qtbot.waitUntil(lambda: not WorkerBase._worker_set, timeout=5_000)
    # stopped, never ran to its result: quit by the closing dock (aborted, or no signal when
    # the quit came as the job ended), or cancelled first by the removal of its image (the
    # viewer's layers go first), whichever the worker saw first
    assert set(ends) <= {"aborted", "cancelled"}
    assert fractions and max(fractions) < 1.0  # part of the tiles only
    assert model_state(viewer).busy == "" and "large mask" not in viewer.layers

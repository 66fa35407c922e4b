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

The viewer, the dock and the measuring tools (threads, RSS, event-loop ticks, the handlers'
times) live in ``gui_load_session.py``; the sections' results and their markdown in
``gui_load_report.py``. ``ensure_display``, ``machine_lines``, ``wait_for`` and ``wait_until``
are re-exported here: ``bench_gui_stalls.py`` and ``bench_activity_dock.py`` import them from
this module.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections.abc import Callable
from typing import Any

# bench_gui_stalls and bench_activity_dock import ensure_display, machine_lines, wait_for and
# wait_until from this module; those not used here are re-exported ("x as x")
from gui_load_report import (
    LoadResult,
    Responsiveness,
    load_report,
    machine_lines,
    responsiveness_report,
)
from gui_load_session import (
    RunStalls,
    Session,
    Snapshot,
    annotated_nuclei,
    ensure_display,
    finetune_cycle,
    idle_run,
    log,
    open_session,
    os_threads,
    predict_once,
    rss_mb,
    settle,
    timed_finetune,
    timed_prediction,
    wait_until,
)
from gui_load_session import wait_for as wait_for
from raw_results import add_json_option, utc_now, write_json


# ---- (a) many runs in one session -------------------------------------------------------
def load_section(session: Session, cycles: int, warmup: int) -> LoadResult:
    """``cycles`` fine-tune start/stop cycles and ``cycles`` predictions, with measurements.

    ``warmup`` cycles run first: torch's allocator, the optimizer's state and the
    output layers reach their working size in the first two or three.
    """
    from qtpy.QtCore import QThreadPool

    dock = session.dock
    dock.predict.image_picker.combo.value = session.viewer.layers["nuclei"]
    dock.predict.choose_tile_size(None)  # the whole 256x256 image in one pass
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
def responsive_model() -> tuple[Any, str]:
    """The bundled em-membranes model, else a fresh one of its shape (depth 4, 16 features)."""
    from napari_unet.config import ModelConfig
    from napari_unet.core.checkpoint import bundled_models, load_model, new_model

    if "em-membranes" in bundled_models():
        return load_model("em-membranes"), "em-membranes"
    return new_model(ModelConfig(base_features=16, depth=4), seed=0), "fresh depth 4, 16 features"


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
        # the offered size that tiles the image as 572 does (only distinct tilings are listed)
        dock.predict.choose_tile_size(572 if label == name else None)

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
        run_repeats(result, cases, threads, repeats, seconds)
    finally:
        _tasks.JOB_THREADS = original
    return result


def run_repeats(
    result: Responsiveness,
    cases: list[tuple[str, Callable[[], RunStalls]]],
    threads: list[int],
    repeats: int,
    seconds: float,
) -> None:
    """``repeats`` times: an idle run, then each case with each torch thread count, into ``result``.

    Sets ``_tasks.JOB_THREADS``; the caller restores it.
    """
    from napari_unet._widgets import _tasks

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

"""The GUI-load benchmark's results and their markdown (``bench_gui_load.py`` runs the sections).

:class:`LoadResult` and :class:`Responsiveness` hold what the two sections measured (written as
they are with ``--json``); :func:`load_report` and :func:`responsiveness_report` turn them into
the report's tables, and :func:`machine_lines` describes the machine (``bench_gui_load.py``
re-exports it for ``bench_gui_stalls.py`` and ``bench_activity_dock.py``).
"""

from __future__ import annotations

import os
import platform
import statistics
from dataclasses import dataclass, field

import numpy as np
from gui_load_session import RunStalls, Snapshot, Stalls


# ---- what the sections measured ----------------------------------------------------------
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


@dataclass
class Responsiveness:
    """Per case ("fine-tune, 2 threads", ...): the runs."""

    model_name: str
    idle: list[Stalls] = field(default_factory=list)
    runs: dict[str, list[RunStalls]] = field(default_factory=dict)
    first: dict[str, RunStalls] = field(default_factory=dict)


# ---- markdown -----------------------------------------------------------------------------
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

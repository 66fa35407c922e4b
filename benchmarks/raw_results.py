"""Raw results of a benchmark as JSON beside its markdown report (issue 16).

Every benchmark prints a markdown report; with ``--json PATH`` it also writes its raw
numbers there (by convention ``benchmarks/results/<name>.json``) with the command, the
arguments, the machine and the load averages, so that a figure quoted in a
``benchmarks/results_*.md`` file can be traced to the run it came from::

    parser = argparse.ArgumentParser(...)
    add_json_option(parser, "batch")
    args = parser.parse_args()
    started = utc_now()
    ...
    write_json(args.json, {"runs": runs}, started=started)

Scripts that append one JSON line per run (``--log`` / ``--out``: the ISBI scribbles,
scratch-vs-forest and annotation-loop benchmarks) keep doing so.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np


def add_json_option(parser: argparse.ArgumentParser, name: str) -> None:
    """Add ``--json PATH``: write the raw results there too."""
    parser.add_argument(
        "--json",
        type=Path,
        default=None,
        metavar="PATH",
        help=f"also write the raw results as JSON here (e.g. benchmarks/results/{name}.json)",
    )


def utc_now() -> str:
    """The time now, e.g. ``2026-12-02 10:58:03 UTC``."""
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())


def load_averages() -> list[float]:
    """The 1-, 5- and 15-minute load averages (NaN where the system has none)."""
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except OSError:
        return [float("nan")] * 3


def vm_hwm_mb() -> float:
    """This process's peak resident memory in MB (Linux ``VmHWM``; NaN elsewhere).

    Unlike ``ru_maxrss``, it starts afresh at ``exec``: a child started from a large
    parent does not inherit the parent's peak.
    """
    try:
        status = Path("/proc/self/status").read_text(encoding="utf-8")
        line = next(line for line in status.splitlines() if line.startswith("VmHWM"))
        return int(line.split()[1]) / 1024
    except (OSError, StopIteration, ValueError):
        return float("nan")


def cpu_name() -> str:
    """The CPU's model name (``lscpu``), else what :mod:`platform` says."""
    fallback = platform.processor() or platform.machine() or "unknown CPU"
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return fallback
    names = (line.split(":", 1)[1].strip() for line in lscpu.splitlines() if "Model name" in line)
    return next(names, fallback)


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def machine() -> dict[str, Any]:
    """CPU, cores, memory, Python and the versions of the libraries that set the speed."""
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    names = ("numpy", "scipy", "torch", "napari", "dask", "zarr", "dask-image")
    versions = {name: _version(name) for name in names}
    if "torch" in sys.modules:  # the threads this run used
        versions["torch_threads"] = sys.modules["torch"].get_num_threads()
    return {
        "cpu": cpu_name(),
        "logical_cores": os.cpu_count(),
        "memory_gib": round(memory, 1),
        "python": platform.python_version(),
        **{key: value for key, value in versions.items() if value is not None},
    }


def _plain(value: Any) -> Any:
    """JSON's ``default``: dataclasses, paths, numpy scalars and arrays as plain values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def write_json(path: Path | None, results: dict[str, Any], *, started: str = "") -> None:
    """Write ``results`` with the command, machine and load to ``path`` (nothing if None)."""
    if path is None:
        return
    record = {
        "command": " ".join(["python", *sys.argv]),
        "started": started or None,
        "ended": utc_now(),
        "load_averages_at_end": load_averages(),
        "machine": machine(),
        **results,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2, default=_plain, allow_nan=True) + "\n")
    print(f"raw results written to {path}", file=sys.stderr)

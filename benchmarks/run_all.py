"""Run every benchmark in ``benchmarks/`` and collect their markdown into one file.

Each benchmark runs in its own subprocess, one after the other (never in
parallel: they time the CPU), with its own arguments. Their standard output
(markdown tables, or JSON lines for the accuracy benchmarks, which are put in a
code block) is gathered with the command, exit status, wall time and load
average into ``--output`` (default ``benchmarks/results_all.md``) and echoed to
the terminal. A benchmark that is missing is listed as skipped; one that fails
is reported with the end of its standard error, and the others still run. A
``bench_*.py`` file not listed in :data:`BENCHMARKS` is run too, with no
arguments (add it to the list to give it its own).

Usage (from the repository root)::

    python benchmarks/run_all.py            # everything, full sizes (about an hour on 2 cores)
    python benchmarks/run_all.py --quick    # smoke run of everything (a few minutes)
    python benchmarks/run_all.py --only inference training --output /tmp/perf.md

The timings are only meaningful on an otherwise idle machine: the 1-minute load
average is recorded before every benchmark, and a warning is printed when it
is above the number of cores minus a half.
"""

from __future__ import annotations

import argparse
import collections
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from raw_results import cpu_name

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Benchmark:
    """One benchmark script and its arguments for a full and for a quick run."""

    name: str
    script: str
    full: tuple[str, ...]
    quick: tuple[str, ...]
    markdown: bool = True


#: The ISBI scribble benchmark's current recipe (results_isbi_scribbles.md, "Current recipe").
ISBI_RECIPE = (
    "--padding", "same", "--features", "8", "--batch-norm", "--patch-size", "256",
    "--batch-size", "2", "--learning-rate", "1e-2", "--no-class-balance",
)  # fmt: skip

BENCHMARKS = (
    Benchmark("inference", "bench_inference.py", (), ("--quick",)),
    Benchmark("training", "bench_training.py", (), ("--quick",)),
    Benchmark(
        "weights_augment",
        "bench_weights_augment.py",
        ("--repeats", "5"),
        ("--quick", "--repeats", "1"),
    ),
    Benchmark(
        "batch",
        "bench_batch.py",
        (),
        ("--images", "2", "--size", "128", "--repeats", "1"),
    ),
    Benchmark(
        "isbi_scribbles",
        "bench_isbi_scribbles.py",
        ("--budgets", "60", "300", *ISBI_RECIPE),
        ("--budgets", "5", *ISBI_RECIPE),
        markdown=False,
    ),
    Benchmark("bundled_models", "bench_bundled_models.py", (), (), markdown=False),
    Benchmark("import", "bench_import.py", (), ("--repeats", "1")),
    Benchmark("gui_load", "bench_gui_load.py", (), ("--quick",)),
    Benchmark(
        "activity_dock",
        "bench_activity_dock.py",
        (),
        ("--rounds", "1", "--predict-size", "512", "--seconds", "5"),
    ),
    Benchmark(
        "chunked_labels",
        "bench_chunked_labels.py",
        (),
        ("--sizes", "1024", "--block", "256", "--repeats", "1"),
    ),
)


def discovered() -> list[Benchmark]:
    """``bench_*.py`` files not listed in :data:`BENCHMARKS`: run with no arguments."""
    known = {benchmark.script for benchmark in BENCHMARKS}
    return [
        Benchmark(path.stem.removeprefix("bench_"), path.name, (), (), markdown=False)
        for path in sorted(HERE.glob("bench_*.py"))
        if path.name not in known
    ]


def machine_summary() -> list[str]:
    """CPU, memory, Python and git commit of this run."""
    cpu = cpu_name()
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=HERE
        ).stdout.strip()
    except OSError:
        commit = ""
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return [
        f"- machine: {cpu}, {os.cpu_count()} logical cores, {memory:.0f} GiB RAM",
        f"- Python {platform.python_version()} ({sys.executable}); git commit {commit or 'n/a'} "
        "(plus uncommitted changes, if any)",
    ]


def load_line() -> str:
    """The load averages, with a warning when the machine looks busy."""
    one, five, fifteen = os.getloadavg()
    text = f"load average (1/5/15 min): {one:.2f} / {five:.2f} / {fifteen:.2f}"
    if one > (os.cpu_count() or 1) - 0.5:
        text += " (**busy machine: timings are pessimistic**)"
    return text


def run_one(benchmark: Benchmark, quick: bool) -> list[str]:
    """Run one benchmark; its section of the report."""
    script = HERE / benchmark.script
    title = f"## `{benchmark.script}`"
    if not script.exists():
        return [title, "", "Not found: skipped.", ""]
    arguments = benchmark.quick if quick else benchmark.full
    command = [sys.executable, str(script), *arguments]
    shown = " ".join(["python", f"benchmarks/{benchmark.script}", *arguments])
    print(f"[run_all] {shown}  ({load_line()})", file=sys.stderr, flush=True)
    load_before = load_line()
    start = time.perf_counter()
    tail: collections.deque[str] = collections.deque(maxlen=15)
    with tempfile.TemporaryFile("w+") as stdout:
        process = subprocess.Popen(
            command, cwd=HERE.parent, stdout=stdout, stderr=subprocess.PIPE, text=True
        )
        assert process.stderr is not None
        for line in process.stderr:  # progress messages: shown live, end kept for failures
            sys.stderr.write(line)
            tail.append(line.rstrip())
        returncode = process.wait()
        stdout.seek(0)
        output = stdout.read().strip()
    seconds = time.perf_counter() - start
    lines = [
        title,
        "",
        f"Command: `{shown}`; exit status {returncode}; {seconds:.0f} s; before: {load_before}.",
        "",
    ]
    if output:
        lines += [output, ""] if benchmark.markdown else ["```", output, "```", ""]
    if returncode != 0:
        lines += ["**Failed.** End of its standard error:", "", "```", *tail, "```", ""]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="each benchmark's smoke-test mode")
    benchmarks = [*BENCHMARKS, *discovered()]
    names = [benchmark.name for benchmark in benchmarks]
    parser.add_argument("--only", nargs="+", choices=names, help="run only these")
    parser.add_argument("--skip", nargs="+", choices=names, default=[], help="do not run these")
    parser.add_argument(
        "--output", type=Path, default=HERE / "results_all.md", help="markdown file to write"
    )
    args = parser.parse_args()
    selected = [
        benchmark
        for benchmark in benchmarks
        if (args.only is None or benchmark.name in args.only) and benchmark.name not in args.skip
    ]
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    report = [
        "# napari-unet benchmarks",
        "",
        f"Started {started}: `python benchmarks/run_all.py {' '.join(sys.argv[1:])}`".rstrip(),
        "",
        *machine_summary(),
        f"- {load_line()}",
        "",
    ]
    for benchmark in selected:
        report += run_one(benchmark, args.quick)
        args.output.write_text("\n".join(report) + "\n", encoding="utf-8")  # keep partial results
    report.append(f"Finished {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}.")
    args.output.write_text("\n".join(report) + "\n", encoding="utf-8")
    print("\n".join(report))


if __name__ == "__main__":
    main()

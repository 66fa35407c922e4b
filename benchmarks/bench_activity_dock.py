"""What napari's activity dock costs the plugin's jobs: work done with and without it.

While a ``napari.utils.progress`` bar is open, napari animates a loading GIF in its
status bar; each frame repaints the main window in the Qt thread. This script runs
the same jobs in one shown viewer with the jobs' bars in the activity dock
(``napari_unet._widgets._tasks.ACTIVITY_DOCK = True``) and without them (the
default), alternating the two in every round so that load hits both alike:

- *Predict* of a ``--predict-size`` square synthetic nuclei image (seconds, from
  the button to the end: worker, post-processing and layers);
- *Fine-tune* of the bundled model on a ``--finetune-size`` image with 10 strokes
  for a ``--seconds`` time budget (iterations done), with the widget's defaults
  otherwise (live preview on).

Usage::

    python benchmarks/bench_activity_dock.py [--rounds 3] [--json PATH]

Needs a display: without one it re-runs itself under ``xvfb-run -a``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from typing import TYPE_CHECKING

from bench_gui_load import ensure_display, machine_lines, wait_for, wait_until
from bench_gui_stalls import annotate_phase, open_dock
from raw_results import add_json_option, utc_now, write_json

if TYPE_CHECKING:
    from napari_unet._widgets import UNetWidget

MODES = {"activity dock": True, "own bars only (default)": False}


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (``argv``, else ``sys.argv``) as parsed arguments."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--predict-size", type=int, default=2048)
    parser.add_argument("--finetune-size", type=int, default=512)
    parser.add_argument("--seconds", type=int, default=20, help="fine-tuning time budget")
    parser.add_argument("--model", default="nuclei")
    add_json_option(parser, "activity_dock")
    return parser.parse_args(argv)


def predict_seconds(dock: UNetWidget) -> float:
    """Seconds of one Predict, from the button to its end."""
    dock.show_section(dock.predict)
    started = time.perf_counter()
    fired, _ = wait_for(dock.predict.finished, dock.predict.run_prediction, 600)
    seconds = time.perf_counter() - started
    if not fired:
        sys.exit("Predict did not finish within 600 s")
    wait_until(lambda: False, 0.5)
    return seconds


def finetune_iterations(dock: UNetWidget, budget: int) -> int:
    """Iterations one fine-tune of ``budget`` seconds did (each run starts from the loaded
    model: the widget's default)."""
    dock.show_section(dock.finetune)
    dock.finetune.settings.seconds.value = budget
    dock.finetune.settings.iterations.value = 100_000  # the time budget decides
    fired, _ = wait_for(dock.finetune.finished, dock.finetune.start_finetune, budget + 300)
    if not fired:
        sys.exit("Fine-tune did not finish in time")
    wait_until(lambda: False, 0.5)
    return int(dock.model.state.model.metadata["training_history"][-1]["iterations"])


def run_rounds(args: argparse.Namespace) -> dict[str, dict[str, list[float]]]:
    """Every round runs Predict, then Fine-tune, in each mode; returns the measurements."""
    from napari_unet._widgets import _tasks

    results: dict[str, dict[str, list[float]]] = {
        mode: {"predict_s": [], "finetune_iterations": []} for mode in MODES
    }
    viewer, dock, _ = open_dock(args.predict_size, args.model, "bench_activity_dock")
    for round_number in range(args.rounds):
        for mode, on in MODES.items():
            _tasks.ACTIVITY_DOCK = on
            results[mode]["predict_s"].append(predict_seconds(dock))
            print(f"round {round_number + 1}, {mode}: predict", file=sys.stderr, flush=True)
    viewer.close()
    viewer, dock, truth = open_dock(args.finetune_size, args.model, "bench_activity_dock")
    annotate_phase(dock, truth, 10)
    for round_number in range(args.rounds):
        for mode, on in MODES.items():
            _tasks.ACTIVITY_DOCK = on
            results[mode]["finetune_iterations"].append(finetune_iterations(dock, args.seconds))
            print(f"round {round_number + 1}, {mode}: fine-tune", file=sys.stderr, flush=True)
    viewer.close()
    return results


def report(results: dict[str, dict[str, list[float]]], args: argparse.Namespace) -> list[str]:
    """The markdown table: medians and every run, and the ratio to the default."""
    default = results["own bars only (default)"]
    lines = [
        f"`python benchmarks/bench_activity_dock.py --rounds {args.rounds}`: Predict of a "
        f"{args.predict_size}² image, fine-tune of `{args.model}` on a {args.finetune_size}² "
        f"image for {args.seconds} s; modes alternate in every round.",
        "",
        *machine_lines(),
        "",
        "| mode | Predict, median s (runs) | fine-tune, median iterations (runs) |",
        "| --- | ---: | ---: |",
    ]
    for mode, numbers in results.items():
        seconds, iterations = numbers["predict_s"], numbers["finetune_iterations"]
        lines.append(
            f"| {mode} | {statistics.median(seconds):.1f} "
            f"({', '.join(f'{value:.1f}' for value in seconds)}) | "
            f"{statistics.median(iterations):g} ({', '.join(f'{v:g}' for v in iterations)}) |"
        )
    dock = results["activity dock"]
    lines += [
        "",
        "Activity dock against the default (medians): Predict "
        f"{statistics.median(dock['predict_s']) / statistics.median(default['predict_s']):.2f}x "
        "the time, fine-tune "
        f"{statistics.median(dock['finetune_iterations']) / statistics.median(default['finetune_iterations']):.2f}x "  # noqa: E501
        "the iterations.",
    ]
    return lines


def main(argv: list[str] | None = None) -> None:
    """Measure both modes; print the table, write the JSON."""
    args = parse_arguments(argv)
    started = utc_now()
    ensure_display()
    results = run_rounds(args)
    print("\n".join(report(results, args)))
    write_json(args.json, {"arguments": vars(args) | {"json": None}, "results": results},
               started=started)  # fmt: skip


if __name__ == "__main__":
    main()

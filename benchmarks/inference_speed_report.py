"""Results of ``bench_inference_speed.py``: what its rounds measured, summary and report.

The dataclasses the rounds fill (:class:`ComparedTiles`, :class:`Rounds`), their
:func:`summarise` (medians, differences from the untiled pass, the ratios), the markdown
tables (:func:`report_lines`) and the JSON record (:func:`write_record`).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# isort: off
import napari_unet  # noqa: F401  (first: asks PyTorch for huge pages before torch is imported)
import numpy as np
import torch

# isort: on
from inference_common import machine_lines

#: The default tile before issue 17 (the "before" methods).
OLD_TILE = 572


@dataclass
class ComparedTiles:
    """The tiles compared on the benchmark image."""

    new: int  # default_tile_size(model): the automatic tile
    new_shrunk: int  # the automatic tile shrunk to the image (after engine)
    old_shrunk: int  # OLD_TILE shrunk to the image (after engine)
    old_count: int  # tiles of OLD_TILE on the image (before engine)
    new_count: int  # tiles of the automatic tile on the image (before engine)


@dataclass
class Rounds:
    """What the interleaved rounds measured."""

    method_names: list[str]  # the predict-like methods, in the order they ran
    forward_names: list[str]  # the forward-pass-alone rows, in the order they ran
    times: dict[str, list[float]]  # seconds of each run, by method and forward row
    outputs: dict[str, np.ndarray]  # each method's probabilities from the first round
    loads: list[str]  # load averages at the start, after each round (and after the profiles)
    started: str  # clock time (UTC) before the first round
    ended: str  # clock time (UTC) after the last round


@dataclass
class Summary:
    """Medians, differences from the untiled pass and ratios of the rounds."""

    medians: dict[str, float]  # median seconds by method and forward row
    differences: dict[str, float]  # max |difference| of probabilities from the untiled pass
    ratios: dict[str, float]  # the speed-ups reported in the ratio table


def compute_ratios(
    medians: dict[str, float], rounds: Rounds, size: int, forward_tile: int, with_monai: bool
) -> dict[str, float]:
    """After vs before, useful output vs the forward pass, huge pages alone, after vs MONAI."""
    names = rounds.method_names
    before, after = names[0], names[1]
    forward_mps = forward_tile**2 / 1e6 / medians[rounds.forward_names[0]]
    after_mps = size**2 / 1e6 / medians[after]
    ratios = {
        "after_vs_before": medians[before] / medians[after],
        "useful_output_vs_forward_pass": after_mps / forward_mps,
        "huge_pages_alone_before_engine": medians[before] / medians[names[5]],
    }
    if with_monai:
        monai_names = [name for name in names if name.startswith("MONAI")]
        ratios["after_vs_monai_572"] = medians[monai_names[0]] / medians[after]
        if len(monai_names) > 1:  # the automatic tile differs from 572
            ratios["after_vs_monai_new_tile"] = medians[monai_names[1]] / medians[after]
        ratios["after_vs_best_monai"] = min(medians[n] for n in monai_names) / medians[after]
    return ratios


def summarise(rounds: Rounds, size: int, forward_tile: int, with_monai: bool) -> Summary:
    """Medians, the max differences from the untiled pass (the fifth method) and the ratios."""
    medians = {name: statistics.median(values) for name, values in rounds.times.items()}
    untiled = rounds.outputs[rounds.method_names[4]]
    differences = {
        name: float(np.abs(output - untiled).max()) for name, output in rounds.outputs.items()
    }
    ratios = compute_ratios(medians, rounds, size, forward_tile, with_monai)
    return Summary(medians, differences, ratios)


def timing_row(name: str, runs: list[float], median: float, *cells: str) -> str:
    """A table row: the name, the median, every run's seconds, then ``cells``."""
    runs_text = ", ".join(f"{value:.2f}" for value in runs)
    return f"| {name} | {median:.2f} | {runs_text} | " + " | ".join(cells) + " |"


def header_lines(
    args: argparse.Namespace, model_name: str, tiles: ComparedTiles, rounds: Rounds
) -> list[str]:
    """The report's title, the run's conditions and the machine."""
    return [
        f"### {args.size} x {args.size} uint8 image, {args.threads} torch threads, "
        f"{rounds.started} - {rounds.ended}",
        "",
        f"Model: {model_name}. Load average (1/5/15 min) at the start and after each round: "
        + "; ".join(rounds.loads)
        + ". Medians of "
        + f"{args.repeats} runs, all methods interleaved in each round. Tiles on this image: "
        f"before {tiles.old_count} of {OLD_TILE}, after {tiles.new_count} of {tiles.new_shrunk}.",
        "",
        *machine_lines(args.threads),
        "",
    ]


def method_table_lines(rounds: Rounds, summary: Summary, size: int) -> list[str]:
    """The table of the predict-like methods: speed, speed-up and difference from untiled."""
    medians = summary.medians
    before_median = medians[rounds.method_names[0]]
    lines = [
        "| method | median s | runs (s) | image Mpx/s | vs before | max abs diff vs untiled |",
        "|---|---:|---|---:|---:|---:|",
    ]
    for name in rounds.method_names:
        cells = (
            f"{size**2 / 1e6 / medians[name]:.3f}",
            f"{before_median / medians[name]:.2f}x",
            f"{summary.differences[name]:.1e}",
        )
        lines.append(timing_row(name, rounds.times[name], medians[name], *cells))
    return lines


def forward_table_lines(rounds: Rounds, summary: Summary, forward_tile: int) -> list[str]:
    """The table of the forward pass alone, in input megapixels/s."""
    lines = [
        "",
        "| forward pass alone | median s | runs (s) | input Mpx/s |",
        "|---|---:|---|---:|",
    ]
    for name in rounds.forward_names:
        median = summary.medians[name]
        megapixels_per_s = f"{forward_tile**2 / 1e6 / median:.3f}"
        lines.append(timing_row(name, rounds.times[name], median, megapixels_per_s))
    return lines


def profile_table_lines(profiles: dict[str, dict]) -> list[str]:
    """The table of where one ``predict`` call's time goes, before and after."""
    lines = [
        "",
        "Where the time of one `predict` goes (cProfile, one call each, after the rounds):",
        "",
        "| part | before (s) | share | after (s) | share |",
        "|---|---:|---:|---:|---:|",
    ]
    for part in profiles["before"]["parts_s"]:
        cells = []
        for key in ("before", "after"):
            seconds = profiles[key]["parts_s"][part]
            cells.append(f"{seconds:.2f} | {100 * seconds / profiles[key]['total_s']:.1f} %")
        lines.append(f"| {part} | {' | '.join(cells)} |")
    lines.append(
        f"| total | {profiles['before']['total_s']:.2f} | 100 % | "
        f"{profiles['after']['total_s']:.2f} | 100 % |"
    )
    return lines


@dataclass
class Measured:
    """Everything one run measured, for the report and the JSON record."""

    args: argparse.Namespace
    model_name: str
    tiles: ComparedTiles
    rounds: Rounds
    summary: Summary
    profiles: dict[str, dict]  # "before"/"after" cProfile summaries; empty with --no-profile


def report_lines(run: Measured) -> list[str]:
    """The markdown report: header, methods, forward pass, ratios and (if run) profiles."""
    args, rounds, summary, profiles = run.args, run.rounds, run.summary, run.profiles
    lines = header_lines(args, run.model_name, run.tiles, rounds)
    lines += method_table_lines(rounds, summary, args.size)
    lines += forward_table_lines(rounds, summary, args.forward_tile)
    lines += ["", "| ratio | value |", "|---|---:|"]
    lines += [f"| {key} | {value:.2f} |" for key, value in summary.ratios.items()]
    if profiles:
        lines += profile_table_lines(profiles)
    return lines


def write_record(path: Path, run: Measured) -> None:
    """Write the run's numbers to ``path`` as JSON."""
    args, tiles, rounds, summary = run.args, run.tiles, run.rounds, run.summary
    path.parent.mkdir(parents=True, exist_ok=True)
    record: dict[str, Any] = {
        "size": args.size,
        "threads": args.threads,
        "repeats": args.repeats,
        "model": run.model_name,
        "started": rounds.started,
        "ended": rounds.ended,
        "load_averages": rounds.loads,
        "old_tile": OLD_TILE,
        "new_tile": tiles.new,
        "new_tile_shrunk": tiles.new_shrunk,
        "tiles": {"before": tiles.old_count, "after": tiles.new_count},
        "forward_tile": args.forward_tile,
        "times_s": rounds.times,
        "medians_s": summary.medians,
        "max_abs_diff_vs_untiled": summary.differences,
        "ratios": summary.ratios,
        "profiles": run.profiles,
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
    }
    path.write_text(json.dumps(record, indent=2) + "\n")

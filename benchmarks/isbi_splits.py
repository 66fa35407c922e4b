"""The ISBI loop over every way to split slices 15-19: paint two, score the other three.

Reads the JSON lines of ``bench_annotation_loop.py`` (tasks ``isbi``, ``isbi-swapped`` and
``isbi-paint-AA-BB``, one label each) and prints, per split, the Rand error of the scored
slices at the start and after each round (medians over the seeds), then the paired relative
change of every session pooled over the splits. The issue's target is a median relative
change of -20 % or better.

    python benchmarks/isbi_splits.py benchmarks/results/annotation_loop.jsonl \\
        --labels s19-amd s22-split --seeds 0 1 2 3
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def painted_slices(task: str) -> str:
    """The painted slices of an ISBI task name, e.g. ``"15, 16"``."""
    if task == "isbi":
        return "15, 16"
    if task == "isbi-swapped":
        return "18, 19"
    return ", ".join(task.removeprefix("isbi-paint-").split("-"))


def load_sessions(paths: list[str], labels: list[str], seeds: list[int]) -> dict[str, list]:
    """Sessions per painted split; a split measured under two labels keeps the first label's."""
    sessions: dict[str, dict[str, list]] = {}
    for path in paths:
        for line in Path(path).read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            if not record["task"].startswith("isbi") or record["label"] not in labels:
                continue
            if record["seed"] not in seeds or record.get("reference_round", 0) != 0:
                continue
            split = painted_slices(record["task"])
            sessions.setdefault(split, {}).setdefault(record["label"], []).append(record)
    return {
        split: by_label[next(label for label in labels if label in by_label)]
        for split, by_label in sorted(sessions.items())
    }


def relative_changes(session: dict, metric: str = "rand_error") -> list[float]:
    """Change of each later round against round 0, relative to round 0 (negative = better)."""
    start = session["rounds"][0][metric]
    return [row[metric] / start - 1 for row in session["rounds"][1:]]


def report(splits: dict[str, list]) -> None:
    rounds = len(next(iter(splits.values()))[0]["rounds"]) - 1
    later = " | ".join(f"round {r}" for r in range(1, rounds + 1))
    print(f"| painted | scored | sessions | start | {later} |")
    print("|---|---|---|---|" + "---|" * rounds)
    pooled: list[list[float]] = [[] for _ in range(rounds)]
    for split, sessions in splits.items():
        start = np.median([s["rounds"][0]["rand_error"] for s in sessions])
        changes = np.array([relative_changes(s) for s in sessions])
        for r in range(rounds):
            pooled[r].extend(changes[:, r])
        cells = []
        for r in range(rounds):
            value = np.median([s["rounds"][r + 1]["rand_error"] for s in sessions])
            cells.append(f"{value:.4f} ({np.median(changes[:, r]):+.0%})")
        painted = {int(s) for s in split.split(", ")}
        scored = ", ".join(str(s) for s in range(15, 20) if s not in painted)
        row = f"| {split} | {scored} | {len(sessions)} | {start:.4f} | "
        print(row + " | ".join(cells) + " |")
    print()
    for r, changes in enumerate(pooled, start=1):
        reached = sum(c <= -0.2 for c in changes)
        worse = sum(c > 0 for c in changes)
        print(
            f"round {r}: median relative change {np.median(changes):+.1%} over {len(changes)} "
            f"sessions; -20 % or better in {reached}, worse in {worse}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="+")
    parser.add_argument("--labels", nargs="+", required=True, help="first label wins per split")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    args = parser.parse_args()
    report(load_sessions(args.paths, args.labels, args.seeds))


if __name__ == "__main__":
    main()

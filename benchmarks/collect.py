"""Assemble BENCHMARKS.md from the summary and the per-benchmark current-results files.

    python benchmarks/collect.py          # rewrite BENCHMARKS.md
    python benchmarks/collect.py --check  # exit 1 if BENCHMARKS.md is not what this would write

``benchmarks/summary.md`` holds the page's introduction and the "Targets at a glance" table.
Each ``benchmarks/results_*.md`` holds one benchmark's current figures, as one level-2 section:
target (with its issue), current figure, met or not, command, machine and load, and links (from
the repository root, since they are read in BENCHMARKS.md) to its raw results and to its
experiment log in ``docs/experiments/``. The logs themselves (session-by-session runs,
exploration tables, findings) are not part of the page. This script only concatenates the
files, in a fixed order.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
TARGET = HERE.parent / "BENCHMARKS.md"
ORDER = [
    "results_annotation_loop.md",
    "results_scratch_vs_forest.md",
    "results_weights_augment.md",
    "results_isbi_scribbles.md",
    "results_bundled_models.md",
    "results_hot_pixels.md",
    "results_performance.md",
    "results_gpu.md",
    "results_inference_speed.md",
    "results_gui_load.md",
    "results_gui_stalls.md",
    "results_activity_dock.md",
    "results_batch.md",
    "results_chunked_labels.md",
]


def assemble() -> str:
    """The text of BENCHMARKS.md: the summary, then each results file in :data:`ORDER`."""
    parts = [(HERE / "summary.md").read_text(encoding="utf-8").rstrip() + "\n"]
    for name in ORDER:
        text = (HERE / name).read_text(encoding="utf-8").rstrip()
        parts.append(f"\n<!-- from benchmarks/{name} -->\n{text}\n")
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args(argv)
    text = assemble()
    if args.check:
        if TARGET.read_text(encoding="utf-8") != text:
            print("BENCHMARKS.md is out of date: run python benchmarks/collect.py", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Assemble BENCHMARKS.md from the results files the benchmark scripts write.

    python benchmarks/collect.py

Each ``benchmarks/results_*.md`` holds one benchmark's tables, with its command, machine and
load; this script only concatenates them, in a fixed order, under a summary of the targets.
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent
ORDER = [
    "results_annotation_loop.md",
    "results_scratch_vs_forest.md",
    "results_bundled_models.md",
    "results_isbi_scribbles.md",
    "results_performance.md",
    "results_inference_speed.md",
    "results_weights_augment.md",
    "results_gui_load.md",
    "results_gui_stalls.md",
    "results_batch.md",
]


def main() -> None:
    summary = (HERE / "summary.md").read_text()
    parts = [summary.rstrip() + "\n"]
    for name in ORDER:
        path = HERE / name
        if path.exists():
            parts.append(f"\n<!-- from benchmarks/{name} -->\n" + _demote(path.read_text()))
    (HERE.parent / "BENCHMARKS.md").write_text("\n".join(parts))


def _demote(text: str) -> str:
    """Headings one level deeper when the file starts with a level-1 title (code blocks kept)."""
    lines, in_code = [], False
    demote = text.lstrip().startswith("# ")
    for line in text.splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif demote and not in_code and line.startswith("#"):
            line = "#" + line
        lines.append(line)
    return "\n".join(lines).rstrip() + "\n"


if __name__ == "__main__":
    main()

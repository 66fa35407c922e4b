"""The annotation-loop benchmark's tables count "no worse" rounds as issue 14 defines them."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
bench = pytest.importorskip("bench_annotation_loop")


def _session(seed: int, f1: list[float], rand: list[float]) -> dict:
    rounds = [
        {"round": r, "f1": f, "rand_error": e, "iterations": 100 * (r > 0), "seconds": 1.0}
        for r, (f, e) in enumerate(zip(f1, rand))
    ]
    return {"task": "toy", "label": "check", "seed": seed, "rounds": rounds}


def test_summary_counts_rounds_within_the_tolerance(tmp_path, capsys):
    sessions = [
        # F1 0.015 below the start: worse (tolerance 0.01); Rand 0.019 above: no worse (0.02)
        _session(0, [0.90, 0.885, 0.95], [0.030, 0.049, 0.020]),
        # F1 0.005 below: no worse; Rand 0.025 above: worse
        _session(1, [0.90, 0.895, 0.90], [0.030, 0.055, 0.030]),
    ]
    results = tmp_path / "loops.jsonl"
    results.write_text("".join(json.dumps(s) + "\n" for s in sessions))

    bench.summarize([str(results)])
    printed = capsys.readouterr().out

    assert "No worse than the start in 6 of 8 round-metrics." in printed
    f1_row = next(line for line in printed.splitlines() if line.startswith("| f1 |"))
    # round 1: median 0.890, median paired change -0.010, one session of two no worse
    assert "0.890 (-0.010; 1/2 no worse)" in f1_row
    rand_row = next(line for line in printed.splitlines() if line.startswith("| rand_error |"))
    # lower is better: round 2 median 0.025, median change +0.005 (better), both no worse
    assert "0.025 (+0.005; 2/2 no worse)" in rand_row

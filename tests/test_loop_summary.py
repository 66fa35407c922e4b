"""The annotation-loop benchmark's tables count "no worse" rounds as issue 14 defines them."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import bench_annotation_loop as bench  # from the benchmarks folder
import isbi_splits as splits
import loop_tasks as tasks


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


def test_isbi_splits_pool_relative_changes_over_splits(tmp_path, capsys):
    sessions = [
        {**_session(0, [0, 0, 0], [0.040, 0.030, 0.020]), "task": "isbi", "label": "a"},
        {**_session(0, [0, 0, 0], [0.010, 0.015, 0.012]), "task": "isbi-paint-15-18", "label": "b"},
        # the same split under a later label: the first label given wins
        {**_session(0, [0, 0, 0], [0.010, 0.001, 0.001]), "task": "isbi-paint-15-18", "label": "c"},
    ]
    results = tmp_path / "loops.jsonl"
    results.write_text("".join(json.dumps(s) + "\n" for s in sessions))

    splits.report(splits.load_sessions([str(results)], ["a", "b", "c"], [0]))
    printed = capsys.readouterr().out

    assert "| 15, 16 | 17, 18, 19 | 1 | 0.0400 | 0.0300 (-25%) | 0.0200 (-50%) |" in printed
    assert "| 15, 18 | 16, 17, 19 | 1 | 0.0100 | 0.0150 (+50%) | 0.0120 (+20%) |" in printed
    # round 2 pooled: -50 % and +20 %, median -15 %; one session reaches -20 %, one is worse
    assert (
        "round 2: median relative change -15.0% over 2 sessions; -20 % or better in 1, worse in 1"
        in printed
    )


def test_isbi_task_paints_the_slices_asked_and_scores_the_others(shared_data):
    task = tasks.isbi_task(painted_slices=(15, 18))
    assert task.name == "isbi-paint-15-18"
    assert [bool(paint.all()) for paint in task.paint] == [True, False, False, True, False]
    assert [bool(paint.any()) for paint in task.paint] == [True, False, False, True, False]
    # only the three scored slices count: wrong masks on the painted ones change nothing
    masks = [
        truth if not paint.any() else 3 - truth for truth, paint in zip(task.truth, task.paint)
    ]
    zero = {"pixel_error": 0.0, "rand_error": 0.0}
    assert task.score(masks) == {**zero, "rand_error_16": 0, "rand_error_17": 0, "rand_error_19": 0}
    masks[1] = 3 - masks[1]  # slice 16 all wrong
    assert task.score(masks)["pixel_error"] == pytest.approx(1 / 3)
    assert task.score(masks)["rand_error_16"] > 0.5
    assert task.score(masks)["rand_error_17"] == 0
    assert tasks.isbi_task(painted_slices=(19, 18)).name == "isbi-swapped"
    assert tasks.isbi_task().name == "isbi"

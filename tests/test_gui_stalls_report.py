"""Which phase ``benchmarks/bench_gui_stalls.py`` charges a stall to."""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import bench_gui_stalls as stalls  # from the benchmarks folder


def _recorder():
    """Ticks every 10 ms over two phases, and one 300 ms gap that starts 5 ms before the
    first phase ends (its last tick) and ends inside the second (a handler it called)."""
    first = list(np.arange(0.0, 1.0, 0.01))  # 0.00 ... 0.99
    second = list(np.arange(1.29, 2.0, 0.01))
    recorder = stalls.Recorder(ticks=first + second)
    recorder.phases = [("annotate", 0.0, 0.995), ("fine-tune", 0.995, 2.0)]
    recorder.calls = [("FinetuneWidget.start_finetune", 0.996, 1.285)]
    return recorder


def test_a_stall_across_two_phases_is_charged_to_the_one_it_overlaps_most():
    recorder = _recorder()
    assert stalls.phase_of(recorder, 0.99, 1.29) == ("fine-tune", 0.995)
    assert stalls.phase_of(recorder, 5.0, 6.0) == ("?", 5.0)  # after every phase
    summaries = {row["phase"]: row for row in stalls.phase_summaries(recorder, 100.0)}
    assert summaries["annotate"]["stalls"] == 0
    assert summaries["annotate"]["longest_gap_ms"] == pytest.approx(10.0)
    assert summaries["fine-tune"]["stalls"] == 1
    assert summaries["fine-tune"]["stalled_s"] == pytest.approx(0.3)


def test_the_report_names_the_phase_and_the_call_inside_the_stall():
    from argparse import Namespace

    arguments = Namespace(size=64, seconds=1.0, model="nuclei", threshold=100.0)
    lines = stalls.report(_recorder(), arguments)
    stall_lines = [line for line in lines if line.startswith("* ")]
    assert stall_lines == ["* 300 ms in fine-tune (at +0.0 s): FinetuneWidget.start_finetune 289"]

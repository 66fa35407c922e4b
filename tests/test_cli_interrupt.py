"""Ctrl-C in ``napari-unet train``: the dock's Stop, its second Stop, then Python's own.

The presses are sent by the test itself (``signal.raise_signal``) at well-defined points:
at a progress report (iteration k), when the end of the run first asks whether to
cancel (the threshold's calibration), or in the middle of writing the checkpoint.
"""

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from helpers import as_trained, square_train_args, tiny_model
from napari_unet import load_model, save_model
from napari_unet.cli import build_parser, main
from napari_unet.cli import train as train_command
from napari_unet.cli._interrupts import (
    INTERRUPTED,
    WRITING_NOTICE,
    CtrlC,
    ctrl_c_notices,
    ctrl_c_stops,
)

FIRST, SECOND = ctrl_c_notices(calibrates=True)
STARTING_THRESHOLD = 0.7


@pytest.fixture(autouse=True)
def ctrl_c_from_a_terminal():
    """SIGINT handled as in a terminal (Python's handler) even when the tests run as a
    background job, which ignores it (then ``train`` leaves Ctrl-C alone, by design)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def _terminal_sigint() -> None:
    """In a child process before it starts: SIGINT back to its default, as in a terminal."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _press(times: int = 1) -> None:
    for _ in range(times):
        signal.raise_signal(signal.SIGINT)


@pytest.fixture
def trained_args(tmp_path):
    """``train`` of a trained model with a background threshold of its own (0.7, carried
    over at the end of a run) on a 64 x 64 square, for 30 iterations."""
    start = as_trained(tiny_model(padding="same"))
    start.metadata["background_threshold"] = STARTING_THRESHOLD
    save_model(start, tmp_path / "start.safetensors")
    data = square_train_args(tmp_path)[:5]  # train --images IMAGE --labels LABELS
    model = ["--model", str(tmp_path / "start.safetensors")]
    return [*data, *model, "--output", str(tmp_path / "out.safetensors"), "--iterations", "30"]


def _press_at_iteration(monkeypatch, iteration: int, times: int = 1) -> list[str]:
    """Press Ctrl-C ``times`` at the progress report of ``iteration``; the reports seen."""
    reports: list[str] = []
    update = train_command.ProgressBar.update

    def pressing(self, fraction, detail=""):
        reports.append(detail)
        if detail.startswith(f"it {iteration} "):
            _press(times)
        update(self, fraction, detail)

    monkeypatch.setattr(train_command.ProgressBar, "update", pressing)
    return reports


def _press_at_first_cancel_poll(monkeypatch, times: int) -> list[int]:
    """Press Ctrl-C ``times`` when the end of the run first asks whether to cancel (the
    threshold's calibration); the presses counted before each poll."""
    polls: list[int] = []
    cancel_requested = CtrlC.cancel_requested

    def pressing(self):
        polls.append(self.presses)
        if len(polls) == 1:
            _press(times)
        return cancel_requested(self)

    monkeypatch.setattr(CtrlC, "cancel_requested", pressing)
    return polls


def test_first_ctrl_c_stops_after_the_iteration_and_ends_the_run_as_usual(
    tmp_path, trained_args, capsys, monkeypatch
):
    reports = _press_at_iteration(monkeypatch, 3)
    previous = signal.getsignal(signal.SIGINT)
    assert main(trained_args) == INTERRUPTED == 130
    output = capsys.readouterr()
    assert [report.split()[1] for report in reports] == ["1", "2", "3"]  # no more
    assert output.err.count(FIRST) == 1 and SECOND not in output.err
    lines = output.out.splitlines()
    out = tmp_path / "out.safetensors"
    assert f"wrote {out} (interrupted: the best weights so far)" in lines
    model = load_model(out)  # a complete checkpoint
    assert model.metadata["training_history"][-1]["iterations"] == 3
    # the end of the run went on: the threshold was carried over, the image compared
    threshold = model.info.background_threshold
    assert threshold != STARTING_THRESHOLD and 0.5 <= threshold < 1
    assert (
        f"background threshold {threshold:.2f} (matched to the decisions of the model "
        "before at 0.70)" in output.out
    )
    assert any(line.startswith(f"on {tmp_path / 'im.tif'}: ") for line in lines)
    assert signal.getsignal(signal.SIGINT) is previous


def test_second_ctrl_c_skips_the_calibration_and_comparison_and_still_saves(
    tmp_path, trained_args, capsys, monkeypatch
):
    _press_at_iteration(monkeypatch, 3)
    polls = _press_at_first_cancel_poll(monkeypatch, times=1)
    assert main(trained_args) == 130
    assert polls[0] == 1  # pressed while the run's end was under way
    output = capsys.readouterr()
    assert output.err.count(FIRST) == 1 and output.err.count(SECOND) == 1
    model = load_model(tmp_path / "out.safetensors")
    assert model.metadata["training_history"][-1]["iterations"] == 3
    assert model.info.background_threshold == STARTING_THRESHOLD  # not calibrated
    assert "background threshold not set (Ctrl-C): it stays 0.70" in output.out
    assert f"comparison of {tmp_path / 'im.tif'} with the model before skipped" in output.out
    assert not any(line.startswith("on ") for line in output.out.splitlines())


def test_a_second_ctrl_c_during_the_comparisons_last_tile_still_skips_it(
    tmp_path, trained_args, capsys, monkeypatch
):
    _press_at_iteration(monkeypatch, 3)
    probabilities = train_command._probabilities
    calls = []

    def pressed_at_its_end(*args, **kwargs):  # the tile is done when the press arrives
        calls.append(kwargs.get("stop"))
        predicted = probabilities(*args, **kwargs)
        if len(calls) == 2:
            _press()
        return predicted

    monkeypatch.setattr(train_command, "_probabilities", pressed_at_its_end)
    assert main(trained_args) == 130
    output = capsys.readouterr()
    assert len(calls) == 2 and output.err.count(SECOND) == 1  # "skipping the comparison"
    assert f"comparison of {tmp_path / 'im.tif'} with the model before skipped" in output.out
    assert not any(line.startswith("on ") for line in output.out.splitlines())
    assert (tmp_path / "out.safetensors").is_file()


def test_third_ctrl_c_raises_keyboard_interrupt_and_writes_nothing(
    tmp_path, trained_args, capsys, monkeypatch
):
    _press_at_iteration(monkeypatch, 2)
    _press_at_first_cancel_poll(monkeypatch, times=2)
    previous = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        train_command.run_train(build_parser().parse_args(trained_args))
    assert not (tmp_path / "out.safetensors").exists()
    assert signal.getsignal(signal.SIGINT) is previous
    assert FIRST in capsys.readouterr().err


def test_three_quick_presses_quit_through_main_in_one_line(
    tmp_path, trained_args, capsys, monkeypatch
):
    _press_at_iteration(monkeypatch, 2, times=3)
    assert main(trained_args) == 130
    assert capsys.readouterr().err.strip().endswith("napari-unet: interrupted")
    assert list(tmp_path.glob("*out.safetensors*")) == []


def test_ctrl_c_while_the_checkpoint_is_written_finishes_it(tmp_path, capsys, monkeypatch):
    from napari_unet.core import _checkpoint_write
    from napari_unet.core._atomic import atomic_open

    def pressed_midway(path, payload):
        with atomic_open(path) as stream:
            stream.write(payload[: len(payload) // 2])
            _press(3)  # even a third press waits for the file
            stream.write(payload[len(payload) // 2 :])

    monkeypatch.setattr(_checkpoint_write, "atomic_write_bytes", pressed_midway)
    out = tmp_path / "m.safetensors"
    assert main([*square_train_args(tmp_path), "--output", str(out), "--iterations", "4"]) == 130
    assert load_model(out).metadata["training_history"][-1]["iterations"] == 4
    assert [path.name for path in tmp_path.iterdir() if ".tmp" in path.name] == []
    err = capsys.readouterr().err
    assert WRITING_NOTICE in err


def test_ctrl_c_before_the_first_iteration_writes_nothing(tmp_path, capsys, monkeypatch):
    stop_requested = CtrlC.stop_requested

    def pressed_at_once(self):
        if not self.presses:
            _press()
        return stop_requested(self)

    monkeypatch.setattr(CtrlC, "stop_requested", pressed_at_once)
    out = tmp_path / "m.safetensors"
    assert main([*square_train_args(tmp_path), "--output", str(out), "--iterations", "4"]) == 130
    assert not out.exists()
    assert "interrupted before the first iteration: nothing written" in capsys.readouterr().err


def test_the_notices_name_what_a_second_press_skips():
    first, second = ctrl_c_notices(calibrates=False)
    assert "stopping after this iteration" in first and "threshold" not in first + second
    assert "Ctrl-C again to skip the comparison" in first
    assert "skipping the comparison" in second and "still saved" in second
    assert "Ctrl-C again to skip setting the background threshold and the comparison" in FIRST
    assert "keeps its threshold from before" in SECOND


def test_ctrl_c_counts_and_says_each_notice_once():
    said: list[str] = []
    ctrl_c = CtrlC(("first", "second"), "writing", say=said.append)
    assert not ctrl_c.stop_requested() and not ctrl_c.cancel_requested()
    ctrl_c.handler(signal.SIGINT, None)
    assert ctrl_c.stop_requested() and not ctrl_c.cancel_requested() and ctrl_c.status == 130
    ctrl_c.handler(signal.SIGINT, None)
    assert ctrl_c.cancel_requested() and ctrl_c.cancelled
    with ctrl_c.writing_file():
        ctrl_c.handler(signal.SIGINT, None)  # the third press waits for the file
    with pytest.raises(KeyboardInterrupt):
        ctrl_c.handler(signal.SIGINT, None)
    assert said == ["first", "second", "writing"] and ctrl_c.presses == 4


def test_a_notice_the_handler_cannot_print_is_printed_at_the_next_poll():
    said: list[str] = []

    def busy_then_free(text: str) -> None:
        if not said:
            said.append("busy")
            raise RuntimeError("reentrant call inside <_io.BufferedWriter name='<stderr>'>")
        said.append(text)

    ctrl_c = CtrlC(("first", "second"), say=busy_then_free)
    ctrl_c.handler(signal.SIGINT, None)
    assert said == ["busy"]
    assert ctrl_c.stop_requested()
    assert said == ["busy", "first"]


def test_ctrl_c_stops_restores_the_previous_handler_and_leaves_other_threads_alone():
    def previous(signum, frame):
        pass

    before = signal.signal(signal.SIGINT, previous)
    try:
        ctrl_c = CtrlC()
        with ctrl_c_stops(ctrl_c):
            assert signal.getsignal(signal.SIGINT) == ctrl_c.handler
            _press()
        assert signal.getsignal(signal.SIGINT) is previous and ctrl_c.presses == 1
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a shell's background job
        with ctrl_c_stops(CtrlC()):
            assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
        signal.signal(signal.SIGINT, previous)
        seen = []
        thread = threading.Thread(target=lambda: seen.append(_install_elsewhere()))
        thread.start()
        thread.join()
        assert seen == [previous]
    finally:
        signal.signal(signal.SIGINT, before)


def _install_elsewhere():
    with ctrl_c_stops(CtrlC()):
        return signal.getsignal(signal.SIGINT)


SCRIPT = """
import os, signal, sys
sys.path.insert(0, {tests!r})
from helpers import square_train_args
from pathlib import Path
from napari_unet.cli import main, train

update = train.ProgressBar.update

def pressing(self, fraction, detail=""):
    if detail.startswith("it 3 "):
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C, delivered as the terminal does
    update(self, fraction, detail)

train.ProgressBar.update = pressing
tmp = Path({tmp!r})
sys.exit(main([*square_train_args(tmp), "--output", str(tmp / "m.safetensors"),
               "--iterations", "50"]))
"""


def test_ctrl_c_in_a_real_process_exits_130_with_the_checkpoint(tmp_path):
    script = SCRIPT.format(tests=str(Path(__file__).parent), tmp=str(tmp_path))
    environment = {**os.environ, "PYTHONUNBUFFERED": "1"}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
        env=environment, preexec_fn=_terminal_sigint,
    )  # fmt: skip
    assert done.returncode == 130, done.stderr
    assert "Ctrl-C: stopping after this iteration" in done.stderr
    model = load_model(tmp_path / "m.safetensors")
    assert model.metadata["training_history"][-1]["iterations"] == 3
    assert np.isfinite(model.metadata["training_history"][-1]["final_smoothed_loss"])


def test_a_notice_goes_above_the_bar_on_a_terminal_and_on_a_line_of_its_own_in_a_log():
    import io

    from napari_unet.cli._progress import ProgressBar

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    for stream in (Terminal(), io.StringIO()):
        bar = ProgressBar("training", stream=stream)
        bar.update(0.5, "it 5 loss 0.5")
        bar.note(FIRST)
        bar.close()
        text = stream.getvalue()
        assert f"{FIRST}\n" in text
        if isinstance(stream, Terminal):  # the bar is drawn again below the notice
            assert "50%" in text.split(FIRST)[1]
        else:
            assert text.startswith(f"{FIRST}\n") and text.count("\n") == 2

"""The CLI's progress bar: live on a terminal, a few plain lines in a log."""

import io
import sys

from napari_unet.cli._progress import ProgressBar


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def run(bar: ProgressBar, n: int = 20_000) -> None:
    for i in range(n + 1):
        bar.update(i / n, f"it {i}")
    bar.close()


def test_a_log_gets_one_plain_line_not_thousands_of_redraws():
    log = io.StringIO()
    run(ProgressBar("training", log))
    assert "\r" not in log.getvalue()
    assert log.getvalue().splitlines() == [log.getvalue().strip()]
    assert log.getvalue().startswith("training: 100% it 20000 (")


def test_a_log_gets_a_line_per_interval():
    log = io.StringIO()
    bar = ProgressBar("predicting", log, log_interval=0.0)
    bar.update(0.25, "1/4 tiles")
    bar.update(0.5, "2/4 tiles")
    bar.close()
    lines = log.getvalue().splitlines()
    assert [line.split(" (")[0] for line in lines] == [
        "predicting: 25% 1/4 tiles",
        "predicting: 50% 2/4 tiles",
        "predicting: 50% 2/4 tiles",
    ]
    assert "\r" not in log.getvalue()


def test_a_terminal_gets_a_bar_redrawn_in_place_at_most_ten_times_a_second():
    screen = Terminal()
    run(ProgressBar("training", screen))
    text = screen.getvalue()
    assert text.endswith("\n")
    final = text.rstrip("\n").split("\r")[-1]
    assert final.startswith("training |" + "#" * 30 + "| 100%, it 20000 [")
    assert text.count("\r") < 20  # 20001 updates in well under a second of drawing


def test_a_stage_that_starts_again_from_zero_is_shown():
    screen = Terminal()
    bar = ProgressBar("a.tif", screen)
    bar.update(1.0, "4/4 tiles")
    bar.update(0.5, "instances 1/2")
    bar.close()
    assert "|  50%, instances 1/2 [" in screen.getvalue().split("\r")[-1]


def test_a_terminal_that_reports_no_size_still_shows_the_bar(monkeypatch):
    import tqdm.std

    screen = Terminal()
    monkeypatch.setattr(sys, "stderr", screen)  # the default stream, which tqdm measures
    monkeypatch.setattr(tqdm.std, "_screen_shape_wrapper", lambda: lambda _file: (0, 0))
    run(ProgressBar("training"), n=10)  # as in a pseudo-terminal that says 0 x 0
    assert "training |" + "#" * 30 + "| 100%, it 10 [" in screen.getvalue().split("\r")[-1]

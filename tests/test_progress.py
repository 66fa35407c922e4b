"""The CLI's progress bar: live on a terminal, a few plain lines in a log."""

import io
import itertools
import sys
import types

from napari_unet.cli import _progress
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
        "predicting: 50% 2/4 tiles",  # closing says nothing new: no line
    ]
    assert "\r" not in log.getvalue()


def fake_clock(monkeypatch, step: float) -> None:
    """The bar's clock moves ``step`` seconds at each reading (it reads it once an update)."""
    readings = itertools.count()
    clock = types.SimpleNamespace(perf_counter=lambda: next(readings) * step)
    monkeypatch.setattr(_progress, "time", clock)


def test_a_terminal_gets_a_bar_redrawn_in_place_at_most_ten_times_a_second(monkeypatch):
    fake_clock(monkeypatch, 1 / 128)  # exact in binary: no rounding in the time differences
    screen = Terminal()
    run(ProgressBar("training", screen))  # 20001 updates over 156 s
    text = screen.getvalue()
    assert text.endswith("\n")
    final = text.rstrip("\n").split("\r")[-1]
    assert final.startswith("training |" + "#" * 30 + "| 100%, it 20000 [")
    # a redraw every 13 updates (13/128 s is the first step count to reach 0.1 s), plus the
    # first draw, the forced one at 100 % and the one at close
    assert text.count("\r") == 20_001 // 13 + 3


def test_a_terminal_bar_is_not_redrawn_while_no_time_passes(monkeypatch):
    fake_clock(monkeypatch, 0.0)
    screen = Terminal()
    run(ProgressBar("training", screen))
    lines = screen.getvalue().rstrip("\n").split("\r")[1:]
    assert len(lines) == 3  # the first draw, the forced one at 100 % and the one at close
    assert lines[0].startswith("training |" + " " * 30 + "|   0% [")
    done = "training |" + "#" * 30 + "| 100%, it 20000 ["
    assert all(line.startswith(done) for line in lines[1:])


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


def test_a_new_stage_is_drawn_at_once_and_a_long_one_gets_its_line_in_a_log(monkeypatch):
    fake_clock(monkeypatch, 0.0)  # no time passes: only a new stage forces a redraw
    screen = Terminal()
    bar = ProgressBar("a.tif", screen)
    bar.update(1.0, "50/50 tiles")
    bar.update(0.0, "refining the mask")
    assert "|   0%, refining the mask [" in screen.getvalue().split("\r")[-1]
    fake_clock(monkeypatch, 3.0)  # 3 s between readings
    log = io.StringIO()
    bar = ProgressBar("a.tif", log)  # read at 0 s
    bar.update(0.5, "25/50 tiles")  # 3 s
    bar.update(1.0, "50/50 tiles")  # 6 s
    bar.update(0.0, "refining the mask")  # 9 s: the tiles' stage took 9 s, a line
    bar.update(0.0, "instances 0/1")  # 12 s: the same fraction, no new stage
    bar.update(1.0, "instances 1/1")  # 15 s
    bar.close()  # 18 s
    assert [line.split(" (")[0] for line in log.getvalue().splitlines()] == [
        "a.tif: 100% 50/50 tiles",
        "a.tif: 100% instances 1/1",
    ]
    assert log.getvalue().splitlines()[0].endswith("(9.0 s since the start)")
    assert log.getvalue().splitlines()[1].endswith("(18.0 s since the start)")  # not 9 s


def _lines(log: io.StringIO) -> list[tuple[float, str]]:
    """(seconds since the start, text) of each line of a log."""
    lines = []
    for line in log.getvalue().splitlines():
        text, _, since = line.rpartition(" (")
        lines.append((float(since.split(" s ")[0]), text))
    return lines


def test_a_long_prediction_in_a_log_gets_a_line_every_10_percent_or_10_s_per_stage(
    monkeypatch,
):
    """A huge store's tiles (80 s), refinement (200 s) and instances, as ``predict``
    reports them: every stage is followed, no two lines of a stage are under 2 s
    apart, none of a moving stage over 10 s, and each stage ends with its own line."""
    from napari_unet.cli.predict import _FileProgress
    from napari_unet.core.inference import Progress
    from napari_unet.io.volumes import StackProgress

    fake_clock(monkeypatch, 0.5)  # each report half a second after the one before
    log = io.StringIO()
    monkeypatch.setattr(sys, "stderr", log)
    bars = _FileProgress()
    update = bars.start("big.tif")
    for done in range(0, 641, 4):
        update(StackProgress(done, 640))
    update(Progress(0, 1, "mask"))
    for done in range(1, 401):
        update(Progress(done, 400, "mask"))
    update(Progress(0, 1, "instances"))
    update(Progress(1, 1, "instances"))
    bars.close()
    lines = _lines(log)
    assert "\r" not in log.getvalue()
    texts = [text for _, text in lines]
    tiles = [text for text in texts if text.endswith(" tiles")]
    refining = [text for text in texts if "refining the mask" in text]
    assert tiles[-1] == "big.tif: 100% 640/640 tiles"
    assert refining[-1] == "big.tif: 100% refining the mask (gaps, growth, holes): 400/400 blocks"
    assert texts[-1] == "big.tif: 100% instances 1/1"
    assert 8 <= len(tiles) <= 12 and 18 <= len(refining) <= 22  # 10 % or 10 s apart
    assert lines[0][0] <= 10.5  # the first line within 10 s
    for stage in (" tiles", "blocks"):
        times = [seconds for seconds, text in lines if text.endswith(stage)]
        gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
        assert 2.0 <= min(gaps) and max(gaps) <= 10.5, stage
    percents = [int(text.split(": ")[1].split("%")[0]) for text in tiles]
    assert all(later - earlier <= 10 for earlier, later in itertools.pairwise(percents))


def test_a_log_of_many_quick_files_gets_one_line_each(monkeypatch):
    """Stages of a few seconds print nothing of their own: a batch's log is not flooded."""
    from napari_unet.cli.predict import _FileProgress
    from napari_unet.core.inference import Progress

    fake_clock(monkeypatch, 0.1)
    log = io.StringIO()
    monkeypatch.setattr(sys, "stderr", log)
    bars = _FileProgress()
    for name in ("a.tif", "b.tif", "c.tif"):
        update = bars.start(name)
        for done in range(0, 41):
            update(Progress(done, 40))
        update(Progress(0, 3, "instances"))
        update(Progress(3, 3, "instances"))
        bars.close()
    assert [text for _, text in _lines(log)] == [
        f"{name}: 100% instances 3/3" for name in ("a.tif", "b.tif", "c.tif")
    ]

"""Long work shows its progress: in each section's own bar, and only on request in
napari's activity dock (a ``napari.utils.progress`` per job, ``_tasks.ACTIVITY_DOCK``)."""

from __future__ import annotations

import pytest
from napari.utils import progress

from helpers import annotate, run
from napari_unet._widgets import _tasks
from napari_unet._widgets._tasks import PROGRESS_STEPS

pytestmark = pytest.mark.gui


def activity_log() -> tuple[list, list]:
    """(added, removed): the progress bars napari's activity dock is told about."""
    added: list = []
    removed: list = []

    def record(event) -> None:
        added.extend(event.added)
        removed.extend(event.removed)

    progress._all_instances.events.changed.connect(record)
    return added, removed


@pytest.fixture
def activity_dock(monkeypatch):
    """napari's activity dock shows the jobs' bars (off by default)."""
    monkeypatch.setattr(_tasks, "ACTIVITY_DOCK", True)


def test_by_default_jobs_stay_out_of_the_activity_dock(qtbot, dock):
    viewer, widget = dock
    predict = widget.predict
    predict.tile_size.value = predict.tile_size.choices[1]  # the smallest: several tiles
    added, _ = activity_log()
    values: list[int] = []
    predict.progress.valueChanged.connect(values.append)
    run(qtbot, predict, predict.run_prediction)
    assert added == []  # napari's status bar does not animate its loading GIF
    assert 0 < values[-2] < PROGRESS_STEPS and values[-1] == PROGRESS_STEPS  # the own bar moved
    assert "discs mask" in viewer.layers


def test_predict_shows_its_progress_in_the_activity_dock(qtbot, dock, activity_dock):
    viewer, widget = dock
    predict = widget.predict
    predict.tile_size.value = predict.tile_size.choices[1]  # the smallest: several tiles
    added, removed = activity_log()
    with qtbot.waitSignal(predict.finished, timeout=60_000):
        assert predict.run_prediction() is not None
        qtbot.waitUntil(lambda: len(added) == 1)  # opened from the event loop
        [bar] = added
        assert bar in progress._all_instances and bar.total == PROGRESS_STEPS
        assert str(bar.desc).startswith("Prediction")
    assert removed == [bar] and bar not in progress._all_instances  # closed: gone from the dock
    assert predict.progress.value() == PROGRESS_STEPS  # the bar beside the button: done
    assert "discs mask" in viewer.layers


def test_a_stopped_fine_tune_closes_its_activity_progress(qtbot, dock, activity_dock):
    viewer, widget = dock
    finetune = widget.finetune
    annotate(viewer, widget)
    finetune.settings.iterations.value = 0  # only ends when stopped
    finetune.settings.seconds.value = 600
    added, removed = activity_log()
    finetune.start_finetune()
    qtbot.waitUntil(lambda: len(added) == 1 and added[0].n > 0, timeout=30_000)
    [bar] = added
    assert bar in progress._all_instances
    assert 0 < bar.n <= finetune.progress.value()  # moved from the event loop, a little behind
    assert str(bar.desc).startswith("Training")  # the dock's "tiny" is a new model
    with qtbot.waitSignal(finetune.finished, timeout=30_000):
        finetune.stop()  # our Stop button; the activity dock has none
    assert removed == [bar] and bar not in progress._all_instances
    assert finetune.status.text().startswith("Stopped after ")


def test_a_finished_fine_tune_leaves_its_bar_full(qtbot, dock, activity_dock):
    viewer, widget = dock
    finetune = widget.finetune
    annotate(viewer, widget)
    added, removed = activity_log()
    run(qtbot, finetune, finetune.start_finetune)
    assert "changed class" in finetune.status.text()  # the comparison came after the last step
    assert finetune.progress.value() == PROGRESS_STEPS  # and did not move the bar
    assert removed == added and not any(bar in progress._all_instances for bar in added)

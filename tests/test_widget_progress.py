"""Long work shows its progress: in each section's own bar, and only on request in
napari's activity dock (a ``napari.utils.progress`` per job, ``_tasks.ACTIVITY_DOCK``)."""

from __future__ import annotations

import pytest
from napari.utils import progress

from helpers import annotate, run, tiny_model
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
    said = finetune.status.text()
    assert "the model now calls" in said  # the comparison came after the last step
    assert finetune.progress.value() == PROGRESS_STEPS  # and did not move the bar
    assert removed == added and not any(bar in progress._all_instances for bar in added)


# ---- the Fine-tune bar once a run has ended ---------------------------------------------


def _stopped_at_the_third_iteration(qtbot, finetune) -> None:
    """Run until stopped, pressing Stop once the third iteration is shown."""
    finetune.settings.iterations.value = 0  # only ends when stopped
    finetune.settings.seconds.value = 600

    def stop_at_the_third(update) -> None:
        if getattr(update, "iteration", 0) == 3:
            finetune.stop()

    with qtbot.waitSignal(finetune.finished, timeout=60_000):
        finetune.start_finetune().yielded.connect(stop_at_the_third)


def test_a_finished_fine_tune_says_100_percent(qtbot, dock):
    viewer, widget = dock
    finetune = widget.finetune
    annotate(viewer, widget)
    run(qtbot, finetune, finetune.start_finetune)
    bar = finetune.progress
    assert bar.value() == bar.maximum() == PROGRESS_STEPS
    assert bar.format() == "100%" and bar.text() == "100%"


def test_a_stopped_fine_tune_fills_its_bar_and_says_when_it_stopped(qtbot, dock):
    viewer, widget = dock
    finetune = widget.finetune
    annotate(viewer, widget)
    _stopped_at_the_third_iteration(qtbot, finetune)
    iterations = finetune.state.model.info.training_history[-1].iterations
    assert iterations >= 3  # the Stop is honoured within an iteration of its press
    assert finetune.status.text().startswith(f"Stopped after {iterations} iterations")
    bar = finetune.progress
    assert bar.value() == PROGRESS_STEPS  # it ended: the model keeps what it learnt
    assert bar.text() == f"Stopped after {iterations} iterations"


def test_a_failed_fine_tune_keeps_its_bar_where_it_was(qtbot, dock, monkeypatch):
    from napari_unet.training import loop

    real_update, updates = loop._apply_update, []

    def failing_at_the_fourth(*args) -> bool:
        updates.append(1)
        return len(updates) < 4 and real_update(*args)

    monkeypatch.setattr(loop, "_apply_update", failing_at_the_fourth)
    viewer, widget = dock
    finetune = widget.finetune
    annotate(viewer, widget)
    run(qtbot, finetune, finetune.start_finetune)  # 15 iterations planned
    assert finetune.status.text().startswith("Failed: ")
    bar = finetune.progress
    assert bar.value() == round(3 / 15 * PROGRESS_STEPS)  # the last iteration shown: 3
    assert bar.text() == "Failed after 3 iterations"
    kept_line = finetune.status.text()
    assert finetune.state.last_run.summary == kept_line  # a dock opened again shows it

    widget.model.use_model(tiny_model(seed=1), "other")  # the failed run's words no longer apply
    assert bar.value() < bar.minimum() and bar.format() == "%p%"
    assert finetune.status.text().startswith("“other” is the current model now; the last run's")


def test_a_model_loaded_after_a_run_failed_before_training_replaces_its_line(
    qtbot, dock, monkeypatch
):
    from napari_unet.training import loop

    def failing_at_once(*args) -> bool:
        raise RuntimeError("out of memory")

    monkeypatch.setattr(loop, "_apply_update", failing_at_once)
    viewer, widget = dock
    finetune = widget.finetune
    annotate(viewer, widget)
    run(qtbot, finetune, finetune.start_finetune)
    assert finetune.status.text().startswith("Failed: ")
    widget.model.use_model(tiny_model(seed=1), "other")
    assert finetune.status.text() == "“other” is the current model now."


def test_a_run_that_trained_nothing_resets_the_bar_and_a_new_run_says_percent(
    qtbot, dock, monkeypatch
):
    from napari_unet._widgets import _finetune

    viewer, widget = dock
    finetune = widget.finetune
    annotate(viewer, widget)
    _stopped_at_the_third_iteration(qtbot, finetune)
    assert finetune.progress.text().startswith("Stopped after ")

    def stopped_before_training(request, stop, cancel):
        yield "Reading the image…"
        stop.wait(30)
        return None  # as finetune_job when stopped before the first iteration

    monkeypatch.setattr(_finetune, "finetune_job", stopped_before_training)
    bar = finetune.progress
    with qtbot.waitSignal(finetune.finished, timeout=30_000):
        assert finetune.start_finetune() is not None
        assert bar.format() == "%p%" and bar.text() == "0%"  # a new run: its share done
        finetune.stop()
    assert finetune.status.text().startswith("Stopped before the first iteration")
    assert bar.value() == bar.minimum() - 1 and bar.text() == ""  # reset: nothing to say
    assert bar.format() == "%p%"


def test_going_back_resets_the_bar(qtbot, dock):
    viewer, widget = dock
    finetune = widget.finetune
    annotate(viewer, widget)
    _stopped_at_the_third_iteration(qtbot, finetune)
    finetune.back_button.native.click()
    bar = finetune.progress
    assert bar.text() == "" and bar.format() == "%p%"


def test_a_job_waiting_for_a_thread_says_so_in_its_bar(qtbot, notifications):
    """napari runs one task per core: with all threads busy, a new job's bar said nothing."""
    import threading

    from qtpy.QtCore import QThreadPool
    from qtpy.QtWidgets import QProgressBar, QWidget

    pool = QThreadPool.globalInstance()
    most = pool.maxThreadCount()
    pool.setMaxThreadCount(1)
    owner, release, bar = QWidget(), threading.Event(), QProgressBar()
    bar.setFormat("%p%")

    def job(wait):
        wait()
        yield 1.0
        return None

    def started(name):
        return _tasks.start_job(
            owner,
            job(lambda: release.wait(10) if name == "busy" else None),
            name,
            threading.Event(),
            on_yield=lambda _: None,
            on_result=lambda _: None,
            on_finish=lambda: None,
            release=lambda: None,
            bar=bar if name == "queued" else None,
        )

    try:
        busy = started("busy")
        qtbot.waitUntil(lambda: pool.activeThreadCount() >= 1, timeout=5_000)
        queued = started("queued")
        assert bar.format() == "Waiting for another task to end…"
        bare = started("Loss weights")  # no bar: a notification says it
        said = "Loss weights: waiting for another task to end (one runs per core)."
        assert str(notifications[-1].message) == said
        with qtbot.waitSignals([busy.finished, queued.finished, bare.finished], timeout=10_000):
            release.set()
        assert bar.format() == "%p%"  # its own again once it ran
    finally:
        release.set()
        pool.setMaxThreadCount(most)

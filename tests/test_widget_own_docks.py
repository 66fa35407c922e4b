"""Fixes of session 34's walkthrough: sections in docks of their own beside the U-Net dock
(what one shows follows the other), Predict's bar after a refusal."""

from __future__ import annotations

import pytest

from helpers import annotate, run
from napari_unet._widgets import _memory

pytestmark = pytest.mark.gui


def test_a_second_fine_tune_section_shows_the_last_run_of_the_first(qtbot, dock):
    viewer, widget = dock
    _, own_dock = viewer.window.add_plugin_dock_widget("napari-unet", "Fine-tune")
    other = own_dock.section
    annotate(viewer, widget)
    finetune = widget.finetune
    other.status.setText("an older summary")  # what a run of its own had said
    other.progress.setValue(5)
    other.progress.setFormat("Failed after 12 iterations")
    run(qtbot, finetune, finetune.start_finetune)
    assert finetune.status.text().startswith("Done"), finetune.status.text()
    assert other.status.text() == finetune.status.text()
    assert other.plot.iterations == finetune.plot.iterations and other.plot.iterations
    assert other.plot.losses == finetune.plot.losses
    assert other.progress.value() < other.progress.minimum()  # its own run's end is gone
    assert other.progress.format() == "%p%"
    assert other.back_button.enabled and finetune.back_button.enabled

    with qtbot.waitSignal(model_went_back(widget), timeout=10_000):
        assert other.go_back.go_back()  # undone from the other section: both forget the run
    for section in (finetune, other):
        assert section.status.text().startswith("Back to “tiny”"), section.status.text()
        assert section.plot.iterations == []


def model_went_back(widget):
    return widget.model.state.went_back


def test_a_refused_run_empties_the_bar_the_last_run_left(dock, monkeypatch):
    _, widget = dock
    predict = widget.predict
    predict.progress.setValue(predict.progress.maximum())
    predict.progress.setFormat("Cancelled while post-processing")  # as a cancelled run ends
    monkeypatch.setattr(_memory, "available_memory", lambda: 1000)
    assert predict.run_prediction() is None
    assert predict.progress.value() < predict.progress.minimum()  # reset: no bar, no text
    assert "not enough memory" in predict.status.text()

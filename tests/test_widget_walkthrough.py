"""Fixes from a walkthrough of the dock on stacks, RGB images and saved models (session 33):
a run of one iteration, an image removed while a fine-tune runs."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import annotate
from napari_unet._widgets._finetune_job import FinetuneUpdate
from napari_unet._widgets._plot import LossPlot

pytestmark = pytest.mark.gui


def orange_pixels(plot: LossPlot) -> int:
    """How many pixels of the drawn plot have the moving average's colour (#f59e0b)."""
    plot.draw()
    pixels = np.asarray(plot.buffer_rgba())[..., :3].astype(int)
    return int(np.count_nonzero(np.abs(pixels - (245, 158, 11)).sum(axis=-1) < 40))


def test_a_run_of_one_iteration_draws_its_point(qtbot):
    plot = LossPlot()
    qtbot.addWidget(plot)
    plot.resize(373, 170)
    plot.show()
    legend_only = orange_pixels(plot)  # the legend's sample of the line
    plot.add(1, 0.4, 0.4)
    plot.redraw()
    assert orange_pixels(plot) > legend_only + 10  # a marker: a line through 1 point is empty
    plot.add(2, 0.3, 0.35)
    plot.redraw()
    assert plot.smooth_line.get_marker() == "None"  # two points: the line itself


def test_removing_the_image_during_a_fine_tune_stops_its_previews(qtbot, dock, notifications):
    viewer, widget = dock
    annotate(viewer, widget)
    finetune = widget.finetune
    finetune.settings.iterations.value = 20
    seen = []
    with qtbot.waitSignal(finetune.finished, timeout=60_000):
        worker = finetune.start_finetune()
        assert worker is not None
        worker.yielded.connect(seen.append)
        qtbot.waitUntil(lambda: any(isinstance(u, FinetuneUpdate) for u in seen), timeout=30_000)
        shown = (
            viewer.layers["discs preview"].data.copy() if "discs preview" in viewer.layers else None
        )
        viewer.layers.remove("discs")
    said = [str(notification.message) for notification in notifications]
    assert any(line.startswith("“discs” was removed: the fine-tune goes on") for line in said)
    previews = [layer for layer in viewer.layers if layer.name == "discs preview"]
    if shown is None:
        assert not previews  # none added for an image that is gone
    else:  # the last preview, of the tuned model, was not drawn for it, and is hidden
        np.testing.assert_array_equal(previews[0].data, shown)
        assert not previews[0].visible
    assert finetune.status.text().startswith("Done"), finetune.status.text()


def test_removing_the_strokes_during_a_fine_tune_is_said(qtbot, dock, notifications):
    """napari cannot undo a layer's removal: the run trains on what it read, and says so."""
    viewer, widget = dock
    layer = annotate(viewer, widget)
    finetune = widget.finetune
    finetune.settings.iterations.value = 20
    with qtbot.waitSignal(finetune.finished, timeout=60_000):
        assert finetune.start_finetune() is not None
        layer.name = "my strokes"  # renamed first: still the run's
        viewer.layers.remove(layer)
    said = [str(notification.message) for notification in notifications]
    assert any(
        line.startswith("“my strokes” was removed: the fine-tune goes on with the strokes")
        for line in said
    ), said
    assert finetune.status.text().startswith("Done"), finetune.status.text()

"""The Annotate section's counts follow strokes, fills and undo on a stack."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import discs_image
from napari_unet._widgets import _stroke_counts

pytestmark = pytest.mark.gui


def _shown(widget, label):
    text = widget.annotate.counts.text()
    return text.split(f"{label}: ")[1].split(" px")[0].replace(",", "")


def test_counts_follow_strokes_and_undo_recounting_only_the_touched_plane(qtbot, dock, monkeypatch):
    viewer, widget = dock
    stack = viewer.add_image(np.stack([discs_image(seed=seed) for seed in range(6)]), name="s")
    widget.annotate.image_picker.combo.value = stack
    layer = widget.annotate.create_annotation_layer()
    assert layer.data.shape == (6, 128, 128)
    viewer.dims.set_current_step(0, 4)
    counted = []
    original = _stroke_counts.plane_counts
    monkeypatch.setattr(
        _stroke_counts, "plane_counts", lambda plane, n: counted.append(1) or original(plane, n)
    )
    layer.paint((4, 64, 64), 2)
    qtbot.waitUntil(lambda: _shown(widget, 2) == str(np.count_nonzero(layer.data == 2)))
    assert len(counted) == 1  # the painted plane, not the six
    assert "annotated slices: 1 of 6 (4)" in widget.annotate.counts.text()  # which one
    layer.fill((4, 0, 0), 1)  # a fill of the plane's background
    qtbot.waitUntil(lambda: _shown(widget, 1) == str(np.count_nonzero(layer.data == 1)))
    layer.undo()
    qtbot.waitUntil(lambda: _shown(widget, 1) == "0")
    assert _shown(widget, 2) == str(np.count_nonzero(layer.data == 2)) != "0"

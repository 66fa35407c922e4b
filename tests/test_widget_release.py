"""Layers the user removes after a fine-tune are freed: the widgets keep no reference."""

from __future__ import annotations

import gc
import weakref

import pytest

from helpers import annotate, run

pytestmark = pytest.mark.gui


def test_removed_layers_are_freed_after_a_fine_tune_and_the_loss_weights(qtbot, dock):
    viewer, widget = dock
    strokes = annotate(viewer, widget)
    run(qtbot, widget.finetune, widget.finetune.start_finetune)
    weights = widget.finetune.loss_weights
    with qtbot.waitSignal(weights.finished, timeout=10_000):
        assert weights.show() is not None
    image = viewer.layers["discs"]
    freed = [weakref.ref(image), weakref.ref(image.data), weakref.ref(strokes)]
    del image, strokes
    viewer.layers.clear()
    qtbot.waitUntil(lambda: len(viewer.layers) == 0)
    gc.collect()
    assert [ref() is None for ref in freed] == [True, True, True]

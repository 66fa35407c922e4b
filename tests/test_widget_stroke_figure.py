"""The Fine-tune section's stroke figure for a model with a background threshold: the share
of the strokes Predict's mask keeps (``evaluation.strokes``)."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import annotate, as_trained, run, tiny_model
from napari_unet._widgets import model_state

pytestmark = pytest.mark.gui


def test_a_model_with_a_threshold_says_what_predict_s_mask_keeps_of_the_strokes(
    qtbot, dock, monkeypatch
):
    from napari_unet._widgets import _finetune_job
    from napari_unet._words import percent

    real_shown = _finetune_job._shown_mask

    def grown_over_the_background(request, probabilities, threshold=None):
        # measured, before and after the run, for a model with a threshold
        assert real_shown(request, probabilities, threshold) is not None
        return np.full(probabilities.shape[1:], 2, np.uint8)  # background strokes grown over

    monkeypatch.setattr(_finetune_job, "_shown_mask", grown_over_the_background)
    viewer, widget = dock
    model = as_trained(tiny_model(seed=2))
    model.metadata["background_threshold"] = 0.9  # em-membranes has 0.87: a thin membrane
    widget.model.use_model(model, "trained")
    strokes = annotate(viewer, widget).data
    widget.finetune.settings.iterations.value = 2
    run(qtbot, widget.finetune, widget.finetune.start_finetune)
    threshold = model_state(viewer).model.info.background_threshold
    share = np.count_nonzero(strokes == 2) / np.count_nonzero(strokes)
    kept = percent(share, whole=True)
    expected = (
        f"; Predict's mask, which draws background only where the model is at least "
        f"{percent(threshold, whole=True)} sure, matches {kept} of them (before: {kept})"
    )
    said = widget.finetune.status.text()
    assert expected in said, said


def test_a_slice_without_strokes_is_not_measured():
    from types import SimpleNamespace

    from napari_unet._widgets._finetune_job import _shown_mask

    model = as_trained(tiny_model())
    model.metadata["background_threshold"] = 0.9
    strokes = np.ones((1, 3, 4), np.uint8)
    request = SimpleNamespace(model=model, planes=[(0,)], annotations=list(strokes))
    after = np.full((2, 3, 4), 0.5, np.float32)
    request.compare_plane = (0,)
    assert _shown_mask(request, after) is not None
    request.compare_plane = (1,)  # a slice without strokes: nothing to measure
    assert _shown_mask(request, after) is None

"""Predict continues the image's last mask after a fine-tune, and only then."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import run, touching_pair
from napari_unet._widgets import _predict_job, model_state
from napari_unet._widgets._last_mask import CONTINUED_KEY, last_mask
from napari_unet._widgets._layers import ANNOTATION_KEY
from napari_unet.core.continuity import LINEAGE_KEY, lineage
from napari_unet.core.inference import Progress

pytestmark = pytest.mark.gui


@pytest.fixture
def pair(dock, monkeypatch):
    """The dock predicting a (40, 60) image whose probabilities are two touching discs
    with a band of ``band[0]`` between them (a stand-in for a model's output)."""
    viewer, widget = dock
    band = [0.3]

    def fake_iter_predict(image, model, out, **_):
        out[...] = touching_pair(band[0])
        yield Progress(1, 1)

    monkeypatch.setattr(_predict_job, "iter_predict", fake_iter_predict)
    image = viewer.add_image(np.zeros((40, 60), np.float32), name="pair")
    widget.predict.image_picker.combo.value = image
    widget.predict.with_uncertainty.value = False
    return viewer, widget, band


def trained_runs(viewer, *runs: int) -> None:
    """Give the shared model a training history of these runs (as fine-tunes would)."""
    model_state(viewer).model.metadata["training_history"] = [{"iterations": i} for i in runs]


def objects_after_predict(qtbot, viewer, widget) -> int:
    run(qtbot, widget.predict, widget.predict.run_prediction)
    return int(viewer.layers["pair instances"].data.max())


def test_a_fine_tuned_model_keeps_the_separations_of_the_last_mask(qtbot, pair):
    viewer, widget, band = pair
    trained_runs(viewer, 1)
    assert objects_after_predict(qtbot, viewer, widget) == 2
    mask = viewer.layers["pair mask"]
    assert mask.metadata[LINEAGE_KEY] == lineage(model_state(viewer).model)
    band[0] = 0.16  # after the fine-tune the band is too faint for a new separation
    trained_runs(viewer, 1, 2)
    assert objects_after_predict(qtbot, viewer, widget) == 2
    assert objects_after_predict(qtbot, viewer, widget) == 2  # and again with the same model
    trained_runs(viewer, 1)  # went back: the base's own prediction, the pair merged
    assert objects_after_predict(qtbot, viewer, widget) == 1


def test_not_after_another_model_nor_across_an_object_stroke(qtbot, pair):
    viewer, widget, band = pair
    trained_runs(viewer, 1)
    assert objects_after_predict(qtbot, viewer, widget) == 2
    band[0] = 0.16
    trained_runs(viewer, 7)  # another model
    assert objects_after_predict(qtbot, viewer, widget) == 1

    band[0] = 0.3
    trained_runs(viewer, 1)
    assert objects_after_predict(qtbot, viewer, widget) == 2
    strokes = np.zeros((40, 60), np.uint8)
    strokes[15:25, 29] = 2  # "one nucleus" painted across the contact
    viewer.add_labels(strokes, name="pair annotations", metadata={ANNOTATION_KEY: True})
    band[0] = 0.16
    trained_runs(viewer, 1, 2)
    assert objects_after_predict(qtbot, viewer, widget) == 1


def test_the_objects_split_or_joined_since_the_last_mask_are_marked(qtbot, pair):
    viewer, widget, band = pair
    trained_runs(viewer, 1)
    objects_after_predict(qtbot, viewer, widget)
    assert "pair changes" not in viewer.layers  # nothing to compare with yet
    trained_runs(viewer, 1, 2)  # a fine-tune; the same separation
    objects_after_predict(qtbot, viewer, widget)
    assert "pair changes" not in viewer.layers  # nothing to mark
    assert "Since the last mask no object split or joined." in widget.predict.status.text()
    strokes = np.zeros((40, 60), np.uint8)
    strokes[15:25, 29] = 2  # "one nucleus" painted across the contact drops the line
    viewer.add_labels(strokes, name="pair annotations", metadata={ANNOTATION_KEY: True})
    band[0] = 0.16
    trained_runs(viewer, 1, 2, 3)
    assert objects_after_predict(qtbot, viewer, widget) == 1
    marked = viewer.layers["pair changes"].data
    assert marked.shape == (1, 2) and abs(marked[0, 1] - 29) <= 1.5 and abs(marked[0, 0] - 20) <= 3
    assert "0 objects split, 1 joined (marked in “pair changes”)" in widget.predict.status.text()
    # the strokes stay above the new outputs and active: corrections go where they train
    assert viewer.layers[-1] is viewer.layers.selection.active is viewer.layers["pair annotations"]
    trained_runs(viewer, 7)  # another model: predicted afresh, nothing compared
    objects_after_predict(qtbot, viewer, widget)
    assert "pair changes" not in viewer.layers


def test_the_same_model_continues_only_a_mask_that_continued_another(qtbot, pair):
    viewer, widget, _ = pair
    image = viewer.layers["pair"]

    def continued() -> bool:
        previous, _ = last_mask(viewer, image, model_state(viewer).model, (40, 60))
        return previous is not None

    trained_runs(viewer, 1)
    objects_after_predict(qtbot, viewer, widget)
    assert not viewer.layers["pair mask"].metadata[CONTINUED_KEY]
    assert not continued()  # its own mask: predicting again starts afresh, as the first time
    trained_runs(viewer, 1, 2)  # a fine-tune: the last mask is continued
    assert continued()
    objects_after_predict(qtbot, viewer, widget)
    assert viewer.layers["pair mask"].metadata[CONTINUED_KEY]
    assert continued()  # its separations kept again, as the first time

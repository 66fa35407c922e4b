"""What the sections say when a run cannot start: refusals before any worker, in the GUI's words."""

from __future__ import annotations

import numpy as np
import pytest
from napari.utils.notifications import NotificationSeverity

from helpers import discs_image, paint_strokes
from napari_unet._widgets import model_state

pytestmark = pytest.mark.gui


@pytest.mark.parametrize(
    ("painted", "what"),
    [(None, "The annotations are empty"), (1, "Only label 1 (background) is painted")],
    ids=["empty", "one"],
)
def test_finetune_refuses_missing_strokes_before_starting_a_worker(
    dock, notifications, painted, what
):
    viewer, widget = dock
    layer = widget.annotate.create_annotation_layer()
    if painted is not None:
        layer.data[5:9, 5:120] = painted
    finetune, state = widget.finetune, model_state(viewer)
    history = list(state.history)
    assert finetune.start_finetune() is None
    assert finetune.worker is None and finetune.progress.value() <= 0
    said = finetune.status.text()
    assert not said.startswith("Failed"), said
    why = (
        " (fine-tuning learns where one class ends and the other begins; beside a stroke of "
        "one, paint a short one of the other)"
    )
    expected = (  # the worker's own words, with the layer's name
        f"{what}: paint at least one background (label 1) and one foreground (label 2) "
        f"stroke{why if painted else ''} on “discs annotations”, then press Start."
    )
    assert said == expected, said
    warnings = [n for n in notifications if n.severity == NotificationSeverity.WARNING]
    assert [str(n.message) for n in warnings] == [said]
    assert not state.busy and state.history == history  # nothing began: no snapshot either


def test_a_label_the_model_lacks_is_said_before_a_missing_class(dock, notifications):
    _, widget = dock
    layer = widget.annotate.create_annotation_layer()
    layer.data[5:9, 5:120] = 1
    layer.data[30, 20:40] = 3  # painted for a 3-class model; the current one has 2
    assert widget.finetune.start_finetune() is None
    said = widget.finetune.status.text()
    assert said.startswith("“discs annotations” holds label 3 (20 px), but this model knows")
    assert "Only label 1" not in said
    assert not [n for n in notifications if n.severity == NotificationSeverity.ERROR]


def test_finetune_refuses_labels_the_model_lacks_in_the_words_of_the_gui(dock, notifications):
    viewer, widget = dock
    layer = widget.annotate.create_annotation_layer()
    paint_strokes(layer.data)
    layer.data[0:2, 0:5] = 5
    layer.data[4, 0:3] = 9
    finetune, state = widget.finetune, model_state(viewer)
    assert finetune.start_finetune() is None and finetune.worker is None
    said = finetune.status.text()
    assert said == (
        "“discs annotations” holds labels 5, 9 (13 px), but this model knows labels 1-2 only. "
        "Erase those strokes (the eraser, or paint over them with a label the model knows), "
        "then press Start; for more classes, make a new model in the Model section."
    )
    warnings = [n for n in notifications if n.severity == NotificationSeverity.WARNING]
    assert [str(n.message) for n in warnings] == [said]
    assert not state.busy


def test_running_without_an_image_is_said_in_the_status_line_as_a_warning(
    make_napari_viewer, notifications
):
    from napari_unet._widgets import UNetWidget

    widget = UNetWidget(make_napari_viewer())  # no image open
    assert widget.predict.run_prediction() is None
    assert widget.finetune.start_finetune() is None
    said = [widget.predict.status.text(), widget.finetune.status.text()]
    assert said == [
        "Open an image, or choose one above, to predict on.",
        "Choose an image and its annotation layer (see Annotate), then press Start.",
    ]
    assert [str(n.message) for n in notifications] == said
    assert all(n.severity == NotificationSeverity.WARNING for n in notifications)


def test_labels_the_model_lacks_are_placed_on_their_slices(dock):
    viewer, widget = dock
    viewer.add_image(np.stack([discs_image(seed=seed) for seed in range(4)]), name="stack")
    widget.annotate.image_picker.combo.value = viewer.layers["stack"]
    widget.finetune.image_picker.combo.value = viewer.layers["stack"]
    layer = widget.annotate.create_annotation_layer()
    paint_strokes(layer.data[0])
    layer.data[2, 60:64, 60:64] = 3
    layer.data[3, 0:2, 0:2] = 4
    assert widget.finetune.start_finetune() is None
    said = widget.finetune.status.text()
    assert said.startswith("“stack annotations” holds labels 3, 4 (20 px, on slices 2; 3), but")

"""The Evaluate panel reads a ground truth in the convention its metrics need, or says why not."""

from __future__ import annotations

import numpy as np
import pytest
from napari.layers import Labels
from napari.utils.notifications import NotificationSeverity

from helpers import CENTRES, disc_labels, discs_image, tiny_model
from napari_unet._widgets import model_state
from napari_unet._widgets._layers import show_output

pytestmark = pytest.mark.gui


@pytest.fixture
def evaluate_panel(dock):
    """The Evaluate panel, with a perfect class mask (1 = background, 2 = disc) as prediction."""
    viewer, widget = dock
    perfect = np.where(disc_labels([1] * len(CENTRES)) > 0, 2, 1).astype(np.uint8)
    placement = {"scale": [1.0, 1.0], "translate": [0.0, 0.0]}
    show_output(viewer, viewer.layers["discs"], "mask", perfect, Labels, placement=placement)
    panel = widget.predict.evaluation
    panel.kind.value = "semantic"
    return viewer, panel


def evaluate_against(viewer, panel, truth: np.ndarray, name: str):
    viewer.add_labels(truth, name=name)
    panel.truth_picker.combo.value = viewer.layers[name]
    panel.kind.value = "semantic"
    return panel.run()


def test_semantic_refuses_instance_labels_saying_to_choose_instances(evaluate_panel, notifications):
    viewer, panel = evaluate_panel
    # one label per disc, like the sample's truth
    instances = disc_labels(range(1, len(CENTRES) + 1))
    assert evaluate_against(viewer, panel, instances, "instance truth") is None
    messages = [str(n.message) for n in notifications]
    assert any("instance labels (score them as instances)" in m for m in messages), messages
    assert any("0 = membrane, 255 = interior (score it as membranes)" in m for m in messages)
    assert panel.result.text() == messages[-1]  # the whole message, beside the button


def test_semantic_reads_a_binary_mask_as_background_and_object(evaluate_panel):
    viewer, panel = evaluate_panel
    scores = evaluate_against(viewer, panel, disc_labels([1] * len(CENTRES)), "binary truth")
    assert scores["pixel_error"] == 0.0  # a perfect mask (was 1.0: 0 ignored, 1 = background)
    assert scores["iou"] == {"1": 1.0, "2": 1.0}
    assert "binary mask" in panel.result.text()


def test_semantic_keeps_a_class_mask_in_the_annotation_convention(evaluate_panel):
    viewer, panel = evaluate_panel
    truth = np.where(disc_labels([1] * len(CENTRES)) > 0, 2, 1).astype(np.uint32)
    truth[:10] = 0  # not scored
    scores = evaluate_against(viewer, panel, truth, "class truth")
    assert scores["pixel_error"] == 0.0 and "note" not in scores


def test_semantic_refuses_a_binary_mask_for_a_model_of_3_classes(evaluate_panel, notifications):
    viewer, panel = evaluate_panel
    three = tiny_model(n_classes=3)
    model_state(viewer).set_model(three, "three classes")
    assert evaluate_against(viewer, panel, disc_labels([1] * len(CENTRES)), "binary truth") is None
    assert any("binary mask" in str(n.message) for n in notifications)


def test_the_metrics_choice_states_the_conventions(evaluate_panel):
    _viewer, panel = evaluate_panel
    assert "0 = not scored, 1 = background" in panel.kind.tooltip


def test_the_metrics_follow_the_model_until_the_user_picks_them(dock):
    viewer, widget = dock
    panel, state = widget.predict.evaluation, model_state(viewer)
    membranes = tiny_model(seed=1)
    membranes.metadata["class_names"] = ["membrane", "cell"]
    state.set_model(membranes, "em")
    assert panel.kind.value == "membranes"
    state.set_model(tiny_model(seed=2), "tiny")  # class names of its own: background, ...
    assert panel.kind.value == "instances"
    panel.kind.value = "semantic"  # the user's choice stays
    state.set_model(membranes, "em")
    assert panel.kind.value == "semantic"


def test_a_ground_truth_opened_as_an_image_is_named_with_how_to_convert_it(
    evaluate_panel, notifications
):
    viewer, panel = evaluate_panel  # "discs" has its mask: it is the image, not a truth
    # File → Open of a label file: an integer image layer (listed, not followed by the pickers)
    viewer.add_image(disc_labels(range(1, len(CENTRES) + 1)).astype(np.uint8), name="truth.tif")
    assert panel.truth_picker.layer is None  # only Labels layers are listed
    assert panel.run() is None
    said = [str(n.message) for n in notifications]
    assert any("“truth.tif” is an image layer" in m and "Convert to Labels" in m for m in said)
    assert "“truth.tif” is an image layer" in panel.result.text()  # whole, beside the button


def test_no_image_is_called_a_ground_truth_before_anything_was_predicted(dock, notifications):
    viewer, widget = dock
    panel = widget.predict.evaluation
    intensities = (np.clip(discs_image(seed=1), 0, None) * 1000).astype(np.uint16)
    viewer.add_image(intensities, name="cells")  # an integer image of intensities, no labels
    assert panel.run() is None  # maybe the user's own image: no hint to convert it
    assert "Convert to Labels" not in panel.result.text()
    assert panel.result.text().startswith("Choose an image and a ground-truth Labels layer")


def test_a_label_image_is_named_as_soon_as_it_is_opened_until_a_truth_is_chosen(dock):
    viewer, widget = dock  # nothing predicted, Evaluate not pressed
    panel = widget.predict.evaluation
    hint = "“truth.tif” is an image layer: to use it as the ground truth, right-click it"
    assert panel.result.text() == ""
    opened = viewer.add_image(disc_labels(range(1, len(CENTRES) + 1)).astype(np.uint8))
    opened.name = "truth.tif"  # File → Open: named after the file, read as an image
    assert hint in panel.result.text() and "Convert to Labels" in panel.result.text()
    truth = viewer.add_labels(np.asarray(opened.data), name="truth")  # Convert to Labels
    assert panel.truth_picker.layer is truth
    assert panel.result.text() == ""  # a Labels ground truth is chosen: nothing to convert
    viewer.layers.remove(truth)
    assert hint in panel.result.text()
    viewer.layers.remove(opened)
    assert panel.result.text() == ""


def test_the_hint_names_only_label_images_of_the_predictions_shape(evaluate_panel):
    viewer, panel = evaluate_panel  # predicted: the image "discs" has its mask
    viewer.add_image(np.zeros((64, 64), np.uint8), name="small mask")  # another image's
    viewer.add_image(discs_image(), name="other image")  # intensities, of the same shape
    assert panel.truth_picker.layer is None and panel.result.text() == ""
    viewer.add_image(disc_labels([255] * len(CENTRES)).astype(np.uint8), name="mask.png")
    assert panel.result.text().startswith("“mask.png” is an image layer")


def test_evaluate_without_an_image_truth_or_prediction_warns_and_errors_stay_errors(
    dock, notifications
):
    viewer, widget = dock
    panel = widget.predict.evaluation
    assert panel.run() is None  # no ground truth
    viewer.add_labels(disc_labels(range(1, len(CENTRES) + 1)), name="truth")
    assert panel.truth_picker.layer is viewer.layers["truth"]
    assert panel.run() is None  # nothing predicted
    refusals = [n for n in notifications if "first" in str(n.message)]
    assert [str(n.message).split(":")[0].split(".")[0] for n in refusals] == [
        "Choose an image and a ground-truth Labels layer first",
        "Run Predict on “discs” first",
    ]
    assert all(n.severity == NotificationSeverity.WARNING for n in refusals)
    perfect = np.where(disc_labels([1] * len(CENTRES)) > 0, 2, 1).astype(np.uint8)
    placement = {"scale": [1.0, 1.0], "translate": [0.0, 0.0]}
    show_output(viewer, viewer.layers["discs"], "mask", perfect, Labels, placement=placement)
    panel.kind.value = "semantic"
    assert panel.run() is None  # instance labels for 'semantic': a real error
    assert notifications[-1].severity == NotificationSeverity.ERROR


def _instances_against(viewer, panel, truth: np.ndarray, name: str):
    """Score the perfect instances of the discs (one label each) against ``truth``."""
    placement = {"scale": [1.0, 1.0], "translate": [0.0, 0.0]}
    instances = disc_labels(range(1, len(CENTRES) + 1))
    show_output(viewer, viewer.layers["discs"], "instances", instances, Labels, placement=placement)
    viewer.add_labels(truth, name=name)
    panel.truth_picker.combo.value = viewer.layers[name]
    panel.kind.value = "instances"
    return panel.run()


def test_instances_read_a_binary_truth_as_its_connected_components(evaluate_panel):
    viewer, panel = evaluate_panel
    scores = _instances_against(viewer, panel, disc_labels([1] * len(CENTRES)), "binary truth")
    at_half = next(row for row in scores["instances"] if row["threshold"] == 0.5)
    assert (at_half["tp"], at_half["fp"], at_half["fn"]) == (len(CENTRES), 0, 0)
    assert "connected components" in panel.result.text()


def test_instances_read_a_membrane_map_as_its_cells_and_name_the_membrane_metrics(
    evaluate_panel,
):
    viewer, panel = evaluate_panel
    membrane_map = np.where(disc_labels([1] * len(CENTRES)) > 0, 0, 255).astype(np.uint8)
    scores = _instances_against(viewer, panel, membrane_map, "isbi truth")
    assert scores["n_true"] == 1  # the background around the discs, one connected cell
    said = panel.result.text()
    assert "the membrane metrics give the challenge's errors" in said
    assert "errors))" not in said  # the note, in the panel's parentheses, has none of its own


def test_nothing_left_away_from_the_strokes_is_refused_not_scored_perfect(
    evaluate_panel, notifications
):
    from napari_unet._widgets._annotation_combo import IMAGE_KEY
    from napari_unet._widgets._layers import ANNOTATION_KEY

    viewer, panel = evaluate_panel
    painted = np.ones((128, 128), np.uint8)  # every pixel, as Start from the prediction does
    strokes = viewer.add_labels(painted, name="discs annotations")
    strokes.metadata.update({ANNOTATION_KEY: True, IMAGE_KEY: viewer.layers["discs"].unique_id})
    panel.away.value = True
    truth = disc_labels(range(1, len(CENTRES) + 1))
    assert _instances_against(viewer, panel, truth, "truth") is None
    assert "Nothing to score: no true object is left" in panel.result.text()
    assert notifications[-1].severity == NotificationSeverity.WARNING
    class_truth = np.where(truth > 0, 2, 1).astype(np.uint8)
    assert evaluate_against(viewer, panel, class_truth, "class truth") is None  # semantic
    assert "Nothing to score: no pixel of the ground truth is left" in panel.result.text()
    panel.truth_picker.combo.value = viewer.layers["truth"]
    panel.away.value = False
    panel.kind.value = "instances"
    assert panel.run()["instances"][0]["tp"] == len(CENTRES)


def test_no_object_on_either_side_says_nothing_to_match():
    from napari_unet._widgets._evaluate_text import format_scores
    from napari_unet.evaluation.metrics import evaluate

    empty = np.zeros((16, 16), np.int32)
    said = format_scores(evaluate(empty, empty, kind="instances"))
    assert said.startswith("No objects, neither true nor predicted") and "F1" not in said
    one = empty.copy()
    one[2:6, 2:6] = 1
    assert format_scores(evaluate(one, one, kind="instances")).startswith("At IoU 0.5: F1 1.000")


def test_another_image_gets_its_own_truth_not_the_last_ones_of_the_same_shape(dock):
    """ISBI's image/00.png, label/00.png, image/05.png, label/05.png open as "00", "00 [1]",
    "05", "05 [1]": choosing "05" must not keep "00 [1]" as its ground truth."""
    viewer, widget = dock
    panel = widget.predict.evaluation
    for name, seed in (("00", 0), ("05", 1)):
        viewer.add_image(discs_image(seed=seed), name=name)
        viewer.add_labels(disc_labels([1] * len(CENTRES)), name=f"{name} [1]")
    widget.predict.image_picker.combo.value = viewer.layers["00"]
    assert panel.truth_picker.layer is viewer.layers["00 [1]"]
    widget.predict.image_picker.combo.value = viewer.layers["05"]
    assert panel.truth_picker.layer is viewer.layers["05 [1]"]
    widget.predict.image_picker.combo.value = viewer.layers["discs"]  # no truth named for it
    assert panel.truth_picker.layer is viewer.layers["05 [1]"]  # kept: nothing closer


def test_a_truth_opened_after_its_image_replaces_another_images_truth(dock):
    """Opened one after the other, with no click: "05" is chosen while only "00 [1]" fits."""
    viewer, widget = dock
    panel = widget.predict.evaluation
    for name, seed in (("00", 0), ("05", 1)):
        viewer.add_image(discs_image(seed=seed), name=name)
        viewer.add_labels(disc_labels([1] * len(CENTRES)), name=f"{name} [1]")
    assert widget.predict.image_picker.layer is viewer.layers["05"]
    assert panel.truth_picker.layer is viewer.layers["05 [1]"]
    panel.truth_picker.combo.value = viewer.layers["00 [1]"]  # the user's choice holds
    panel.truth_picker._note_user_choice()
    viewer.add_labels(disc_labels([1] * len(CENTRES)), name="05 gt")
    assert panel.truth_picker.layer is viewer.layers["00 [1]"]

"""What the Predict section offers and says: tile sizes that fit the image in view, a
stack's progress and end, a failure, layers the status line named going away."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import discs_image, run
from napari_unet._widgets import _memory, _predict, model_state
from napari_unet._widgets._predict_controls import WHOLE_IMAGE
from napari_unet.core.inference import default_tile_size, tile_layout
from napari_unet.core.tile_choice import distinct_tile_sizes, whole_image_input

pytestmark = pytest.mark.gui


def recorded(monkeypatch) -> list:
    """Every update the next runs of Predict yield, recorded in the worker thread (a
    handler connected after the start could miss the first ones)."""
    updates: list = []
    real = _predict.predict_job

    def recording(request, stop):
        job = real(request, stop)
        try:
            while True:
                update = next(job)
                updates.append(update)
                yield update
        except StopIteration as end:
            return end.value

    monkeypatch.setattr(_predict, "predict_job", recording)
    return updates


def offered(predict) -> list[str]:
    """The tile-size combo box's items, as the user reads them."""
    combo = predict.tile_size.native
    return [combo.itemText(index) for index in range(combo.count())]


def test_the_tile_sizes_fit_the_image_in_view_and_follow_the_chosen_image(dock):
    viewer, widget = dock
    predict, model = widget.predict, model_state(viewer).model
    # the 128x128 discs: the model's default tile covers it, so Automatic is the whole image
    small = offered(predict)
    whole = whole_image_input(model, (128, 128))
    assert small[0] == "Automatic (whole image, 1 tile)"
    assert f"goes in as {whole[0]} px: the image with" in predict.tile_size.tooltip
    assert predict.tile_size.value == WHOLE_IMAGE and predict.predict_config().tile_size is None
    assert not any(text.startswith("whole image") for text in small)  # once, as Automatic
    values = predict.tile_size.choices
    layouts = {(tile_layout(model, (128, 128), size or None)[0]) for size in values}
    assert len(layouts) == len(values) == len(small)  # every item tiles it its own way
    assert all(0 < size < whole[0] for size in values[1:])  # none beyond the image
    counts = [choice.tiles for choice in distinct_tile_sizes(model, (128, 128), 1024)]
    assert small[1:] == [
        f"{size} px ({count:,} tile{'s' if count > 1 else ''})"
        for size, count in zip(values[1:], counts)
    ]
    predict.tile_size.value = values[1]  # a chosen size: kept as the tiling it stands for
    # a larger image is chosen: more sizes tile it, and the whole image is a choice of its own
    viewer.add_image(discs_image((1300, 1300)), name="large")
    assert predict.image_picker.layer is viewer.layers["large"]
    large = offered(predict)
    whole_large = whole_image_input(model, (1300, 1300))[0]
    assert len(large) > len(small) and large[-1] == "whole image (1 tile)"
    assert f"goes in as {whole_large} px: " in predict.tile_size.tooltip
    default = default_tile_size(model)  # at most 1024: the image needs several
    assert large[0].startswith("Automatic (") and large[0].endswith(" tiles)")
    most = max(choice.tiles for choice in distinct_tile_sizes(model, (1300, 1300), 1024))
    assert most >= 1000 and f"{most:,} tiles)" in " ".join(large)  # thousands separated
    assert tile_layout(model, (1300, 1300), predict.tile_size.choices[0]) == tile_layout(
        model, (1300, 1300), default
    )
    assert predict.tile_size.value == values[1]  # the smallest still tiles its own way
    predict.tile_size.native.setCurrentIndex(0)  # Automatic: follows the image
    predict.image_picker.combo.value = viewer.layers["discs"]
    assert predict.tile_size.value == WHOLE_IMAGE and offered(predict) == small


def test_a_stack_says_its_slices_as_napari_numbers_them(qtbot, dock, monkeypatch):
    viewer, widget = dock
    updates = recorded(monkeypatch)
    stack = np.stack([discs_image(seed=seed) for seed in range(3)])
    viewer.add_image(stack, name="stack")
    predict = widget.predict
    assert offered(predict)[1].endswith(" tiles a slice)")
    assert offered(predict)[0] == "Automatic (whole image, 1 tile a slice)"  # not 1 in all
    predict.tile_size.value = predict.tile_size.choices[-2]  # a few tiles a slice
    tiles = len(tile_layout(model_state(viewer).model, (128, 128), predict.tile_size.value)[1])
    assert tiles > 1
    run(qtbot, predict, predict.run_prediction)
    texts = [update.text for update in updates]
    for index in range(3):  # napari's slider shows "0 | 2" on the first slice
        assert f"Predicting slice {index} of 0–2: {tiles} of {tiles} tiles done" in texts
        assert f"Post-processing slice {index} of 0–2: instances…" in texts
    assert "Predicting slice 3 of 0–2" not in " ".join(texts) and "slice 1/3" not in texts
    fractions = [update.fraction for update in updates]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    post = [u.fraction for u in updates if u.stage == "post-processing"]
    assert 0 < post[0] < 1 and len(post) == 3 * 4  # mask, instances, weight map, uncertainty
    objects = int(viewer.layers["stack instances"].data.max())
    said = predict.status.text()
    assert said.startswith(
        f"Done with “tiny”: 3 slices, {objects} objects (numbered through the stack)."
    ), said
    bar = predict.progress
    assert bar.value() == bar.maximum() and bar.text() == "100%"


def test_one_tile_counts_as_done_when_it_is(qtbot, dock, monkeypatch):
    _viewer, widget = dock
    updates = recorded(monkeypatch)
    predict = widget.predict  # Automatic: the whole 128x128 image, one tile
    run(qtbot, predict, predict.run_prediction)
    texts = [update.text for update in updates]
    assert texts[:2] == ["Predicting in one tile", "Predicted in one tile"]
    assert (
        predict.status.text().startswith("Done with “tiny”: ")
        and "slices" not in predict.status.text()
    )


def test_a_failed_run_says_why_in_the_status_line(qtbot, dock, notifications, monkeypatch):
    _viewer, widget = dock

    def failing(request, stop):
        yield _predict.PredictionProgress(0.2, "Predicting 1 of 5 tiles done")
        raise ValueError("the tiles went astray")

    monkeypatch.setattr(_predict, "predict_job", failing)
    run(qtbot, widget.predict, widget.predict.run_prediction)
    said = widget.predict.status.text()
    assert said == "Failed: Prediction: the tiles went astray", said
    assert notifications[-1].message == "Prediction: the tiles went astray"
    bar = widget.predict.progress
    assert bar.value() == round(0.2 * bar.maximum()) and bar.text() == "Failed"


def test_the_status_line_goes_with_the_layers_it_names(qtbot, dock):
    viewer, widget = dock
    predict = widget.predict
    run(qtbot, predict, predict.run_prediction)
    assert "“discs mask”" in predict.status.text()
    viewer.layers.remove(viewer.layers["discs weight map"])
    said = predict.status.text()
    assert said == "“discs weight map” was removed; Run predicts “discs” again.", said
    viewer.layers.remove(viewer.layers["discs probabilities"])
    assert predict.status.text().startswith("“discs probabilities” was removed")
    viewer.add_labels(np.zeros((4, 4), np.uint8), name="unrelated")
    viewer.layers.remove(viewer.layers["unrelated"])  # not named: the line stays
    assert predict.status.text().startswith("“discs probabilities” was removed")
    viewer.layers.remove(viewer.layers["discs"])
    assert predict.status.text() == ""


def test_a_refusal_for_memory_names_a_tile_size_that_fits(dock, monkeypatch):
    viewer, widget = dock
    viewer.add_image(discs_image((600, 600)), name="large")
    predict = widget.predict
    predict.tile_size.value = WHOLE_IMAGE
    # room for the outputs and a smaller tile's activations, not the whole image's
    monkeypatch.setattr(_memory, "ACTIVATION_BYTES", 10_000)
    smallest = predict.tile_size.choices[1]
    free = {"bytes": 2**40}
    monkeypatch.setattr(_memory, "available_memory", lambda: free["bytes"])
    fits = [size for size in predict.tile_size.choices[1:] if size != WHOLE_IMAGE]
    needed = {}
    for size in fits:
        predict.tile_size.value = size
        request = _request_of(predict)
        needed[size] = _memory.output_bytes(2, (600, 600), True, True) + _memory.working_bytes(
            request
        )
    middle = sorted(fits)[len(fits) // 2]
    free["bytes"] = int(needed[middle] / _memory.MEMORY_SHARE) + 1
    predict.tile_size.value = WHOLE_IMAGE
    assert predict.run_prediction() is None
    said = predict.status.text()
    largest_fitting = max(size for size in fits if needed[size] <= needed[middle])
    assert said.startswith("Not started: not enough memory. Predicting “large” needs about")
    assert said.endswith(f" A tile size of {largest_fitting} px or smaller would fit."), said
    assert smallest <= largest_fitting


def _request_of(predict):
    """The request a run of ``predict`` would make (its image, settings, outputs)."""
    from napari_unet._widgets._geometry import ImageGeometry, image_data
    from napari_unet._widgets._predict_job import PredictionRequest

    image, model = predict.image_picker.layer, predict.state.model
    return PredictionRequest(
        model=model,
        data=image_data(image),
        geometry=ImageGeometry.of(image, model.config.in_channels),
        config=predict.predict_config(),
        with_weights=predict.with_weights.value,
        with_uncertainty=predict.with_uncertainty.value,
    )


def test_the_words_for_a_stack_name_totals_and_slices_as_napari_does():
    from napari_unet._widgets._predict_job import PredictionProgress
    from napari_unet._widgets._predict_text import (
        cancelled_bar_text,
        cancelled_text,
        changes_sentence,
        slice_words,
    )

    assert slice_words((5,), (20,)) == "5 of 0–19"
    assert slice_words((1, 5), (2, 20)) == "1, 5 of 0–1, 0–19"
    described = "since the last mask 3 objects split, 1 joined"
    assert changes_sentence(described, 1, "") == " Since the last mask 3 objects split, 1 joined."
    marked = " (marked in “stack changes”)"
    assert changes_sentence(described, 20, marked) == (
        " Over all 20 slices, since the last mask 3 objects split, 1 joined"
        " (marked in “stack changes”)."
    )
    kept = "; the output layers were left as they were."
    among_tiles = PredictionProgress(0.3, "", "tiles", 5, 20, 3, 12)
    assert cancelled_text(among_tiles) == (
        "Cancelled after 5 of 20 slices (and 3 of 12 tiles of slice 5)" + kept
    )
    assert cancelled_bar_text(among_tiles) == "Cancelled after 5 of 20 slices"
    post = PredictionProgress(0.9, "", "post-processing", 4, 20)
    assert cancelled_text(post) == (
        "Cancelled while post-processing (all 20 slices predicted, 4 of 20 slices "
        "post-processed)" + kept
    )
    assert cancelled_bar_text(post) == "Cancelled while post-processing"
    assert cancelled_text(None) == "Cancelled before the first tile was predicted" + kept


def test_a_tile_size_not_offered_is_chosen_as_the_one_that_tiles_alike(dock):
    viewer, widget = dock
    predict, model = widget.predict, model_state(viewer).model
    viewer.add_image(discs_image((1300, 1300)), name="large")
    offered_sizes = [size for size in predict.tile_size.choices if size]
    asked = next(
        size
        for size in range(offered_sizes[0], 1024, model.size_multiple)
        if model.is_valid_input_size(size) and size not in offered_sizes
    )
    chosen = predict.choose_tile_size(asked)
    assert chosen in offered_sizes and chosen < asked and predict.tile_size.value == chosen
    assert tile_layout(model, (1300, 1300), chosen) == tile_layout(model, (1300, 1300), asked)
    assert predict.choose_tile_size(None) == WHOLE_IMAGE
    assert predict.tile_size.native.currentText().startswith("whole image")

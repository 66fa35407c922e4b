"""Predicting after a fine-tune keeps the last mask's separations (core.continuity)."""

from types import SimpleNamespace

import numpy as np
import pytest
from scipy import ndimage

from helpers import MERGED, SEPARATED, touching_pair
from napari_unet.core import continuity
from napari_unet.core.continuity import continues, kept_separations, lineage
from napari_unet.core.postprocess import instance_labels, prediction_mask


def count(mask: np.ndarray) -> int:
    return int(instance_labels(mask).max())


def test_the_reference_masks():
    assert count(SEPARATED) == 2
    assert count(MERGED) == 1


def test_a_separation_of_the_last_mask_is_kept_while_the_band_stands_out():
    faint = touching_pair(0.16)  # contrast about 0.15: below a new line's 0.2
    assert count(prediction_mask(faint)) == 1
    kept = prediction_mask(faint, previous=SEPARATED)
    assert count(kept) == 2
    changed = kept != prediction_mask(faint)
    assert 0 < changed.sum() <= 12  # one line of about 9 pixels across the contact
    assert set(np.unique(kept[changed])) == {1}  # only background was added


def test_no_separation_is_invented_or_kept_without_evidence():
    faint = touching_pair(0.16)
    assert count(prediction_mask(faint, previous=MERGED)) == 1  # never separated before
    gone = touching_pair(0.05)  # the band has faded below half the contrast
    assert count(prediction_mask(gone, previous=SEPARATED)) == 1


def test_an_object_stroke_on_the_line_drops_it():
    faint = touching_pair(0.16)
    strokes = np.zeros(SEPARATED.shape, np.uint8)
    strokes[15:25, 29] = 2  # the user paints "nucleus" across the contact
    assert count(prediction_mask(faint, previous=SEPARATED, annotation=strokes)) == 1
    strokes[15:25, 29] = 1  # a background stroke keeps it
    assert count(prediction_mask(faint, previous=SEPARATED, annotation=strokes)) == 2


def test_kept_lines_are_left_to_the_closing_when_it_draws_them():
    strong = touching_pair(0.3)
    assert not kept_separations(strong[0], SEPARATED).any()
    assert count(prediction_mask(strong, previous=SEPARATED)) == 2


def overlapping_pair(band: float) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities (2, 40, 60) of two discs whose centres are 8 px apart (no waist: one
    distance maximum), ``band`` along the 3 px where they overlap; and a last mask that
    showed them as two objects, one background line apart."""
    rows, columns = np.mgrid[:40, :60]
    both = (np.hypot(rows - 20, columns - 25) <= 10) | (np.hypot(rows - 20, columns - 33) <= 10)
    background = np.where(both, 0.05, 0.95).astype(np.float32)
    background[both & (np.abs(columns - 29) <= 1)] = band
    last = np.where(both, 2, 1).astype(np.uint8)
    last[both & (columns == 29)] = 1
    return np.stack([background, 1 - background]), last


def test_overlapping_objects_without_a_waist_stay_apart_while_the_band_shows():
    faint, last = overlapping_pair(0.3)  # below 0.5: the closing sees one object
    assert count(prediction_mask(faint)) == 1 and count(last) == 2
    assert count(prediction_mask(faint, previous=last)) == 2
    gone, _ = overlapping_pair(0.1)  # 0.05 above the inside: no longer a boundary
    assert count(prediction_mask(gone, previous=last)) == 1


def test_the_previous_mask_must_have_the_image_shape():
    with pytest.raises(ValueError, match="previous mask"):
        kept_separations(touching_pair(0.16)[0], SEPARATED[:, :50])


def test_only_objects_holding_two_last_objects_are_flooded():
    objects = np.zeros((5, 12), bool)
    objects[:, 0:3] = objects[:, 4:6] = objects[:, 7:9] = objects[:, 10:12] = True
    seeds = np.zeros(objects.shape, np.int32)
    seeds[0, 0], seeds[4, 2] = 1, 2  # two last objects in the first object
    seeds[2, 4] = 2  # a part of last object 2 in the second
    seeds[2, 7] = 3  # one last object alone in the third; none in the fourth
    flooded = continuity._flooded(objects, seeds)
    expected = np.zeros(objects.shape, bool)
    expected[:, 0:3] = expected[:, 4:6] = True
    np.testing.assert_array_equal(flooded, expected)


def test_flooding_only_those_draws_the_lines_of_flooding_every_object(monkeypatch):
    touching, overlapping, last_overlapping = touching_pair(0.16), *overlapping_pair(0.3)
    lone = touching_pair(0.0)
    lone[:, :, 30:] = [[[0.95]], [[0.05]]]  # one disc, apart from the rest
    probabilities = np.concatenate([touching, overlapping, lone], axis=2)
    # no two pixels equal: the watershed's order among ties is its own (heap order)
    probabilities[0] += np.random.default_rng(0).uniform(0, 1e-3, probabilities[0].shape)
    last = np.concatenate([SEPARATED, last_overlapping, prediction_mask(lone)], axis=1)
    lines = continuity.closing_lines(probabilities[0], last)
    objects = probabilities[0] < 0.5
    seeds, _ = ndimage.label(last >= 2)
    assert 0 < continuity._flooded(objects, seeds).sum() < objects.sum()  # the lone disc is not
    monkeypatch.setattr(continuity, "_flooded", lambda objects, seeds: objects)
    np.testing.assert_array_equal(lines, continuity.closing_lines(probabilities[0], last))
    assert count(np.where(lines, 1, np.where(objects, 2, 1))) == 5  # both pairs kept apart


def model_with(*runs: str) -> SimpleNamespace:
    return SimpleNamespace(metadata={"training_history": [{"date": run} for run in runs]})


def test_lineage_fingerprints_the_runs():
    assert lineage(model_with()) == []
    assert lineage(SimpleNamespace()) == []
    first, second = lineage(model_with("a", "b"))
    assert first == lineage(model_with("a"))[0] and first != second


@pytest.mark.parametrize(
    ("mask_model", "model", "expected"),
    [
        (("a",), ("a",), True),  # the same model predicts again
        (("a",), ("a", "b"), True),  # fine-tuned from the mask's model
        (("a", "b"), ("a", "c"), True),  # a sibling: the Fine-tune section restarts from the base
        (("a", "b"), ("a", "b", "c"), True),  # trained further
        (("a", "b"), ("a",), False),  # went back to the base: its own mask again
        (("a",), ("x", "b"), False),  # another model
        ((), ("a",), False),  # the mask of a model never trained
    ],
)
def test_which_mask_counts_as_the_last_one(mask_model, model, expected):
    assert continues(lineage(model_with(*mask_model)), model_with(*model)) is expected

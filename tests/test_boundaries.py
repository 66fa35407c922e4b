"""Closing gaps in predicted boundaries (core.boundaries, postprocess.prediction_mask)."""

import numpy as np
import pytest
from scipy import ndimage

from napari_unet.core.boundaries import separating_lines
from napari_unet.core.postprocess import class_mask, instance_labels, prediction_mask


def _two_cells_with_a_gap(gap: int) -> np.ndarray:
    """Boundary probability (Y, X): a frame and a vertical membrane with a gap.

    Two 40 x 40 cells; the membrane between them (3 px wide, p = 0.9) has a hole of
    ``gap`` rows where the probability is only 0.4, below the 0.5 of the class mask.
    """
    boundary = np.full((46, 86), 0.05, np.float32)
    boundary[:3], boundary[-3:], boundary[:, :3], boundary[:, -3:] = 0.95, 0.95, 0.95, 0.95
    boundary[:, 42:45] = 0.9
    boundary[20 : 20 + gap, 42:45] = 0.4
    return boundary


def _probabilities(boundary: np.ndarray) -> np.ndarray:
    return np.stack([boundary, 1 - boundary])


def test_a_gap_in_a_membrane_is_closed_and_the_cells_separate():
    probabilities = _probabilities(_two_cells_with_a_gap(gap=6))
    plain = instance_labels(class_mask(probabilities))
    closed_mask = prediction_mask(probabilities)
    closed = instance_labels(closed_mask)
    assert plain.max() == 1  # the gap merges the cells
    assert closed.max() == 2
    # only gap pixels changed, and only to background
    changed = closed_mask != class_mask(probabilities)
    assert changed.any() and np.all(closed_mask[changed] == 1)
    assert np.all(changed[:, :42] == 0) and np.all(changed[:, 45:] == 0)
    assert changed.sum() <= 2 * 6  # a one-pixel line through a 6-row gap


def test_one_object_with_two_seeds_but_no_boundary_stays_whole():
    # a dumbbell: two discs joined by a narrow neck, with no raised boundary probability
    yy, xx = np.mgrid[:60, :120]
    objects = ((yy - 30) ** 2 + (xx - 30) ** 2 < 22**2) | ((yy - 30) ** 2 + (xx - 90) ** 2 < 22**2)
    objects |= (np.abs(yy - 30) < 4) & (xx > 30) & (xx < 90)
    boundary = np.where(objects, 0.02, 0.98).astype(np.float32)
    assert separating_lines(boundary, min_contrast=0).any()  # two seeds: a line at the neck
    assert not (separating_lines(boundary) & objects).any()  # the weak line merges away
    assert instance_labels(prediction_mask(_probabilities(boundary))).max() == 1


def test_lines_keep_the_basins_apart_in_4_connectivity():
    rng = np.random.default_rng(0)
    boundary = ndimage.gaussian_filter(rng.random((80, 80)), 3)
    boundary = (boundary - boundary.min()) / (boundary.max() - boundary.min())
    objects = boundary < 0.5
    lines = separating_lines(boundary, min_contrast=0)
    assert lines.shape == boundary.shape and lines.dtype == bool
    assert not (lines & ~objects).any()  # lines run inside objects only
    _, n_before = ndimage.label(objects)
    _, n_after = ndimage.label(objects & ~lines)
    assert n_after > n_before


def test_no_lines_without_two_objects_and_2d_only():
    assert not separating_lines(np.full((20, 20), 0.9)).any()
    assert not separating_lines(np.full((20, 20), 0.1)).any()
    with pytest.raises(ValueError, match="Y, X"):
        separating_lines(np.zeros((2, 20, 20)))


def test_prediction_mask_without_closing_is_the_class_mask():
    probabilities = _probabilities(_two_cells_with_a_gap(gap=6))
    np.testing.assert_array_equal(
        prediction_mask(probabilities, close_boundaries=False), class_mask(probabilities)
    )


def _cells(shape=(200, 260), seed=0) -> np.ndarray:
    """Boundary probability of a field of cells with gaps in their membranes."""
    rng = np.random.default_rng(seed)
    centres = rng.integers(0, shape, size=(40, 2))
    distance = ndimage.distance_transform_edt(
        ~np.isin(np.arange(np.prod(shape)).reshape(shape), np.ravel_multi_index(centres.T, shape)),
        return_indices=True,
    )[1]
    owner = np.ravel_multi_index(distance, shape)
    membrane = np.zeros(shape, bool)
    membrane[:, :-1] |= owner[:, :-1] != owner[:, 1:]
    membrane[:-1, :] |= owner[:-1, :] != owner[1:, :]
    membrane = ndimage.binary_dilation(membrane)
    probability = np.where(membrane, 0.9, 0.05).astype(np.float32)
    for y, x in np.argwhere(membrane)[rng.choice(membrane.sum(), 30, replace=False)]:
        window = (slice(max(y - 3, 0), y + 4), slice(max(x - 3, 0), x + 4))
        probability[window][membrane[window]] = 0.35  # a faint gap in the membrane
    return probability


def test_closing_block_by_block_matches_the_whole_plane():
    from napari_unet.evaluation.matching import match_instances
    from napari_unet.io.chunked_refine import close_gaps_chunked

    boundary = _cells()
    probabilities = _probabilities(boundary)
    whole = prediction_mask(probabilities)
    # 40 cells, but their faint gaps join them into 17 objects until closed
    assert instance_labels(class_mask(probabilities)).max() < 20
    assert instance_labels(whole).max() == 40
    blocked = class_mask(probabilities)
    close_gaps_chunked(boundary, blocked, block=(64, 48))
    # the same cells; a line may take another pixel where a basin's mean differs
    scores = match_instances(instance_labels(blocked), instance_labels(whole), threshold=0.9)
    assert scores["f1"] == 1.0
    assert np.count_nonzero(blocked != whole) <= 0.001 * whole.size
    exact = class_mask(probabilities)
    close_gaps_chunked(boundary, exact, block=(64, 48), halo=128)  # context for every cell
    np.testing.assert_array_equal(exact, whole)


def test_three_classes_only_gain_background_lines():
    boundary = _two_cells_with_a_gap(gap=6)
    probabilities = np.stack([boundary, 0.8 * (1 - boundary), 0.2 * (1 - boundary)])
    closed, plain = prediction_mask(probabilities), class_mask(probabilities)
    assert closed.dtype == np.uint8 and set(np.unique(plain)) == {1, 2}
    changed = closed != plain
    assert changed.any() and np.all(closed[changed] == 1)
    assert instance_labels(closed).max() == 2 and instance_labels(plain).max() == 1


def _band_across(objects: np.ndarray, column: int) -> np.ndarray:
    """Boundary probability (Y, X): ``objects`` at 0.05, outside 0.95, and a faint
    vertical band (0.4, with two enclosed spots of 0.55) across them at ``column``."""
    boundary = np.where(objects, 0.05, 0.95).astype(np.float32)
    band = objects & (np.abs(np.arange(objects.shape[1]) - column) <= 1)[None, :]
    boundary[band] = 0.4
    rows = np.flatnonzero(band.any(axis=1))
    for row in (rows[len(rows) // 3], rows[2 * len(rows) // 3]):
        boundary[row - 1 : row + 2, column - 1 : column + 2] = 0.55
    return boundary


def test_a_faint_band_across_one_convex_object_does_not_cut_it():
    yy, xx = np.mgrid[:50, :70]
    nucleus = ((yy - 25) / 18.0) ** 2 + ((xx - 35) / 28.0) ** 2 < 1  # no waist
    boundary = _band_across(nucleus, 35)
    assert separating_lines(boundary, max_solidity=2.0).any()  # contrast alone cuts
    assert not separating_lines(boundary).any()
    assert instance_labels(prediction_mask(_probabilities(boundary))).max() == 1


def test_the_same_band_between_two_touching_discs_still_separates_them():
    yy, xx = np.mgrid[:50, :80]
    discs = ((yy - 25) ** 2 + (xx - 24) ** 2 < 17**2) | ((yy - 25) ** 2 + (xx - 54) ** 2 < 17**2)
    boundary = _band_across(discs, 39)  # where they touch: a waist
    assert separating_lines(boundary).any()
    assert instance_labels(prediction_mask(_probabilities(boundary))).max() == 2


def test_box_cells_stay_apart_across_a_membrane_with_gaps_at_both_ends():
    boundary = _two_cells_with_a_gap(gap=0)
    boundary[3:8, 42:45] = 0.4  # gaps where the membrane meets the frame, above and below:
    boundary[-8:-3, 42:45] = 0.4  # the rest of it is enclosed by the two cells, and sure
    lines = separating_lines(boundary)
    assert lines[3:8, 42:45].any() and lines[-8:-3, 42:45].any()
    assert instance_labels(prediction_mask(_probabilities(boundary))).max() == 2

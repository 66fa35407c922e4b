"""Tests for napari_unet.core.postprocess."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import warnings_as_errors
from napari_unet.core.postprocess import (
    MIN_INSTANCE_SIZE,
    class_mask,
    fill_instance_holes,
    instance_labels,
    remove_small_instances,
)


def _disc(shape: tuple[int, int], center: tuple[float, float], radius: float) -> np.ndarray:
    rows, cols = np.indices(shape)
    return (rows - center[0]) ** 2 + (cols - center[1]) ** 2 <= radius**2


def test_class_mask_is_argmax_plus_one():
    probabilities = np.zeros((3, 2, 2), dtype=np.float32)
    probabilities[0, 0, 0] = 0.9  # -> label 1
    probabilities[1, 0, 1] = 0.8  # -> label 2
    probabilities[2, 1, :] = 0.7  # -> label 3
    probabilities[1, 1, 0] = 0.1
    mask = class_mask(probabilities)
    assert mask.dtype == np.uint8
    # pixel (0, 1) wins class index 1; pixel (1, 1) class index 2
    np.testing.assert_array_equal(mask, [[1, 2], [3, 3]])


def test_class_mask_rejects_2d_input():
    with pytest.raises(ValueError, match=r"\(C, Y, X\)"):
        class_mask(np.zeros((4, 4)))


def test_components_label_each_class_separately():
    mask = np.ones((6, 8), dtype=np.uint8)
    mask[0:2, 0:2] = 2  # object 1, class 2
    mask[0:2, 2:4] = 3  # touches object 1 but is class 3
    mask[4:6, 5:8] = 2  # object 2 of class 2
    mask[5, 0] = 2  # a single pixel
    labels = instance_labels(mask, min_size=0)
    assert labels.dtype == np.uint32
    assert labels.max() == 4
    assert np.array_equal(np.unique(labels), np.arange(5))
    assert len(np.unique(labels[0:2, 0:2])) == 1
    assert labels[0, 0] != labels[0, 2]
    small_removed = instance_labels(mask, min_size=2)
    assert small_removed.max() == 3 and small_removed[5, 0] == 0
    only_class_3 = instance_labels(mask, foreground_classes=[3], min_size=0)
    assert only_class_3.max() == 1 and np.count_nonzero(only_class_3) == 4


def test_connectivity_two_joins_diagonal_neighbours():
    mask = np.ones((3, 3), dtype=np.uint8)
    mask[0, 0] = mask[1, 1] = 2
    assert instance_labels(mask, min_size=0).max() == 2
    assert instance_labels(mask, connectivity=2, min_size=0).max() == 1


def test_objects_below_the_default_size_are_no_instances():
    mask = np.ones((30, 30), dtype=np.uint8)
    mask[2:6, 2:6] = 2  # 16 px: kept
    mask[20:22, 20:27] = 2  # 14 px: a speck
    labels = instance_labels(mask)
    assert MIN_INSTANCE_SIZE == 15
    assert labels.max() == 1 and labels[3, 3] == 1 and not labels[20:22, 20:27].any()
    assert instance_labels(mask, min_size=0).max() == 2


def test_watershed_splits_touching_discs():
    shape = (40, 60)
    mask = np.ones(shape, dtype=np.uint8)
    mask[_disc(shape, (20, 20), 9) | _disc(shape, (20, 36), 9)] = 2
    mask[_disc(shape, (6, 52), 3)] = 2  # a small separate object keeps its label
    assert instance_labels(mask).max() == 2
    labels = instance_labels(mask, method="watershed", min_distance=5)
    assert labels.max() == 3
    assert labels[20, 20] != labels[20, 36]
    assert np.all(labels[mask == 2] > 0) and np.all(labels[mask == 1] == 0)


def test_watershed_never_joins_objects_that_touch_only_at_a_corner():
    """Seeds of two 4-connected objects meeting at a corner were numbered together."""
    mask = np.ones((12, 12), np.uint8)
    mask[1:6, 1:6] = mask[6:11, 6:11] = 2  # (5, 5) and (6, 6) touch diagonally
    mask[0, 11] = mask[1, 10] = 2  # two single pixels, diagonal too
    labels = instance_labels(mask, method="watershed", min_size=0, connectivity=1)
    assert labels.max() == 4
    assert len({labels[3, 3], labels[8, 8], labels[0, 11], labels[1, 10]}) == 4


def test_instance_labels_accepts_probabilities_and_bool():
    foreground = _disc((20, 20), (10, 10), 5)
    probabilities = np.stack([~foreground, foreground]).astype(np.float32)
    from_probabilities = instance_labels(probabilities)
    from_bool = instance_labels(foreground)
    assert from_probabilities.max() == from_bool.max() == 1
    np.testing.assert_array_equal(from_probabilities > 0, foreground)


def test_instance_labels_rejects_unknown_method():
    with pytest.raises(ValueError, match="method"):
        instance_labels(np.ones((4, 4), dtype=np.uint8), method="magic")


def test_remove_small_instances_renumbers_consecutively():
    labels = np.array([[0, 5, 5], [9, 0, 3], [3, 3, 0]])
    result = remove_small_instances(labels, min_size=2)
    np.testing.assert_array_equal(result, [[0, 2, 2], [0, 0, 1], [1, 1, 0]])


def _hand_written_remove_small_instances(labels: np.ndarray, min_size: int) -> np.ndarray:
    """The numpy version that skimage's remove_small_objects + relabel_sequential replaced."""
    labels = np.asarray(labels)
    if labels.size == 0:
        return labels.astype(np.uint32)
    sizes = np.bincount(labels.ravel().astype(np.int64))
    keep = sizes >= max(min_size, 1)
    keep[0] = False
    new_ids = np.zeros(sizes.size, dtype=np.uint32)
    new_ids[keep] = np.arange(1, int(keep.sum()) + 1, dtype=np.uint32)
    return new_ids[labels]


def _examples() -> list[np.ndarray]:
    rng = np.random.default_rng(3)
    blobs = instance_labels(rng.random((64, 64)) > 0.55, connectivity=1)  # sizes 1 to ~100
    gaps = np.where(blobs > 0, blobs * 7 + 3, 0).astype(np.int64)  # unused ids between
    stack = rng.integers(0, 40, size=(3, 16, 16)).astype(np.uint16)  # nD, split instances
    one = np.zeros((8, 8), np.uint32)
    one[2:4, 2:5] = 1  # a single instance of 6 pixels (skimage warns about one label)
    return [blobs, gaps, stack, one, one.astype(bool), np.zeros((0, 5), np.int32)]


@pytest.mark.parametrize("example", range(6))
@pytest.mark.parametrize("min_size", [0, 1, 2, 6, 7, 30, 1000])
def test_remove_small_instances_equals_the_hand_written_version(example, min_size):
    labels = _examples()[example]
    with warnings_as_errors():  # nothing to warn about, even for one instance
        result = remove_small_instances(labels, min_size)
    if labels.dtype == bool:  # the hand-written version failed on bool (it indexed with it)
        labels = labels.astype(np.uint8)
    expected = _hand_written_remove_small_instances(labels, min_size)
    assert result.dtype == np.uint32
    np.testing.assert_array_equal(result, expected)


def test_holes_enclosed_by_one_instance_join_it():
    labels = np.zeros((20, 30), np.uint32)
    labels[2:12, 2:12] = 1
    labels[5:8, 5:8] = 0  # a hole of object 1
    labels[2:12, 14:20] = 2
    labels[2:12, 21:27] = 3
    labels[2:12, 20] = 0  # background between 2 and 3, open at both ends: no hole
    labels[14:19, 2:12] = 4
    labels[16, 4:10] = 0  # a slot cut in from nowhere: enclosed, filled
    labels[15:18, 14:19] = 5
    filled = fill_instance_holes(labels)
    assert filled.dtype == labels.dtype and labels[6, 6] == 0  # a copy
    assert (filled[5:8, 5:8] == 1).all()
    assert (filled[2:12, 20] == 0).all()
    assert (filled[16, 4:10] == 4).all()
    np.testing.assert_array_equal(filled[filled != labels], [1] * 9 + [4] * 6)


def test_a_pixel_enclosed_by_nested_objects_joins_the_inner_one():
    labels = np.zeros((15, 15), np.uint32)
    labels[1:14, 1:14] = 1  # outer ring
    labels[3:12, 3:12] = 0
    labels[4:11, 4:11] = 2  # inner ring inside the hole
    labels[6:9, 6:9] = 0
    filled = fill_instance_holes(labels)
    assert (filled[6:9, 6:9] == 2).all()  # the inner object's hole
    assert (filled[3, 3:12] == 1).all()  # the gap between the rings is the outer one's hole
    mask = np.where(labels > 0, 2, 1).astype(np.uint8)
    assert instance_labels(mask, min_size=0)[7, 7] > 0
    assert instance_labels(mask, min_size=0, fill_holes=False)[7, 7] == 0

import numpy as np
import pytest

from napari_unet.evaluation.review import class_changes, uncertainty


def test_uncertainty_is_zero_when_certain_and_one_when_uniform():
    probabilities = np.zeros((3, 2, 2), np.float32)
    probabilities[0, 0, 0] = 1.0
    probabilities[1, 0, 1] = 1.0
    probabilities[:, 1, :] = 1 / 3
    result = uncertainty(probabilities)
    assert result.shape == (2, 2) and result.dtype == np.float32
    np.testing.assert_allclose(result, [[0, 0], [1, 1]], atol=1e-6)


def test_uncertainty_of_two_classes_matches_binary_entropy():
    p = np.array([0.9, 0.1], np.float32).reshape(2, 1, 1)
    expected = -(0.9 * np.log(0.9) + 0.1 * np.log(0.1)) / np.log(2)
    assert uncertainty(p)[0, 0] == pytest.approx(expected, rel=1e-5)


def test_uncertainty_refuses_a_single_class():
    with pytest.raises(ValueError, match="C >= 2"):
        uncertainty(np.ones((1, 4, 4)))


def test_class_changes_counts_pixels_gained_per_class():
    before = np.array([[1, 1, 2], [2, 2, 1]], np.uint8)
    after = np.array([[1, 2, 2], [1, 2, 3]], np.uint8)
    changes = class_changes(before, after)
    assert (changes.total, changes.changed) == (6, 3)
    assert changes.gained == {1: 1, 2: 1, 3: 1}
    text = changes.describe({1: "background", 2: "nucleus"})
    assert text.startswith("3 pixels (50 %) changed class")
    assert "1 to nucleus" in text and "1 to class 3" in text


def test_class_changes_without_change_and_with_wrong_shapes():
    mask = np.ones((4, 4), np.uint8)
    assert class_changes(mask, mask).describe() == "no pixel changed class (of 16)"
    with pytest.raises(ValueError, match="differ in shape"):
        class_changes(mask, mask[:2])

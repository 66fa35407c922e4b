"""Tests of the loss weight map (eq. 2 of the paper) and the annotation helpers."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from helpers import warnings_as_errors
from napari_unet.config import WeightConfig
from napari_unet.core.postprocess import instance_labels
from napari_unet.io.volumes import slice_instances
from napari_unet.training.weights import (
    annotation_from_binary,
    annotation_from_instances,
    border_term,
    border_term_reference,
    class_weights,
    separate_touching,
    weight_map,
)


def random_objects(rng: np.random.Generator, size: int = 96, count: int = 15) -> np.ndarray:
    """Instance image with random discs and squares, some touching or cut by the border."""
    instances = np.zeros((size, size), np.int32)
    rows, cols = np.mgrid[:size, :size]
    for object_id in range(1, count + 1):
        cy, cx = rng.integers(-3, size + 3, 2)
        radius = int(rng.integers(2, 9))
        if object_id % 2:
            shape = (rows - cy) ** 2 + (cols - cx) ** 2 <= radius**2
        else:
            shape = (abs(rows - cy) <= radius) & (abs(cols - cx) <= radius)
        instances[shape] = object_id
    # a guaranteed touching pair in the middle
    instances[40:50, 30:40] = count + 1
    instances[40:50, 40:50] = count + 2
    return instances


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(("w0", "sigma"), [(10.0, 5.0), (5.0, 3.0)])
def test_fast_border_term_equals_reference(seed, w0, sigma):
    instances = random_objects(np.random.default_rng(seed))
    mask = np.random.default_rng(seed + 10).random(instances.shape) < 0.7
    for m in (None, mask):
        fast = border_term(instances, w0, sigma, mask=m)
        reference = border_term_reference(instances, w0, sigma, mask=m)
        assert fast.dtype == np.float32 and fast.shape == instances.shape
        np.testing.assert_allclose(fast, reference, rtol=0, atol=1e-5)
        assert reference.max() > 0.5 * w0  # the comparison is not trivial


def test_fast_border_term_truncation_is_below_tolerance():
    # small sigma (R = 2 sqrt(2 ln 1e7) = 11.4 px) and gaps of 2..40 px between squares:
    # some second-nearest objects are just inside, some just outside the grown boxes
    instances = np.zeros((60, 400), np.int32)
    left = 0
    for object_id, gap in enumerate(range(2, 42, 3), start=1):
        instances[20:25, left : left + 5] = object_id
        instances[30 + object_id % 3 : 35 + object_id % 3, left + 2 : left + 7] = 100 + object_id
        left += 5 + gap
    fast = border_term(instances, 10.0, 2.0)
    reference = border_term_reference(instances, 10.0, 2.0)
    truncated = (fast == 0) & (reference > 0)
    assert truncated.any()
    assert reference[truncated].max() < 1e-6
    np.testing.assert_allclose(fast, reference, rtol=0, atol=1e-6)


def test_border_term_non_consecutive_and_huge_ids():
    instances = np.zeros((40, 40), np.int64)
    instances[10:20, 5:15] = 7
    instances[10:20, 17:27] = 10**9
    reference = border_term_reference(instances, 10.0, 5.0)
    np.testing.assert_allclose(border_term(instances, 10.0, 5.0), reference, atol=1e-5)
    # column 15 of the 2-pixel gap is 1 pixel from one object and 2 from the other
    assert reference[15, 15] == pytest.approx(10.0 * np.exp(-9.0 / 50.0), rel=1e-6)


@pytest.mark.parametrize("count", [0, 1])
def test_fewer_than_two_objects_give_no_border_term(count):
    instances = np.zeros((32, 32), np.int32)
    if count:
        instances[5:10, 5:10] = 3
    assert not border_term(instances, 10.0, 5.0).any()
    assert not border_term_reference(instances, 10.0, 5.0).any()
    labels = np.where(instances > 0, 2, 1)
    np.testing.assert_array_equal(weight_map(labels), class_weights(labels))


def test_unlabelled_pixels_have_zero_weight():
    labels = np.ones((30, 30), np.uint8)
    labels[5:12, 5:12] = 2
    labels[5:12, 13:20] = 2
    labels[:, 25:] = 0
    labels[13, 12] = 0  # an unlabelled pixel right next to both objects
    weights = weight_map(labels)
    assert weights.dtype == np.float32
    assert np.all(weights[labels == 0] == 0)
    assert np.all(weights[labels > 0] > 0)


def test_class_balance_by_hand():
    labels = np.zeros((20, 20), np.int32)
    labels[0:5, :] = 2  # 100 foreground pixels (one object)
    labels[5:15, :] = 1  # 200 background pixels
    # rows 15..19 stay unlabelled (100 pixels)
    weights = weight_map(labels, WeightConfig(class_balance=True))
    # n_labelled = 300, two classes: w(k) = 300 / (2 * count_k)
    np.testing.assert_allclose(weights[labels == 1], 300 / (2 * 200), rtol=1e-6)
    np.testing.assert_allclose(weights[labels == 2], 300 / (2 * 100), rtol=1e-6)
    assert weights[labels > 0].mean() == pytest.approx(1.0, rel=1e-6)
    assert np.all(weights[labels == 0] == 0)
    unbalanced = weight_map(labels, WeightConfig(class_balance=False))
    np.testing.assert_array_equal(unbalanced, (labels > 0).astype(np.float32))


def test_class_weights_three_classes_mean_one():
    labels = np.random.default_rng(3).choice([0, 1, 2, 3], p=[0.2, 0.6, 0.15, 0.05], size=(50, 50))
    weights = class_weights(labels)
    assert weights[labels > 0].mean() == pytest.approx(1.0, rel=1e-5)
    assert weights[labels == 3][0] > weights[labels == 2][0] > weights[labels == 1][0]


def test_border_term_peaks_in_one_pixel_gap():
    labels = np.ones((40, 41), np.uint8)
    labels[10:30, 5:20] = 2
    labels[10:30, 21:36] = 2  # column 20 is a 1-pixel background gap
    config = WeightConfig(w0=10.0, sigma=5.0)
    weights = weight_map(labels, config)
    background_weight = class_weights(labels)[0, 0]
    expected = background_weight + 10.0 * np.exp(-((1 + 1) ** 2) / (2 * 5.0**2))
    np.testing.assert_allclose(weights[12:28, 20], expected, rtol=1e-6)
    border = weights - class_weights(labels)
    assert border.max() == pytest.approx(expected - background_weight, rel=1e-6)
    assert np.unravel_index(border.argmax(), border.shape)[1] == 20
    assert np.all(border[labels == 2] == 0)  # only on background pixels


def test_explicit_instances_separate_touching_objects_of_one_class():
    labels = np.ones((30, 30), np.int32)
    labels[5:15, 5:25] = 2  # two touching objects: one connected component
    instances = np.zeros_like(labels)
    instances[5:15, 5:15] = 1
    instances[5:15, 15:25] = 2
    plain = weight_map(labels)
    np.testing.assert_array_equal(plain, class_weights(labels))
    with_instances = weight_map(labels, instances=instances)
    assert with_instances[labels == 1].max() > plain[labels == 1].max() + 1.0
    np.testing.assert_array_equal(with_instances[labels == 2], plain[labels == 2])


def test_touching_objects_of_two_classes_are_two_objects_by_default():
    labels = np.ones((20, 30), np.int32)
    labels[5:15, 3:14], labels[5:15, 14:25] = 2, 3  # touching along a column
    per_class = np.where(labels >= 2, labels - 1, 0)
    config = WeightConfig(class_balance=False)
    default = weight_map(labels, config, n_classes=3)
    np.testing.assert_array_equal(default, weight_map(labels, config, instances=per_class))
    assert default[4, 14] > 9  # beside the junction, between two objects: w0 · exp(-1 / 50)


def test_separate_touching_squares():
    instances = np.zeros((20, 20), np.uint16)
    instances[3:10, 3:10] = 4
    instances[3:10, 10:17] = 9  # shares an edge with 4
    instances[12:15, 12:15] = 2  # isolated
    separated = separate_touching(instances)
    assert separated.dtype == instances.dtype
    assert set(np.unique(separated)) <= set(np.unique(instances)) | {0}
    assert ndimage.label(instances > 0)[1] == 2
    assert ndimage.label(separated > 0, structure=np.ones((3, 3)))[1] == 3
    np.testing.assert_array_equal(separated[3:10, 10], 0)  # 1-pixel gap, taken from id 9
    np.testing.assert_array_equal(separated[3:10, 3:10], 4)
    np.testing.assert_array_equal(separated[3:10, 11:17], 9)
    np.testing.assert_array_equal(separated[12:15, 12:15], 2)
    np.testing.assert_array_equal(instances[3:10, 9], 4)  # input untouched


def test_separate_touching_diagonal_and_zero_neighbours():
    instances = np.array(
        [
            [1, 1, 0, 0],
            [1, 1, 0, 0],
            [0, 0, 3, 3],
            [0, 0, 3, 3],
        ]
    )
    expected = np.array(
        [
            [1, 1, 0, 0],
            [1, 1, 0, 0],
            [0, 0, 0, 3],
            [0, 0, 3, 3],
        ]
    )
    np.testing.assert_array_equal(separate_touching(instances), expected)


def test_annotation_from_instances_exact():
    instances = np.array(
        [
            [0, 0, 0, 0, 0, 0],
            [0, 1, 1, 2, 2, 0],
            [0, 1, 1, 2, 2, 0],
            [0, 0, 0, 0, 0, 0],
            [5, 5, 0, 0, 0, 0],
        ]
    )
    expected = np.array(
        [
            [1, 1, 1, 1, 1, 1],
            [1, 2, 2, 1, 2, 1],
            [1, 2, 2, 1, 2, 1],
            [1, 1, 1, 1, 1, 1],
            [2, 2, 1, 1, 1, 1],
        ],
        np.uint8,
    )
    annotation = annotation_from_instances(instances)
    assert annotation.dtype == np.uint8
    np.testing.assert_array_equal(annotation, expected)
    with pytest.raises(ValueError, match="n_foreground_classes"):
        annotation_from_instances(instances, n_foreground_classes=2)


def test_annotation_from_binary():
    mask = np.array([[0, 255, 255], [0, 0, 255], [128, 0, 0]], np.uint8)
    np.testing.assert_array_equal(annotation_from_binary(mask), [[1, 2, 2], [1, 1, 2], [2, 1, 1]])
    annotation = annotation_from_binary(mask, foreground_value=255)
    assert annotation.dtype == np.uint8
    np.testing.assert_array_equal(annotation, [[1, 2, 2], [1, 1, 2], [1, 1, 1]])


def test_invalid_inputs_raise():
    with pytest.raises(ValueError, match="2D"):
        weight_map(np.ones((2, 3, 4), np.int32))
    with pytest.raises(ValueError, match="shape"):
        weight_map(np.ones((4, 4), np.int32), instances=np.ones((3, 4), np.int32))
    with pytest.raises(TypeError):
        border_term(np.ones((4, 4), np.float32), 10.0, 5.0)


def test_an_instance_image_passed_as_class_labels_is_warned_about():
    instances = random_objects(np.random.default_rng(3), count=30)
    assert int(instances.max()) > 17
    with pytest.warns(UserWarning, match="instance image.*annotation_from_instances") as caught:
        weight_map(instances)
    assert caught[0].filename == __file__  # the user's line
    with pytest.warns(UserWarning, match="instance image") as caught:
        instance_labels(instances)
    assert caught[0].filename == __file__
    three_classes = np.minimum(instances, 3)  # 0 unlabelled, 1 background, 2-3 classes
    sparse_ids = np.where(instances > 0, 1, 0) * 200  # one class value, however large
    with warnings_as_errors():
        weight_map(three_classes)
        weight_map(annotation_from_instances(instances), instances=instances)
        weight_map(sparse_ids.astype(np.int32))
        instance_labels(three_classes)
        instance_labels(instances, foreground_classes=range(1, int(instances.max()) + 1))
        instance_labels(instances > 0)
        many_classes = np.where(instances > 0, instances + 1, 1)  # a mask of a 31-class model
        from_predict, _ = slice_instances(many_classes)  # Predict's path: a model's classes
        every_class = range(2, int(many_classes.max()) + 1)
        expected = instance_labels(many_classes, foreground_classes=every_class)
        weight_map(many_classes)  # Predict's weight map of that mask
    np.testing.assert_array_equal(from_predict, expected)
    assert int(from_predict.max()) >= 25


def test_annotations_of_a_model_with_many_classes_are_not_warned_about():
    """Training checks labels against the model's classes: no instance-image warning."""
    from napari_unet.config import ModelConfig
    from napari_unet.core.checkpoint import new_model
    from napari_unet.training.sampling import prepare_training_data

    model = new_model(ModelConfig(depth=1, base_features=2, n_classes=20))
    annotation = np.zeros((64, 64), np.int32)
    for value in range(1, 21):  # one short stroke of every class, the rest unpainted
        annotation[3 * value, 2:12] = value
    image = np.random.default_rng(0).random((64, 64), dtype=np.float32)
    with warnings_as_errors():
        data = prepare_training_data([image], [annotation], model)
        assert weight_map(annotation, n_classes=20).shape == (64, 64)
    assert float(data[0].weights.max()) > 0
    with pytest.warns(UserWarning, match="instance image"):
        weight_map(annotation)  # without the model's classes: looks like one
    with pytest.raises(ValueError, match="labels go up to 20; the model has 2 classes"):
        weight_map(annotation, n_classes=2)

"""Tests of the patch augmentation (flips, rotations, elastic deformation, intensity)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_unet.config import AugmentConfig
from napari_unet.training.augment import (
    augment_patch,
    elastic_deform,
    elastic_deform_torch,
    elastic_field,
    random_flip_rot,
)


def line_patch(size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """A vertical straight line (image float32 (1, Y, X), labels uint8 (Y, X))."""
    labels = np.ones((size, size), np.uint8)
    labels[:, size // 2 - 1 : size // 2 + 1] = 2
    image = (labels == 2).astype(np.float32)[None] * 0.8 + 0.1
    return image, labels


@pytest.mark.parametrize("mode", ["bilinear", "bicubic"])
def test_zero_std_is_identity(mode):
    image, labels = line_patch()
    weights = np.random.default_rng(0).random(labels.shape)
    out_image, out_labels, out_weights = elastic_deform(
        image, labels, weights, rng=np.random.default_rng(1), std=0.0, mode=mode
    )
    assert np.abs(out_image - image).max() < 1e-5
    np.testing.assert_array_equal(out_labels, labels)
    np.testing.assert_array_equal(out_weights, weights)
    assert (out_image.dtype, out_labels.dtype, out_weights.dtype) == (
        np.float32,
        np.uint8,
        np.float64,
    )


def test_deformed_line_moves_but_stays_a_line():
    image, labels = line_patch()
    out_image, out_labels, _ = elastic_deform(image, labels, rng=np.random.default_rng(3), std=10)
    columns = np.arange(labels.shape[1])
    centres = [(columns * (row == 2)).sum() / max((row == 2).sum(), 1) for row in out_labels]
    has_line = (out_labels == 2).any(axis=1)
    assert has_line.mean() > 0.5  # still a line (it may leave the image near a corner)
    assert np.abs(np.array(centres)[has_line] - 31.5).max() > 1.0  # really moved
    assert not np.allclose(out_image, image, atol=1e-3)


def test_constant_field_direction_convention():
    image, labels = line_patch()
    image, labels = np.ascontiguousarray(image.transpose(0, 2, 1)), labels.T.copy()  # rows 31, 32
    field = np.zeros((2, 64, 64), np.float32)
    field[0] = 3.0  # output (y, x) takes input (y + 3, x)
    out_image, out_labels, _ = elastic_deform(image, labels, field=field)
    np.testing.assert_array_equal(np.flatnonzero((out_labels == 2).all(axis=1)), [28, 29])
    np.testing.assert_allclose(out_image[0, 28:30], 0.9, atol=1e-5)
    np.testing.assert_allclose(out_image[0, 30:32], 0.1, atol=1e-5)


def test_image_labels_and_weights_follow_the_same_field():
    # integer displacements (some pointing outside, mirrored): bilinear is exact there
    rng = np.random.default_rng(4)
    labels = rng.integers(0, 6, (40, 50)).astype(np.int32)
    rows, cols = np.mgrid[:40, :50]
    field = np.stack([(cols // 7) - 4, (rows // 5) % 9 - 4]).astype(np.float32) * 2
    image = np.stack([labels, 10 * labels]).astype(np.float32)
    out_image, out_labels, out_weights = elastic_deform(
        image, labels, labels.astype(np.float64), field=field
    )
    np.testing.assert_allclose(out_image[0], out_labels, atol=1e-4)
    np.testing.assert_allclose(out_image[1], 10 * out_labels, atol=1e-3)
    np.testing.assert_array_equal(out_weights, out_labels)
    assert not np.array_equal(out_labels, labels)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int32, np.int64, bool])
def test_label_values_and_dtypes_preserved(dtype):
    rng = np.random.default_rng(5)
    labels = rng.choice(np.array([0, 1, 2, 5]), size=(48, 48)).astype(dtype)
    image = rng.random((2, 48, 48)).astype(np.float64)
    out_image, out_labels, _ = elastic_deform(image, labels, rng=rng, std=10.0)
    assert out_labels.dtype == labels.dtype and out_image.dtype == np.float64
    assert out_image.shape == image.shape
    assert set(np.unique(out_labels)) <= set(np.unique(labels))


def test_large_label_values_survive():
    labels = np.array([[0, 2**40 + 3], [2**40 + 1, 7]], np.int64).repeat(8, 0).repeat(8, 1)
    _, out_labels, _ = elastic_deform(np.zeros((16, 16)), labels, rng=np.random.default_rng(0))
    assert out_labels.dtype == np.int64
    assert set(np.unique(out_labels)) <= set(np.unique(labels))


def test_field_is_smooth():
    field = elastic_field((256, 256), np.random.default_rng(6), std=10.0, grid=3)
    assert field.shape == (2, 256, 256) and field.dtype == np.float32
    steps = max(np.abs(np.diff(field, axis=1)).max(), np.abs(np.diff(field, axis=2)).max())
    assert steps < 0.1 * 10.0
    assert np.abs(field).max() > 1.0  # not trivially zero


def test_field_std_at_grid_points():
    rng = np.random.default_rng(7)
    fields = np.stack([elastic_field((33, 33), rng, std=10.0, grid=3) for _ in range(2000)])
    at_grid = fields[:, :, ::16, ::16]  # the 3 x 3 lattice: rows/cols 0, 16, 32
    np.testing.assert_allclose(at_grid.std(axis=0), 10.0, rtol=0.08)
    assert np.abs(at_grid.mean(axis=0)).max() < 1.0
    between = fields[:, :, 8, 8].std(axis=0)
    assert np.all(between < 10.0)  # interpolation between points averages


def test_same_seed_same_result_different_seed_different():
    image, labels = line_patch(32)

    def run(seed):
        return elastic_deform(image, labels, rng=np.random.default_rng(seed), std=10.0)

    first, again, other = run(11), run(11), run(12)
    for a, b in zip(first, again):
        if a is not None:
            np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[0], other[0])


def test_torch_batch_equals_per_sample_numpy():
    rng = np.random.default_rng(8)
    images = rng.random((2, 3, 24, 30)).astype(np.float32)
    labels = rng.integers(0, 4, (2, 24, 30))
    weights = rng.random((2, 24, 30)).astype(np.float32)
    fields = np.stack([elastic_field((24, 30), rng, std=5.0) for _ in range(2)])
    out = elastic_deform_torch(
        torch.from_numpy(images),
        torch.from_numpy(labels),
        torch.from_numpy(weights),
        torch.from_numpy(fields),
    )
    for index in range(2):
        expected = elastic_deform(images[index], labels[index], weights[index], field=fields[index])
        for got, want in zip(out, expected):
            np.testing.assert_allclose(got[index].numpy(), want, atol=1e-6)
    image_only = elastic_deform_torch(
        torch.from_numpy(images), None, None, torch.zeros(2, 2, 24, 30)
    )
    assert image_only[1] is None and image_only[2] is None


def test_flip_rot_same_transform_for_all_arrays():
    rng = np.random.default_rng(9)
    image = rng.random((2, 8, 8))
    for _ in range(20):
        out_image, out_labels, nothing = random_flip_rot([image, image[0] * 2 + 1, None], rng)
        np.testing.assert_array_equal(out_labels, out_image[0] * 2 + 1)
        assert nothing is None and out_image.flags.c_contiguous


def test_flip_rot_reaches_all_symmetries():
    rng = np.random.default_rng(10)
    square = np.arange(16).reshape(4, 4)
    seen = {random_flip_rot([square], rng)[0].tobytes() for _ in range(300)}
    assert len(seen) == 8  # the dihedral group of the square
    wide = np.arange(24).reshape(4, 6)
    outputs = [random_flip_rot([wide], rng)[0] for _ in range(200)]
    assert {o.shape for o in outputs} == {(4, 6)}
    assert len({o.tobytes() for o in outputs}) == 4
    (same,) = random_flip_rot([square], rng, flips=False, rot90=False)
    np.testing.assert_array_equal(same, square)


def test_intensity_gain_and_offset_ranges():
    config = AugmentConfig(elastic=False, flips=False, rot90=False, intensity=0.1)
    image = np.zeros((1, 4, 4), np.float32)
    image[0, :2] = 1.0
    rng = np.random.default_rng(12)
    gains, offsets = [], []
    for _ in range(200):
        out, labels, weights = augment_patch(image, None, None, config, rng)
        assert out.dtype == np.float32 and labels is None and weights is None
        offsets.append(out[0, 3, 0])
        gains.append(out[0, 0, 0] - out[0, 3, 0])
    assert 0.9 <= min(gains) < 0.95 and 1.05 < max(gains) <= 1.1
    assert -0.1 <= min(offsets) < -0.05 and 0.05 < max(offsets) <= 0.1


def test_augment_patch_full_pipeline():
    image, labels = line_patch(48)
    weights = labels.astype(np.float32)
    results = [
        augment_patch(image, labels, weights, AugmentConfig(), np.random.default_rng(13))
        for _ in range(2)
    ]
    out_image, out_labels, out_weights = results[0]
    assert out_image.shape == image.shape and out_image.dtype == np.float32
    assert out_labels.dtype == np.uint8 and out_weights.dtype == np.float32
    assert all(a.flags.c_contiguous for a in results[0])
    assert set(np.unique(out_labels)) <= {1, 2}
    np.testing.assert_array_equal(out_weights, out_labels)
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


def test_invalid_arguments():
    with pytest.raises(ValueError, match="grid"):
        elastic_field((8, 8), np.random.default_rng(0), grid=1)
    with pytest.raises(ValueError, match="rng or field"):
        elastic_deform(np.zeros((8, 8), np.float32))
    with pytest.raises(ValueError, match="labels"):
        elastic_deform(np.zeros((8, 8)), np.zeros((4, 8), int), rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="last two axes"):
        random_flip_rot([np.zeros((4, 4)), np.zeros((4, 5))], np.random.default_rng(0))

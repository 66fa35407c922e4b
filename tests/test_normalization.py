"""Per-image normalisation statistics: the histogram path for small integers equals NumPy."""

import numpy as np
import pytest

from napari_unet.config import NormConfig
from napari_unet.core.normalization import histogram_percentiles, normalization_stats


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.uint16, np.int16, np.bool_])
def test_histogram_percentiles_equal_numpy_bit_for_bit(dtype):
    rng = np.random.default_rng(7)
    for _ in range(60):
        size, channels = int(rng.integers(1, 2000)), int(rng.integers(1, 4))
        if dtype is np.bool_:
            flat = rng.random((channels, size)) < rng.random()
        else:
            info = np.iinfo(dtype)
            low = int(rng.integers(info.min, info.max))
            high = int(rng.integers(low, info.max + 1))
            flat = rng.integers(low, high + 1, (channels, size)).astype(dtype)
        percentiles = [0.0, 1.0, 99.8, 100.0, float(rng.random() * 100)]
        expected = np.percentile(flat.astype(np.float64), percentiles, axis=1)
        result = histogram_percentiles(flat, percentiles)
        assert result.dtype == np.float64 and result.shape == expected.shape
        np.testing.assert_array_equal(result, expected)


def test_small_integer_stats_match_the_float_path():
    """uint16 with 3 channels: the same offset and scale as percentiles of the float64 copy."""
    image = np.random.default_rng(3).integers(100, 4000, (3, 70, 90)).astype(np.uint16)
    offset, scale = normalization_stats(image, NormConfig(low=2.0, high=98.0))
    flat = image.reshape(3, -1).astype(np.float64)
    low, high = np.percentile(flat, [2.0, 98.0], axis=1)
    np.testing.assert_array_equal(offset, low)
    np.testing.assert_array_equal(scale, high - low)


def test_constant_small_integer_image_gets_scale_one_of_its_value():
    offset, scale = normalization_stats(np.full((20, 30), 7, np.uint8))
    assert offset.tolist() == [7.0] and scale.tolist() == [7.0]


def test_float_images_still_refuse_non_finite_values():
    image = np.zeros((10, 10), np.float32)
    image[3, 4] = np.inf
    with pytest.raises(ValueError, match="NaN or infinite"):
        normalization_stats(image)

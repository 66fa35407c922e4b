"""Per-image normalisation statistics: the histogram path for small integers equals NumPy."""

import numpy as np
import pytest

from napari_unet.config import NormConfig
from napari_unet.core.normalization import histogram_percentiles, normalization_stats, normalize


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


def test_normalised_values_are_clipped_only_beyond_the_clip():
    image = np.linspace(0, 1000, 10_000, dtype=np.float32).reshape(1, 100, 100)
    image[0, 0, 0], image[0, 99, 99] = -1e6, 1e6  # a cold and a hot pixel
    offset, scale = normalization_stats(image)
    free = normalize(image, offset, scale)
    clipped = normalize(image, offset, scale, NormConfig().clip)
    assert free.max() > 1e3 and free.min() < -1e3
    assert (clipped.min(), clipped.max()) == (-5.0, 5.0)
    inside = np.abs(free) <= 5
    np.testing.assert_array_equal(clipped[inside], free[inside])  # the rest untouched


@pytest.mark.parametrize("clip", [0.5, "5", True, float("inf"), float("nan"), -5, 10**400])
def test_a_clip_that_is_not_a_number_of_at_least_one_is_refused(clip):
    with pytest.raises(ValueError, match="normalization clip must be null or a number >= 1"):
        normalization_stats(np.zeros((4, 4), np.uint8), NormConfig(clip=clip))
    normalization_stats(np.zeros((4, 4), np.uint8), NormConfig(clip=None))  # no clip: fine


def test_a_few_hot_pixels_no_longer_spoil_a_real_prediction(shared_data):
    """A dim 16-bit camera image of the DSB nuclei with 30 hot pixels (65535)."""
    import napari_unet as nu
    from napari_unet.evaluation.metrics import evaluate
    from napari_unet.io.data import load_dsb2018

    image, truth = load_dsb2018()
    hot = image.astype(np.int64) + 100
    rng = np.random.default_rng(0)
    hot[rng.integers(0, hot.shape[0], 30), rng.integers(0, hot.shape[1], 30)] = 65535
    model = nu.load_model("nuclei")

    def f1(picture, clip):
        model.metadata["normalization"] = {**NormConfig().to_dict(), "clip": clip}
        probabilities = nu.predict(picture.astype(np.uint16), model)
        mask = nu.prediction_mask(probabilities, **nu.mask_steps(model)._asdict())
        rows = evaluate(nu.instance_labels(mask), truth, kind="instances")["instances"]
        return next(row["f1"] for row in rows if row["threshold"] == 0.5)

    clean = f1(image, 5.0)
    assert clean == pytest.approx(f1(image, None))  # the real image: nothing clipped
    assert f1(hot, None) < clean - 0.3  # unclipped: hot pixels merge nuclei around them
    assert f1(hot, 5.0) > clean - 0.05

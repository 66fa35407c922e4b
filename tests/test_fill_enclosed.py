"""What an object encloses joins it (core.boundaries.fill_enclosed), in memory, block by
block, and on Predict's paths."""

import numpy as np
import pytest
import torch

from helpers import tiny_model
from napari_unet.core.boundaries import fill_enclosed
from napari_unet.core.postprocess import prediction_mask
from napari_unet.io.chunked_refine import fill_enclosed_chunked


def _cell_with_an_outline_inside() -> np.ndarray:
    """Class mask (1 background, 2 cells): two cells apart; the left one encloses a
    membrane ring (a mitochondrion's outline) around a small blob of its own class,
    and a single background pixel."""
    mask = np.ones((40, 60), np.uint8)
    mask[2:38, 2:28] = 2  # left cell
    mask[2:38, 32:58] = 2  # right cell, not touching
    mask[10:20, 8:18] = 1  # the ring ...
    mask[12:18, 10:16] = 2  # ... around an inner blob of the same class
    mask[30, 20] = 1  # a dark pixel
    return mask


def test_pockets_and_the_objects_inside_them_join_the_enclosing_object():
    mask = _cell_with_an_outline_inside()
    filled = fill_enclosed(mask)
    assert np.all(filled[2:38, 2:28] == 2)  # ring, blob and pixel joined the cell
    np.testing.assert_array_equal(filled[:, 28:], mask[:, 28:])  # the rest is unchanged
    assert np.all(filled[:, :2] == 1) and filled.dtype == np.uint8
    np.testing.assert_array_equal(fill_enclosed(filled), filled)  # nothing left to fill


def test_a_pocket_open_to_the_outside_or_holding_another_class_stays():
    mask = _cell_with_an_outline_inside()
    mask[10:20, 8:18] = 1
    mask[14, 12] = 3  # another class inside the ring: the pocket is left alone
    mask[25:30, 2:10] = 1
    mask[25:30, 0:2] = 1  # a bay open to the background outside the cell
    filled = fill_enclosed(mask)
    np.testing.assert_array_equal(filled[10:20, 8:18], mask[10:20, 8:18])
    assert np.all(filled[25:30, 2:10] == 1)
    assert filled[30, 20] == 2  # the closed hole is still filled


def test_block_by_block_equals_the_whole_plane_when_objects_fit_in_a_window():
    rng = np.random.default_rng(0)
    mask = np.ones((130, 170), np.uint8)
    for top in range(0, 130, 26):  # a grid of cells with rings and specks inside
        for left in range(0, 170, 34):
            mask[top + 2 : top + 24, left + 2 : left + 32] = 2
            mask[top + 6 : top + 14, left + 6 : left + 16] = 1
            mask[top + 8 : top + 12, left + 8 : left + 14] = 2
            mask[top + 18, left + 4 + rng.integers(0, 20)] = 1
    expected = fill_enclosed(mask)
    assert np.count_nonzero(expected != mask) > 0
    chunked = mask.copy()
    fill_enclosed_chunked(chunked, (32, 32), halo=32)
    np.testing.assert_array_equal(chunked, expected)


def test_prediction_mask_fills_unless_told_not_to():
    boundary = np.where(_cell_with_an_outline_inside() == 1, 0.9, 0.1).astype(np.float32)
    probabilities = np.stack([boundary, 1 - boundary])
    kept = prediction_mask(probabilities, close_boundaries=False, fill_holes=False)
    filled = prediction_mask(probabilities, close_boundaries=False)
    np.testing.assert_array_equal(filled, fill_enclosed(kept))
    assert np.count_nonzero(filled != kept) == 10 * 10 - 6 * 6 + 1


@pytest.mark.parametrize("fill_holes", [True, False])
def test_segment_stack_follows_the_fill_holes_setting(monkeypatch, fill_holes):
    import napari_unet as nu
    import napari_unet.io.volumes as volumes

    boundary = np.where(_cell_with_an_outline_inside() == 1, 0.9, 0.1).astype(np.float32)
    probabilities = np.stack([boundary, 1 - boundary])
    monkeypatch.setattr(volumes, "predict_stack", lambda *args, **kwargs: probabilities)
    model = tiny_model()
    config = nu.PredictConfig(tile_size=None, close_boundaries=False, fill_holes=fill_holes)
    _, mask, instances = volumes.segment_stack(np.zeros((40, 60), np.float32), model, config=config)
    expected = prediction_mask(probabilities, close_boundaries=False, fill_holes=fill_holes)
    np.testing.assert_array_equal(mask, expected)
    assert int(instances.max()) == (2 if fill_holes else 3)  # the inner blob is its own


def test_the_zarr_mask_is_filled_as_in_memory(tmp_path):
    import zarr
    from scipy import ndimage

    import napari_unet as nu
    from napari_unet.io.outofcore import predict_to_zarr
    from napari_unet.io.volumes import segment_stack

    rng = np.random.default_rng(3)
    image = ndimage.gaussian_filter(rng.random((96, 96)), 1.5).astype(np.float32)
    model = tiny_model()
    probabilities = nu.predict(image, model, tile_size=None)
    with torch.no_grad():  # 60 % of the pixels objects: a speckled mask with pockets
        model.head.bias[0] -= float(np.quantile(np.log(probabilities[0] / probabilities[1]), 0.6))
    config = nu.PredictConfig(tile_size=None, close_boundaries=False)
    _, mask, _ = segment_stack(image, model, config=config)
    unfilled = segment_stack(image, model, config=config.replace(fill_holes=False))[1]
    assert np.count_nonzero(mask != unfilled) > 0  # the model's mask has pockets to fill
    store = predict_to_zarr(image, model, tmp_path / "out.zarr", config=config)
    stored = np.asarray(zarr.open_group(str(store), mode="r")["mask"])
    np.testing.assert_array_equal(stored, mask)

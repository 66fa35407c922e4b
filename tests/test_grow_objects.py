"""Objects grown into likely-theirs background pixels (core.boundaries.grow_objects), the
model's background threshold in metadata and checkpoints, and the paths that use it."""

import numpy as np
import pytest
import torch
from scipy import ndimage

from helpers import tiny_model
from napari_unet.core.boundaries import grow_objects
from napari_unet.core.postprocess import instance_labels, mask_steps, prediction_mask
from napari_unet.io.chunked_refine import refine_blocks


def _thick_membranes(shape=(160, 200), seed=0) -> np.ndarray:
    """Boundary probability: cells whose membranes have a sure core (0.95) and an unsure
    rim two pixels wide on each side (0.7), as a model trained with border weights draws."""
    rng = np.random.default_rng(seed)
    centres = rng.integers(0, shape, size=(25, 2))
    seeds = np.ones(shape, bool)
    seeds[tuple(centres.T)] = False
    owner = np.ravel_multi_index(
        ndimage.distance_transform_edt(seeds, return_indices=True)[1], shape
    )
    core = np.zeros(shape, bool)
    core[:, :-1] |= owner[:, :-1] != owner[:, 1:]
    core[:-1, :] |= owner[:-1, :] != owner[1:, :]
    rim = ndimage.binary_dilation(core, iterations=2) & ~core
    return np.where(core, 0.95, np.where(rim, 0.7, 0.05)).astype(np.float32)


def test_objects_grow_into_the_unsure_rim_and_never_join():
    boundary = _thick_membranes()
    mask = prediction_mask(np.stack([boundary, 1 - boundary]), close_boundaries=False)
    grown = grow_objects(mask, boundary, 0.8)
    before, after = instance_labels(mask, min_size=1), instance_labels(grown, min_size=1)
    assert after.max() == before.max() > 10  # no object joined, none appeared or vanished
    # every object keeps its pixels and gains rim pixels only
    assert np.all(grown[mask == 2] == 2)
    gained = (grown == 2) & (mask == 1)
    assert gained.any() and np.all(boundary[gained] == np.float32(0.7))
    assert np.all(grown[boundary == np.float32(0.95)] == 1)  # the sure core stays membrane
    # the membranes got thinner: most of the rim joined the cells
    assert gained.sum() > 0.6 * np.count_nonzero(boundary == np.float32(0.7))
    # each grown object contains its object from before
    for label in range(1, before.max() + 1):
        assert len(np.unique(after[before == label])) == 1


def test_growth_stops_at_the_threshold_and_half_is_no_change():
    boundary = _thick_membranes()
    mask = prediction_mask(np.stack([boundary, 1 - boundary]), close_boundaries=False)
    np.testing.assert_array_equal(grow_objects(mask, boundary, 0.5), mask)
    np.testing.assert_array_equal(grow_objects(mask, boundary, 0.65), mask)  # rim is 0.7
    assert np.count_nonzero(grow_objects(mask, boundary, 0.7) != mask) > 0


def test_two_objects_across_a_gap_of_unsure_pixels_stay_two():
    mask = np.ones((9, 11), np.uint8)
    mask[1:8, 1:5], mask[1:8, 6:10] = 2, 2
    boundary = np.where(mask == 2, 0.1, 0.6).astype(np.float32)  # the gap column is unsure
    grown = grow_objects(mask, boundary, 0.8)
    assert instance_labels(grown, min_size=1).max() == 2
    assert np.all(grown[mask == 2] == 2) and (grown[:, 5] == 1).sum() >= 7 - 2


def test_grown_pixels_take_their_objects_class():
    mask = np.ones((10, 20), np.uint8)
    mask[2:8, 2:8], mask[2:8, 12:18] = 2, 3
    boundary = np.where(mask > 1, 0.1, 0.6).astype(np.float32)
    boundary[:, 9:11] = 0.9  # a sure boundary between them
    grown = grow_objects(mask, boundary, 0.8)
    assert np.all(grown[:, :9][grown[:, :9] > 1] == 2)
    assert np.all(grown[:, 11:][grown[:, 11:] > 1] == 3)
    assert np.all(grown[:, 9:11] == 1)
    assert (grown == 2).sum() > (mask == 2).sum() and (grown == 3).sum() > (mask == 3).sum()


@pytest.mark.parametrize("threshold", [0.4, 1.0, float("nan")])
def test_a_threshold_outside_half_to_one_is_refused(threshold):
    mask = np.ones((4, 4), np.uint8)
    with pytest.raises(ValueError, match=r"\[0.5, 1\)"):
        grow_objects(mask, np.zeros((4, 4), np.float32), threshold)
    with pytest.raises(ValueError, match="shape"):
        grow_objects(mask, np.zeros((4, 5), np.float32), 0.8)


def test_prediction_mask_grows_after_closing():
    boundary = _thick_membranes(seed=1)
    probabilities = np.stack([boundary, 1 - boundary])
    expected = grow_objects(prediction_mask(probabilities), boundary, 0.8)
    np.testing.assert_array_equal(
        prediction_mask(probabilities, background_threshold=0.8), expected
    )


@pytest.mark.parametrize("block", [(64, 48), (48, 48), (32, 40)])
def test_growth_block_by_block_equals_the_whole_plane(block):
    from napari_unet.io.chunked_refine import grow_objects_chunked

    boundary = _thick_membranes(shape=(190, 230), seed=2)
    mask = prediction_mask(np.stack([boundary, 1 - boundary]))
    blocked = mask.copy()
    grow_objects_chunked(boundary, blocked, block=block, threshold=0.8)
    # every window reads the mask as it was before any block grew: a block that saw its
    # neighbours' grown pixels moved the watershed lines along block borders (48x48: 8 px)
    np.testing.assert_array_equal(blocked, grow_objects(mask, boundary, 0.8))
    unchanged = mask.copy()
    grow_objects_chunked(boundary, unchanged, block=block, threshold=0.5)
    np.testing.assert_array_equal(unchanged, mask)


def test_a_stack_in_zarr_grows_from_a_snapshot_on_disk(tmp_path):
    import zarr

    from napari_unet.core.postprocess import MaskSteps
    from napari_unet.io.chunked_refine import grow_objects_chunked, refine_mask_chunked

    boundary = np.stack([_thick_membranes(shape=(190, 230), seed=seed) for seed in (2, 3)])
    probabilities = np.stack([boundary, 1 - boundary], axis=1)  # (Z, C, Y, X)
    prob = zarr.open_array(
        str(tmp_path / "prob"), mode="w", shape=probabilities.shape, chunks=(1, 2, 48, 48)
    )
    prob[:] = probabilities
    mask = zarr.open_array(
        str(tmp_path / "mask"), mode="w", shape=(2, 190, 230), chunks=(1, 48, 48), dtype="u1"
    )
    mask[:] = np.argmax(probabilities, axis=1) + 1
    snapshot = zarr.open_array(
        str(tmp_path / "snapshot"), mode="w", shape=(190, 230), chunks=(48, 48), dtype="u1"
    )
    steps = MaskSteps(close_boundaries=True, background_threshold=0.8, fill_holes=True)
    refine_mask_chunked(prob, mask, (48, 48), steps, snapshot=snapshot)
    for plane in range(2):
        expected = prediction_mask(probabilities[plane], **steps._asdict())
        np.testing.assert_array_equal(mask[plane], expected)
    with pytest.raises(ValueError, match="differ in shape"):
        grow_objects_chunked(boundary[0], mask[0], (48, 48), 0.8, snapshot=snapshot[:-1])


# ---- the model's threshold: metadata, checkpoints, and every path that predicts ----


def _thresholded_model(threshold: float):

    model = tiny_model()
    with torch.no_grad():  # no bias: many pixels near 0.5, for the threshold to matter
        model.head.bias.zero_()
    model.metadata["background_threshold"] = threshold
    return model


def test_the_threshold_is_kept_in_checkpoints_and_read_as_a_number(tmp_path):
    import napari_unet as nu

    model = _thresholded_model(0.8)
    assert model.info.background_threshold == 0.8
    loaded = nu.load_model(nu.save_model(model, tmp_path / "m.safetensors"))
    assert loaded.info.background_threshold == 0.8
    plain = tiny_model()
    assert plain.info.background_threshold == 0.5
    header = nu.core.checkpoint.read_checkpoint(nu.save_model(plain, tmp_path / "p.safetensors"))
    assert "background_threshold" not in header[1]  # the default is not written


@pytest.mark.parametrize("bad", [0.3, 1.0, "0.8", True, None, [0.8]])
def test_a_bad_stored_threshold_is_a_clean_checkpoint_error(tmp_path, bad):
    import json

    from safetensors.torch import save_file

    import napari_unet as nu
    from napari_unet.core.checkpoint import read_checkpoint

    path = nu.save_model(_thresholded_model(0.8), tmp_path / "m.safetensors")
    tensors, metadata = read_checkpoint(path)
    metadata["background_threshold"] = bad
    save_file(tensors, path, metadata={"napari_unet": json.dumps(metadata)})
    with pytest.raises(nu.CheckpointError, match=r"background_threshold must be a number"):
        nu.load_model(path)


def test_segment_stack_and_zarr_use_the_models_threshold(tmp_path):
    import zarr

    from napari_unet.io.outofcore import predict_to_zarr
    from napari_unet.io.volumes import segment_stack

    rng = np.random.default_rng(0)
    image = ndimage.gaussian_filter(rng.random((96, 96)), 2).astype(np.float32)
    model = _thresholded_model(0.6)
    probabilities, mask, _ = segment_stack(image, model, tile_size=None)
    expected = prediction_mask(probabilities, background_threshold=0.6)
    np.testing.assert_array_equal(mask, expected)
    assert np.count_nonzero(mask != prediction_mask(probabilities)) > 0  # it changed something
    store = predict_to_zarr(image, model, tmp_path / "out.zarr", tile_size=None)
    group = zarr.open_group(str(store), mode="r")
    assert group.attrs["napari_unet"]["background_threshold"] == 0.6
    np.testing.assert_array_equal(np.asarray(group["mask"]), expected)
    # in 48x48 chunks the mask is refined block by block: still the mask of its
    # probabilities on the whole plane, and the snapshot the objects grew from is gone
    updates = []
    store = predict_to_zarr(
        image, model, tmp_path / "tiled.zarr", tile_size=92, progress=updates.append
    )
    group = zarr.open_group(str(store), mode="r")
    assert group["mask"].chunks == (48, 48)
    refining = [(u.done, u.total) for u in updates if u.stage == "mask"]  # block by block
    blocks = refine_blocks((96, 96), (48, 48), mask_steps(model))
    assert blocks == 4 * (1 + 2 + 1)  # 2x2 blocks: closed, copied and grown, filled
    assert refining == [(0, 1)] + [(done, blocks) for done in range(1, blocks + 1)]
    expected = prediction_mask(np.asarray(group["prob"]), background_threshold=0.6)
    np.testing.assert_array_equal(np.asarray(group["mask"]), expected)
    assert sorted(path.name for path in store.iterdir()) == [
        "instances",
        "mask",
        "prob",
        "zarr.json",
    ]


def test_the_predict_widgets_job_uses_the_models_threshold():
    import threading

    from napari_unet._widgets._layers import ImageGeometry
    from napari_unet._widgets._predict_job import PredictionRequest, predict_job
    from napari_unet.config import PredictConfig

    rng = np.random.default_rng(1)
    image = ndimage.gaussian_filter(rng.random((2, 80, 80)), 2).astype(np.float32)
    model = _thresholded_model(0.6)
    request = PredictionRequest(
        model=model,
        data=image,
        geometry=ImageGeometry(shape=image.shape, channel_axis=None, rgb=False),
        config=PredictConfig(tile_size=None, device="cpu"),
        with_weights=False,
    )
    job = predict_job(request, threading.Event())
    while True:
        try:
            next(job)
        except StopIteration as finished:
            result = finished.value
            break
    for plane in range(2):
        probabilities = result.probabilities[:, plane]
        expected = prediction_mask(probabilities, background_threshold=0.6)
        np.testing.assert_array_equal(result.mask[plane], expected)
    assert np.count_nonzero(result.mask[0] != prediction_mask(result.probabilities[:, 0])) > 0


def test_keeping_gaps_gives_the_most_probable_class_even_with_a_threshold():
    from napari_unet.config import PredictConfig
    from napari_unet.core.postprocess import class_mask
    from napari_unet.io.volumes import segment_stack

    rng = np.random.default_rng(0)
    image = ndimage.gaussian_filter(rng.random((96, 96)), 2).astype(np.float32)
    config = PredictConfig(tile_size=None, close_boundaries=False, fill_holes=False)
    probabilities, mask, _ = segment_stack(image, _thresholded_model(0.6), config=config)
    np.testing.assert_array_equal(mask, class_mask(probabilities))


def test_the_model_panel_says_where_the_threshold_puts_the_background():
    from napari_unet import load_model
    from napari_unet._widgets._model import describe_model

    text = describe_model(load_model("em-membranes"), "em-membranes")
    assert "only above p = 0.85" in text and "membrane" in text
    assert "gaps in its boundaries open" not in text
    assert "only above p" not in describe_model(load_model("nuclei"), "nuclei")
    assert "gaps in its boundaries open" in describe_model(_gap_model(), "new")


def test_a_configured_threshold_replaces_the_models_own():
    from napari_unet.config import PredictConfig
    from napari_unet.core.postprocess import mask_threshold
    from napari_unet.io.volumes import segment_stack

    model = _thresholded_model(0.6)
    assert mask_threshold(model, PredictConfig()) == 0.6
    assert mask_threshold(model, PredictConfig(background_threshold=0.7)) == 0.7
    assert mask_threshold(model, PredictConfig(background_threshold=0.5)) == 0.5
    assert mask_threshold(model, PredictConfig(close_boundaries=False)) == 0.5
    rng = np.random.default_rng(0)
    image = ndimage.gaussian_filter(rng.random((96, 96)), 2).astype(np.float32)
    config = PredictConfig(tile_size=None, background_threshold=0.5)
    probabilities, mask, _ = segment_stack(image, model, config=config)
    np.testing.assert_array_equal(mask, prediction_mask(probabilities))  # no growth
    for bad in (0.4, 1.0, "0.7", True):
        with pytest.raises(ValueError, match="background_threshold must be None"):
            PredictConfig(background_threshold=bad)


def test_the_command_line_threshold_reaches_the_outputs(tmp_path):
    import tifffile

    import napari_unet as nu
    from napari_unet.cli import main

    rng = np.random.default_rng(0)
    image = ndimage.gaussian_filter(rng.random((96, 96)), 2).astype(np.float32)
    tifffile.imwrite(tmp_path / "image.tif", image)
    checkpoint = nu.save_model(_thresholded_model(0.6), tmp_path / "m.safetensors")
    masks = {}
    for name, extra in (("own", []), ("half", ["--background-threshold", "0.5"])):
        out = tmp_path / name
        argv = ["predict", str(tmp_path / "image.tif"), "--model", str(checkpoint)]
        assert main([*argv, "--output", str(out), "--tile-size", "auto", *extra]) == 0
        masks[name] = tifffile.imread(out / "image_mask.tif")
    probabilities = tifffile.imread(tmp_path / "half" / "image_prob.tif")
    np.testing.assert_array_equal(masks["half"], prediction_mask(probabilities))
    np.testing.assert_array_equal(
        masks["own"], prediction_mask(probabilities, background_threshold=0.6)
    )
    assert np.count_nonzero(masks["own"] != masks["half"]) > 0


def _gap_model():
    """A model that says Predict must leave the gaps in its boundaries open."""
    model = _thresholded_model(0.6)
    model.metadata["close_gaps"] = False
    return model


def _two_cells_with_a_faint_spot() -> np.ndarray:
    """(2, 96, 96) probabilities: two cells split by a membrane with a faint spot."""
    boundary = np.full((96, 96), 0.1, np.float32)
    boundary[:, 46:50] = 0.95
    boundary[40:46, 46:50] = 0.45  # the gap: the cells join in the most probable class
    boundary[:2], boundary[-2:], boundary[:, :2], boundary[:, -2:] = 0.95, 0.95, 0.95, 0.95
    return np.stack([boundary, 1 - boundary])


def test_a_model_that_leaves_gaps_open_is_grown_but_not_closed_on_every_path(tmp_path, monkeypatch):
    import zarr

    import napari_unet.io.volumes as volumes
    from napari_unet.config import PredictConfig
    from napari_unet.core.postprocess import closes_gaps
    from napari_unet.io.outofcore import predict_to_zarr

    model = _gap_model()
    assert closes_gaps(model, PredictConfig()) is False
    assert closes_gaps(_thresholded_model(0.6), PredictConfig()) is True
    assert closes_gaps(_thresholded_model(0.6), PredictConfig(close_boundaries=False)) is False
    probabilities = _two_cells_with_a_faint_spot()
    monkeypatch.setattr(volumes, "predict_stack", lambda *args, **kwargs: probabilities)
    image = np.zeros((96, 96), np.float32)
    _, mask, instances = volumes.segment_stack(image, model, tile_size=None)
    expected = prediction_mask(probabilities, close_boundaries=False, background_threshold=0.6)
    np.testing.assert_array_equal(mask, expected)
    assert instances.max() == 1  # joined through the gap
    _, closed_mask, closed = volumes.segment_stack(image, _thresholded_model(0.6), tile_size=None)
    assert closed.max() == 2 and np.count_nonzero(closed_mask != mask) > 0
    store = predict_to_zarr(image, model, tmp_path / "out.zarr", tile_size=None)
    group = zarr.open_group(str(store), mode="r")
    assert group.attrs["napari_unet"]["close_boundaries"] is False


def test_a_model_that_leaves_gaps_open_still_does_after_a_checkpoint(tmp_path):
    import napari_unet as nu
    from napari_unet.core.checkpoint import read_checkpoint

    path = nu.save_model(_gap_model(), tmp_path / "open.safetensors")
    assert read_checkpoint(path)[1]["close_gaps"] is False
    loaded = nu.load_model(path)
    assert loaded.info.close_gaps is False and loaded.info.background_threshold == 0.6
    closing = nu.save_model(_thresholded_model(0.6), tmp_path / "closing.safetensors")
    assert "close_gaps" not in read_checkpoint(closing)[1]  # the default is not written
    assert nu.load_model(closing).info.close_gaps is True

"""Stacks, channels and out-of-core prediction (napari_unet.io.axes/volumes/outofcore)."""

import threading

import numpy as np
import pytest
import zarr
from scipy import ndimage

from helpers import tiny_model
from napari_unet import TrainConfig, finetune, predict
from napari_unet.core.inference import Cancelled, tile_layout
from napari_unet.core.postprocess import instance_labels, mask_steps
from napari_unet.io import outofcore as ooc
from napari_unet.io.axes import check_axes, describe_channels, guess_axes
from napari_unet.io.chunked_labels import label_chunked
from napari_unet.io.chunked_refine import refine_blocks
from napari_unet.io.data import to_channels_first
from napari_unet.io.outofcore import open_outputs, predict_to_zarr
from napari_unet.io.volumes import (
    StackProgress,
    annotated_slices,
    predict_stack,
    segment_stack,
    stack_instances,
    stack_slice,
)

TILE = 56  # a valid input size of a depth-2 network; keeps 16 x 16 output pixels


@pytest.fixture(scope="module")
def model():
    return tiny_model()


@pytest.fixture(scope="module")
def rgb_model():
    return tiny_model(seed=1, in_channels=2, n_classes=3)


def _stack(rng, shape=(3, 40, 50)):
    return rng.integers(0, 4000, shape).astype(np.uint16)


@pytest.mark.parametrize(
    ("shape", "channels", "rgb", "axes"),
    [
        ((70, 90), 1, None, "YX"),
        ((5, 70, 90), 1, None, "ZYX"),
        ((3, 70, 90), 1, None, "ZYX"),  # napari shows this as 3 slices
        ((3, 70, 90), 3, None, "CYX"),
        ((3, 70, 90), 1, True, "SYX"),
        ((70, 90, 3), 1, None, "YXS"),
        ((70, 90, 4), 3, None, "YXS"),
        ((5, 70, 90, 3), 1, None, "ZYXS"),
        ((5, 2, 70, 90), 2, None, "ZCYX"),
        ((2, 5, 70, 90), 2, None, "CZYX"),  # channels first when the second axis cannot be
        ((2, 2, 70, 90), 2, None, "ZCYX"),  # a tie: ImageJ's order
        ((5, 3, 70, 90), 1, None, "ZCYX"),  # RGB planes for a 1-channel model: luminance
    ],
)
def test_axes_rule(shape, channels, rgb, axes):
    assert guess_axes(shape, channels, rgb) == axes
    assert check_axes(axes, shape, channels) == axes


@pytest.mark.parametrize(
    ("axes", "shape", "channels", "message"),
    [
        ("ZYX", (5, 70, 90), 2, "expects 2 input channels but the image has 1"),
        ("ZCYX", (5, 2, 70, 90), 1, "expects 1 input channel but the image has 2"),
        ("ZYX", (70, 90), 1, "do not match the image shape"),
        ("ZZX", (5, 70, 90), 1, "Y and X once each"),
        ("CYXS", (2, 70, 90, 3), 1, "not both"),
        ("XY", (90, 70), 1, "Y must come before X"),
        ("ZXY", (5, 90, 70), 1, "Y must come before X"),
    ],
)
def test_bad_axes_say_why(axes, shape, channels, message):
    with pytest.raises(ValueError, match=message):
        check_axes(axes, shape, channels)


def test_more_than_four_axes_is_refused():
    with pytest.raises(ValueError, match="2 to 4 axes"):
        guess_axes((2, 3, 4, 40, 50), 1)


def test_time_axis_is_a_slice_axis_and_metadata_records_the_rule():
    assert check_axes("tyx", (4, 40, 50), 1) == "ZYX"
    record = describe_channels("ZYXS", (2, 40, 50, 4), 1)
    assert record["image_channels"] == 4 and record["model_channels"] == 1
    assert "alpha dropped" in record["channel_rule"] and "luminance" in record["channel_rule"]


def test_stack_equals_slice_by_slice_with_progress_over_slices_and_tiles(model, rng):
    stack = _stack(rng, (3, 70, 90))
    steps: list[StackProgress] = []
    probabilities = predict_stack(stack, model, tile_size=TILE, batch_size=5, progress=steps.append)
    assert probabilities.shape == (3, 2, 70, 90) and probabilities.dtype == np.float32
    for index in range(3):
        assert np.array_equal(probabilities[index], predict(stack[index], model, tile_size=TILE))
    tiles = len(tile_layout(model, (70, 90), TILE)[1])
    assert steps[-1].done == steps[-1].total == 3 * tiles
    assert [s.done for s in steps] == sorted(s.done for s in steps)
    assert {s.slice_index for s in steps} == {0, 1, 2} and steps[0].n_slices == 3


def test_rgb_and_rgba_stacks_become_luminance(model, rng):
    rgba = rng.integers(0, 255, (2, 60, 70, 4)).astype(np.uint8)
    from_rgba = predict_stack(rgba, model, tile_size=TILE)
    from_rgb = predict_stack(np.ascontiguousarray(rgba[..., :3]), model, tile_size=TILE)
    assert np.array_equal(from_rgba, from_rgb)
    expected = predict(to_channels_first(rgba[1, ..., :3], 1), model, tile_size=TILE)
    assert np.array_equal(from_rgb[1], expected)


def test_channels_first_stack_for_a_two_channel_model(rgb_model, rng):
    stack = _stack(rng, (2, 2, 50, 60))
    probabilities = predict_stack(stack, rgb_model, tile_size=TILE)
    assert probabilities.shape == (2, 3, 50, 60)
    assert np.array_equal(probabilities[1], predict(stack[1], rgb_model, tile_size=TILE))
    with pytest.raises(ValueError, match="expects 2 input channels"):
        predict_stack(_stack(rng, (4, 50, 60)), rgb_model)


def test_segment_stack_numbers_instances_through_the_stack():
    mask = np.ones((3, 20, 20), np.uint8)
    mask[0, 2:7, 2:7] = mask[0, 10:15, 10:15] = 2
    mask[2, 5:10, 5:9] = 2
    mask[2, 15, 15] = 2  # a speck below MIN_INSTANCE_SIZE is no instance
    labels = stack_instances(mask)
    assert labels.dtype == np.uint32
    assert set(np.unique(labels[0])) == {0, 1, 2} and not labels[1].any()
    assert set(np.unique(labels[2])) == {0, 3}


def test_segment_stack_outputs(model, rng):
    probabilities, mask, labels = segment_stack(_stack(rng), model, tile_size=TILE)
    assert mask.shape == labels.shape == (3, 40, 50) and mask.dtype == np.uint8
    assert np.array_equal(mask, probabilities.argmax(1) + 1)


def test_stack_slice_is_what_the_preview_shows(model, rng):
    stack = _stack(rng)
    plane = stack_slice(stack, 2, in_channels=1)
    assert plane.shape == (1, 40, 50)
    assert np.array_equal(np.asarray(plane), stack[2][None].astype(np.float32))
    assert np.array_equal(predict(plane, model), predict(stack[2], model))


def test_annotated_slices_train_the_model(model, rng):
    stack = _stack(rng, (4, 48, 48))
    annotations = np.zeros(stack.shape, np.uint8)
    annotations[1, 5:10, 5:10] = 1
    annotations[3, 20:25, 20:25] = 2
    annotations[3, 0:3, 0:3] = 1
    images, labels = annotated_slices(stack, annotations)
    assert len(images) == len(labels) == 2
    assert np.array_equal(images[0], stack[1][None].astype(np.float32))
    assert np.array_equal(labels[1], annotations[3])
    trained = tiny_model()
    config = TrainConfig(seconds=None, iterations=2, batch_size=1, device="cpu")
    list(finetune(trained, images, labels, config))
    assert trained.metadata["training_history"][-1]["iterations"] == 2
    with pytest.raises(ValueError, match="do not match"):
        annotated_slices(stack, annotations[:, :10])


def test_stop_flag_cancels_a_stack(model, rng):
    stop = threading.Event()
    stop.set()
    with pytest.raises(Cancelled):
        predict_stack(_stack(rng), model, tile_size=TILE, stop=stop)


# ---- out of core ---------------------------------------------------------------------------
class CountingArray:
    """Array wrapper recording the largest read (in elements) of any ``__getitem__``."""

    def __init__(self, array):
        self.array, self.largest, self.reads = array, 0, 0
        self.shape, self.ndim, self.dtype = array.shape, array.ndim, array.dtype

    def __getitem__(self, key):
        block = np.asarray(self.array[key])
        self.largest = max(self.largest, block.size)
        self.reads += 1
        return block


def test_zarr_input_is_read_tile_by_tile(model, rng, tmp_path):
    image = _stack(rng, (2, 130, 150))
    source = zarr.open_array(
        str(tmp_path / "in.zarr"), mode="w", shape=image.shape, chunks=(1, 32, 32), dtype="u2"
    )
    source[:] = image
    counted = CountingArray(source)  # tiles of 92 x 92 input pixels keep 52 x 52
    store = predict_to_zarr(counted, model, tmp_path / "out.zarr", tile_size=92)
    assert counted.largest <= 92 * 92 < 130 * 150
    assert counted.reads > 2 * len(tile_layout(model, (130, 150), 92)[1])
    outputs = open_outputs(store)
    expected = segment_stack(image, model, tile_size=92)
    for name, array in zip(("prob", "mask", "instances"), expected):
        assert np.array_equal(outputs[name][:], array), name
    # chunks follow the tiles' stride: 150 columns take 3 tiles of 92 (stride 52); 130 rows
    # also take 3, and 84-pixel tiles (stride 44) already cover them (shrink_tiles_to_image)
    tiles = tile_layout(model, (130, 150), 92)[1]
    assert (tiles[0].y.keep_stop, tiles[0].x.keep_stop) == (44, 52)
    assert outputs["prob"].chunks == (1, 2, 44, 52)


def test_dask_input_and_store_metadata(model, rng, tmp_path):
    import dask.array as da

    image = rng.integers(0, 255, (100, 80, 3)).astype(np.uint8)
    store = predict_to_zarr(
        da.from_array(image, chunks=(32, 32, 3)), model, tmp_path / "o.zarr", tile_size=TILE
    )
    outputs = open_outputs(store)
    expected = predict(to_channels_first(image, 1), model, tile_size=TILE)
    assert np.array_equal(outputs["prob"][:], expected)
    attributes = zarr.open_group(str(store), mode="r").attrs["napari_unet"]
    assert attributes["axes"] == "YXS" and "luminance" in attributes["channel_rule"]
    assert attributes["n_instances"] == int(outputs["instances"][:].max())


def _blobs(seed, shape=(61, 83)):
    random = np.random.default_rng(seed)
    first = ndimage.gaussian_filter(random.random(shape), 1.5) > 0.5
    second = ndimage.gaussian_filter(random.random(shape), 1.5) > 0.52
    return (1 + first + second * (~first) * 2).astype(np.uint8)  # classes 1, 2, 3


@pytest.mark.parametrize("fill_holes", [True, False])
@pytest.mark.parametrize("min_size", [0, 15, 40])
@pytest.mark.parametrize("block", [(16, 20), (1, 83), (61, 1), (7, 5), (100, 100)])
def test_chunked_components_equal_in_memory_labels(block, min_size, fill_holes):
    for seed in range(4):
        mask = _blobs(seed)
        mask[20:30, 30:44] = 2  # an object with a hole across block borders ...
        mask[24:26, 36:38] = 1
        mask[50:55, 3:8] = 3  # ... and one inside most blocks
        mask[52, 5] = 1
        out = np.zeros(mask.shape, np.uint32)
        count = label_chunked(mask, out, block, offset=5, min_size=min_size, fill_holes=fill_holes)
        expected = instance_labels(mask, min_size=min_size, fill_holes=fill_holes)
        assert bool(expected[25, 37]) == fill_holes
        assert count == expected.max() > 5
        if min_size:  # objects smaller than min_size existed and were dropped
            assert count < instance_labels(mask, min_size=0).max()
        assert np.array_equal(out, np.where(expected > 0, expected + 5, 0))


def _holes_mask():
    """Objects whose holes the chunked filling must treat as the in-memory one does."""
    mask = np.ones((60, 70), np.uint8)
    mask[5:35, 5:45] = 2  # several holes, some across block borders, one in a block
    for rows, columns in ((slice(8, 12), slice(8, 12)), (slice(14, 22), slice(14, 30))):
        mask[rows, columns] = 1
    mask[25:31, 33:41] = 1
    mask[17:19, 20:23] = 3  # an object in a hole: the background around it is the hole's
    mask[26:30, 35:39] = 2  # a ring in a hole, with its own hole
    mask[27:29, 36:38] = 1
    mask[40:60, 50:70] = 2  # a hole open to the image border is not a hole
    mask[45:60, 55:65] = 1
    mask[40:50, 5:15] = 2  # background enclosed by two objects together stays background
    mask[40:50, 15:25] = 3
    mask[43:47, 10:20] = 1
    mask[52:58, 30:40] = 2  # a hole holding only another object
    mask[54:56, 33:37] = 3
    return mask


@pytest.mark.parametrize("block", [(16, 20), (1, 70), (60, 1), (7, 5), (9, 13), (100, 100)])
def test_chunked_hole_filling_equals_in_memory(block):
    mask = _holes_mask()
    expected = instance_labels(mask, min_size=0)
    assert expected[10, 10] == expected[20, 25] == expected[26, 34] == expected[6, 6]
    assert expected[28, 37] == expected[26, 35] != expected[6, 6]  # the inner ring's
    assert expected[50, 60] == expected[45, 12] == 0
    out = np.zeros(mask.shape, np.uint32)
    assert label_chunked(mask, out, block, offset=2, min_size=0) == expected.max()
    assert np.array_equal(out, np.where(expected > 0, expected + 2, 0))


@pytest.mark.parametrize("block", [(32, 32), (17, 45)])
def test_chunked_hole_filling_of_many_objects_equals_in_memory(block):
    random = np.random.default_rng(3)
    smooth = ndimage.gaussian_filter(random.standard_normal((160, 190)), 2.0)
    mask = np.where(smooth > 0.3 * smooth.std(), 2, 1).astype(np.uint8)
    mask[smooth < -1.2 * smooth.std()] = 3
    rows, columns = np.ogrid[:160, :190]
    mask[np.abs(np.hypot(rows - 80, columns - 95) - 55) < 4] = 2  # across blocks
    expected = instance_labels(mask)
    assert (expected[mask == 1] > 0).sum() > 1000  # many holes filled
    out = np.zeros(mask.shape, np.uint32)
    assert label_chunked(mask, out, block) == expected.max()
    assert np.array_equal(out, expected)


def test_a_cancelled_store_leaves_nothing(model, rng, tmp_path):
    stop = threading.Event()
    stop.set()
    with pytest.raises(Cancelled):
        predict_to_zarr(_stack(rng), model, tmp_path / "o.zarr", tile_size=TILE, stop=stop)
    assert list(tmp_path.iterdir()) == []


def test_stop_during_instance_labelling_publishes_nothing(model, rng, tmp_path):
    stop = threading.Event()

    def press_stop_when_labelling_starts(step):
        if step.stage == "instances":
            stop.set()

    with pytest.raises(Cancelled):
        predict_to_zarr(
            _stack(rng), model, tmp_path / "o.zarr", tile_size=TILE, stop=stop,
            progress=press_stop_when_labelling_starts,
        )  # fmt: skip
    assert list(tmp_path.iterdir()) == []


def test_watershed_on_huge_slices_is_refused_before_any_work(model, rng, tmp_path, monkeypatch):
    monkeypatch.setattr(ooc, "OUT_OF_CORE_THRESHOLD", 100)
    assert ooc.needs_out_of_core((3, 40, 50), "ZYX")
    with pytest.raises(ValueError, match="components"):
        predict_to_zarr(_stack(rng), model, tmp_path / "o.zarr", instances="watershed")
    assert list(tmp_path.iterdir()) == []


def test_the_store_says_when_it_refines_the_mask_and_starts_labelling(model, rng, tmp_path):
    steps = []
    stack = _stack(rng)
    store = predict_to_zarr(
        stack, model, tmp_path / "o.zarr", tile_size=TILE, progress=steps.append
    )
    after_tiles = [(step.stage, step.done, step.total) for step in steps if step.stage != "tiles"]
    slices = stack.shape[0]
    block = zarr.open_group(str(store), mode="r")["mask"].chunks[-2:]
    blocks = refine_blocks(stack.shape, block, mask_steps(model))  # the mask: block by block
    assert blocks >= slices * 2  # closed and filled, at least
    refining = [("mask", k, blocks) for k in range(1, blocks + 1)]
    labelling = [("instances", k, slices) for k in range(slices + 1)]
    assert after_tiles == [("mask", 0, 1), *refining, *labelling]


def test_an_array_whose_guessed_planes_are_too_narrow_is_refused_not_misread(tmp_path):
    from napari_unet.io.outofcore import predict_to_zarr

    model = tiny_model()
    channels_last = np.random.default_rng(0).random((64, 48, 1)).astype(np.float32)
    with pytest.raises(ValueError, match=r'planes of 48 x 1 pixels.*axes="YXC"'):
        predict_stack(channels_last, model)  # was: 64 slices of 48 x 1 pixels
    with pytest.raises(ValueError, match="planes of 48 x 1 pixels"):
        predict_to_zarr(channels_last, model, tmp_path / "x.zarr")
    assert not (tmp_path / "x.zarr").exists()
    given = predict_stack(channels_last, model, axes="YXC")
    assert given.shape[-2:] == (64, 48)


def test_predict_says_a_channels_last_image_has_its_channels_last():
    model = tiny_model()
    rgb = np.zeros((64, 48, 3), np.uint8)
    with pytest.raises(ValueError, match=r"has 64 .*last axis of 3 looks like channels"):
        predict(rgb, model)
    with pytest.raises(ValueError, match="a stack of 2-D slices goes to predict_stack"):
        predict(np.zeros((3, 64, 48), np.float32), model)


def test_finetune_says_that_it_takes_lists_of_images():
    model = tiny_model()
    image, strokes = np.zeros((64, 64), np.float32), np.ones((64, 64), np.uint8)
    with pytest.raises(TypeError, match=r"finetune\(model, \[image\], \[annotation\]\)"):
        list(finetune(model, image, strokes, TrainConfig(iterations=1)))

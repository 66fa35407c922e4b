"""PredictConfig: one set of prediction defaults, checked, shared by the API, CLI and widget."""

import warnings

import numpy as np
import pytest
import torch

import napari_unet as nu
from helpers import tiny_model
from napari_unet.cli import build_parser
from napari_unet.config import PredictConfig
from napari_unet.core.inference import default_tile_size, iter_predict
from napari_unet.core.postprocess import MIN_INSTANCE_SIZE, class_mask, prediction_mask
from napari_unet.io.batch import PredictOptions
from napari_unet.io.volumes import predict_stack, segment_stack, stack_instances

MODEL = tiny_model()
IMAGE = np.random.default_rng(0).random((90, 100)).astype(np.float32)


def test_defaults():
    config = PredictConfig()
    assert config.tile_size == "auto" and config.batch_size == 4 and config.device == "auto"
    assert config.test_time_augmentation is None and config.instances == "components"
    assert config.min_instance_size == MIN_INSTANCE_SIZE == 15
    assert PredictConfig.from_dict(config.to_dict()) == config
    assert nu.PredictConfig is PredictConfig


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"tile_size": 0}, "tile_size must be 'auto', None"),
        ({"tile_size": -572}, "tile_size must be 'auto', None"),
        ({"tile_size": 48.0}, "whole number of pixels >= 1, got 48.0"),
        ({"tile_size": "big"}, "got 'big'"),
        ({"tile_size": True}, "got True"),
        ({"batch_size": 0}, "batch_size must be at least 1, got 0"),
        ({"batch_size": 2.5}, "batch_size must be at least 1, got 2.5"),
        ({"min_instance_size": -1}, "min_instance_size must be a whole number of pixels >= 0"),
        ({"min_instance_size": 1.5}, "(0 keeps every object), got 1.5"),
        ({"instances": "blobs"}, "instances must be 'components' or 'watershed', got 'blobs'"),
        ({"device": 3}, "device must be a name"),
    ],
)
def test_bad_values_raise_a_clear_value_error(values, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        PredictConfig(**values)
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        PredictConfig().replace(**values)


def test_values_are_stored_as_plain_python():
    config = PredictConfig(
        tile_size=np.int64(60),
        batch_size=np.int32(2),
        device=torch.device("cpu"),
        min_instance_size=0,
    )
    assert type(config.tile_size) is int and type(config.batch_size) is int
    assert config.device == "cpu" and PredictConfig(device=None).device == "auto"
    assert PredictConfig(tile_size=None).tile_size is None


def test_tile_config_is_a_deprecated_predict_config_with_its_old_defaults():
    with pytest.warns(DeprecationWarning, match="use napari_unet.PredictConfig"):
        tiles = nu.TileConfig()
    assert isinstance(tiles, PredictConfig)
    assert (tiles.tile_size, tiles.batch_size) == (572, 4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        assert nu.TileConfig.from_dict({"tile_size": 300, "batch_size": 2}).tile_size == 300


def test_keywords_override_the_config_and_keep_their_old_defaults():
    tile = 60
    expected = nu.predict(IMAGE, MODEL, tile_size=tile, device="cpu")
    config = PredictConfig(tile_size=tile, device="cpu")
    np.testing.assert_array_equal(nu.predict(IMAGE, MODEL, config=config), expected)
    np.testing.assert_array_equal(
        nu.predict(IMAGE, MODEL, config=PredictConfig(tile_size=None), tile_size=tile), expected
    )
    # no config: predict's keyword defaults, as before (one pass over the whole image)
    np.testing.assert_array_equal(
        nu.predict(IMAGE, MODEL), nu.predict(IMAGE, MODEL, config=PredictConfig(tile_size=None))
    )
    # the config's own default tile is the model's
    auto = nu.predict(IMAGE, MODEL, config=PredictConfig())
    np.testing.assert_array_equal(
        auto, nu.predict(IMAGE, MODEL, tile_size=default_tile_size(MODEL))
    )
    with pytest.raises(ValueError, match="batch_size must be at least 1"):
        nu.predict(IMAGE, MODEL, config=config, batch_size=0)
    with pytest.raises(TypeError, match="config must be a PredictConfig"):
        nu.predict(IMAGE, MODEL, config={"tile_size": tile})  # type: ignore[arg-type]


def test_the_tiling_of_a_config_reaches_the_tiles():
    out = np.zeros((2, *IMAGE.shape), np.float32)
    steps = list(iter_predict(IMAGE, MODEL, out, config=PredictConfig(tile_size=48, batch_size=1)))
    assert steps[-1].total > 4 and len(steps) == steps[-1].total + 1  # one tile per batch
    stack = np.stack([IMAGE, IMAGE[::-1]])
    np.testing.assert_array_equal(
        predict_stack(stack, MODEL, config=PredictConfig(tile_size=48)),
        predict_stack(stack, MODEL, tile_size=48),
    )


def test_segment_stack_labels_with_the_configs_min_size():
    stack = np.stack([IMAGE, IMAGE[::-1]])
    _, mask, labels = segment_stack(stack, MODEL, config=PredictConfig(min_instance_size=0))
    np.testing.assert_array_equal(labels, stack_instances(mask, min_size=0))
    _, _, default = segment_stack(stack, MODEL, tile_size=None)
    np.testing.assert_array_equal(default, stack_instances(mask))


def test_segment_stack_fills_holes_unless_the_config_keeps_them():
    stack = np.stack([IMAGE, IMAGE[::-1]])
    _, mask, filled = segment_stack(stack, MODEL, tile_size=None)
    _, _, kept = segment_stack(stack, MODEL, config=PredictConfig(tile_size=None, fill_holes=False))
    np.testing.assert_array_equal(filled, stack_instances(mask))
    np.testing.assert_array_equal(kept, stack_instances(mask, fill_holes=False))
    ring = np.ones((1, 20, 20), np.uint8)
    ring[0, 3:15, 3:15], ring[0, 7:10, 7:10] = 2, 1
    assert stack_instances(ring)[0, 8, 8] == 1
    assert stack_instances(ring, fill_holes=False)[0, 8, 8] == 0


def test_segment_stack_closes_gaps_unless_the_config_keeps_them(monkeypatch):
    from napari_unet.io import volumes

    asked = []

    def recording_mask(
        probabilities, *, close_boundaries, background_threshold, fill_holes, previous, annotation
    ):
        asked.append((close_boundaries, fill_holes))
        assert background_threshold == 0.5  # the model has none of its own
        assert previous is None and annotation is None  # no last mask was given
        return prediction_mask(
            probabilities, close_boundaries=close_boundaries, fill_holes=fill_holes
        )

    monkeypatch.setattr(volumes, "prediction_mask", recording_mask)
    stack = np.stack([IMAGE, IMAGE[::-1]])
    probabilities, closed, _ = segment_stack(stack, MODEL, tile_size=None)
    plain_config = PredictConfig(tile_size=None, close_boundaries=False, fill_holes=False)
    _, plain, _ = segment_stack(stack, MODEL, config=plain_config)
    assert asked == [(True, True), (True, True), (False, False), (False, False)]
    for plane, closed_plane, plain_plane in zip(probabilities, closed, plain):
        np.testing.assert_array_equal(closed_plane, prediction_mask(plane))
        np.testing.assert_array_equal(plain_plane, class_mask(plane))


def test_command_line_defaults_are_the_configs():
    args = build_parser().parse_args(["predict", "in.tif", "--model", "m", "--output", "o"])
    config = PredictConfig()
    assert (args.tile_size, args.batch_size, args.device) == (
        config.tile_size,
        config.batch_size,
        config.device,
    )
    assert (args.tta, args.instances, args.min_size, args.fill_holes, args.close_boundaries) == (
        config.test_time_augmentation,
        config.instances,
        config.min_instance_size,
        config.fill_holes,
        config.close_boundaries,
    )
    assert config.close_boundaries is True
    gaps = build_parser().parse_args(
        ["predict", "in.tif", "--model", "m", "--output", "o", "--keep-gaps"]
    )
    assert gaps.close_boundaries is False
    keep = build_parser().parse_args(
        ["predict", "in.tif", "--model", "m", "--output", "o", "--keep-holes"]
    )
    assert keep.fill_holes is False
    args = build_parser().parse_args(
        ["predict", "in.tif", "--model", "m", "--output", "o", "--tile-size", "AUTO"]
    )
    assert args.tile_size == "auto"


def test_batch_options_are_a_predict_config_plus_file_handling():
    options = PredictOptions(tile_size=60, device="cpu", threads=1)
    assert isinstance(options, PredictConfig) and options.min_instance_size == MIN_INSTANCE_SIZE
    assert PredictOptions().tile_size == PredictConfig().tile_size
    with pytest.raises(ValueError, match="min_instance_size"):
        PredictOptions(min_instance_size=-3)

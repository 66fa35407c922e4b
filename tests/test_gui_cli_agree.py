"""The Predict widget and ``napari-unet predict`` read an array alike and give the same outputs.

Both front ends take the axes from one rule, :func:`napari_unet.io.axes.guess_axes`
(the widget with the layer's ``rgb`` flag, the command line from the file when it
declares none), read each slice through :class:`napari_unet.io.axes.ImagePlane` and
number instances through the stack with :func:`napari_unet.io.volumes.slice_instances`.
The only difference left is the layout of the probabilities: the widget's layer
holds the foreground class (2 classes) as (..., Y, X), the file (Z, C, Y, X).
"""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
import torch
from scipy import ndimage

from napari_unet.cli import main
from napari_unet.config import ModelConfig
from napari_unet.core.checkpoint import load_model, new_model, save_model
from napari_unet.core.inference import default_tile_size, predict, tile_layout
from napari_unet.core.tile_choice import distinct_tile_sizes, equivalent_tile_size
from napari_unet.io.axes import ImagePlane
from napari_unet.io.inputs import probe_input
from napari_unet.io.volumes import stack_instances

TILE = 40
"""A valid tile edge for a depth-1 valid network, smaller than the images: tiles overlap."""


def choose_tile_like(widget, model, shape: tuple[int, int], tile: int) -> None:
    """Choose the section's tile size that tiles ``shape`` as ``tile`` does: the section
    offers one size per tiling of the image in view (the smallest), so ``tile`` itself
    may not be listed; the tiles are the same ones, hence the outputs too."""
    choices = distinct_tile_sizes(model, shape, 1024, (default_tile_size(model),))
    size = equivalent_tile_size(model, shape, tile, choices)
    assert size is not None and size in widget.tile_size.choices
    assert tile_layout(model, shape, size) == tile_layout(model, shape, tile)
    widget.tile_size.value = size


def blobs(shape: tuple[int, ...], seed: int) -> np.ndarray:
    """uint16 image of smooth blobs, so the masks hold several objects per slice."""
    noise = np.random.default_rng(seed).normal(size=shape)
    smooth = ndimage.gaussian_filter(noise, sigma=[0] * (len(shape) - 2) + [3, 3])
    return (1000 + 20_000 * (smooth - smooth.min())).astype(np.uint16)


def contrasted_model(channels: int, probe: np.ndarray):
    """A tiny fresh model whose output follows the image: about half of ``probe`` foreground.

    A fresh network's two logits differ by nearly a constant; its head is shifted
    so the class boundary falls at the median over ``probe``, then scaled up.
    """
    model = new_model(ModelConfig(depth=1, base_features=4, in_channels=channels), seed=4)
    probabilities = predict(probe, model, device="cpu")
    median = float(np.median(np.log(probabilities[1]) - np.log(probabilities[0])))
    with torch.no_grad():
        model.head.bias[1] -= median
        model.head.weight *= 1000
        model.head.bias *= 1000
    return model


@pytest.mark.parametrize(
    ("shape", "channels", "axes"),
    [
        ((60, 72), 1, "YX"),  # a 2D image
        ((3, 60, 72), 1, "ZYX"),  # a Z-stack
        ((3, 2, 60, 72), 2, "ZCYX"),  # ImageJ's order: the CLI reads it, the widget refuses
        ((2, 3, 60, 72), 2, "CZYX"),  # multi-channel stack, channels first (CLI refused it)
        ((2, 2, 60, 72), 2, "ZCYX"),  # a tie: the GUI read CZYX, the CLI ZCYX
    ],
)
def test_predict_widget_and_cli_give_identical_outputs(
    qtbot, make_napari_viewer, tmp_path, shape, channels, axes
):
    from napari_unet._widgets import PredictWidget
    from napari_unet._widgets._layers import ImageGeometry
    from napari_unet._widgets._state import model_state

    image = blobs(shape, seed=len(shape) + channels)
    checkpoint = tmp_path / "tiny.safetensors"
    save_model(
        contrasted_model(channels, np.asarray(ImagePlane(image, axes, 0, channels))), checkpoint
    )
    # no axes in the file: the rule decides
    tifffile.imwrite(tmp_path / "img.tif", image, photometric="minisblack")

    # the command line
    assert probe_input(tmp_path / "img.tif", channels).axes == axes
    arguments = ["predict", str(tmp_path / "img.tif"), "--model", str(checkpoint)]
    options = ["--output", str(tmp_path / "out"), "--tile-size", str(TILE), "--device", "cpu"]
    assert main([*arguments, *options]) == 0
    cli = {
        kind: tifffile.imread(tmp_path / "out" / f"img_{kind}.tif")
        for kind in ("mask", "instances", "prob")
    }

    # the Predict widget, on the same array as a napari layer
    viewer = make_napari_viewer()
    layer = viewer.add_image(image, name="img")
    model_state(viewer).set_model(load_model(checkpoint), "tiny")
    widget = PredictWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Predict")
    widget.device.value = "cpu"
    choose_tile_like(widget, model_state(viewer).model, shape[-2:], TILE)
    geometry = ImageGeometry.of(layer, channels)
    assert geometry.axes == axes
    if axes == "ZCYX":  # napari would show the (Z, Y, X) outputs on the C slider: refused
        assert "channel axis" in geometry.layout_problem("img")
        assert widget.run_prediction() is None and "img mask" not in viewer.layers
        return
    with qtbot.waitSignal(widget.finished, timeout=60_000):
        assert widget.run_prediction() is not None
    assert widget.status.text().startswith("Done"), widget.status.text()
    gui = {kind: viewer.layers[f"img {kind}"].data for kind in ("mask", "instances")}

    spatial = tuple(n for letter, n in zip(axes, shape) if letter != "C")
    assert cli["mask"].shape == gui["mask"].shape == spatial
    np.testing.assert_array_equal(gui["mask"], cli["mask"])
    np.testing.assert_array_equal(gui["instances"], cli["instances"])
    foreground = cli["prob"][:, 1] if "Z" in axes else cli["prob"][1]
    np.testing.assert_allclose(viewer.layers["img probabilities"].data, foreground, atol=1e-6)

    # the comparison has something to compare: both classes, objects numbered through Z
    assert set(np.unique(cli["mask"])) == {1, 2}
    assert cli["instances"].max() >= 2 * (len(spatial) - 1)
    np.testing.assert_array_equal(cli["instances"], stack_instances(cli["mask"]))


@pytest.mark.parametrize(
    ("shape", "channels", "axes", "channel_axis", "spatial"),
    [
        ((4, 3, 20, 24), 1, "ZCYX", 1, (4, 20, 24)),  # RGB planes: luminance, as the CLI
        ((2, 4, 20, 24), 1, "ZYX", None, (2, 4, 20, 24)),  # (T, Z, Y, X): T stepped through
        ((2, 4, 2, 20, 24), 2, "ZCYX", 2, (2, 4, 20, 24)),  # (T, Z, C, Y, X)
        ((2, 4, 20, 24, 3), 1, "ZYXS", 4, (2, 4, 20, 24)),  # an RGB layer with T and Z
    ],
)
def test_layers_with_more_axes_than_the_rule_step_through_the_leading_ones(
    shape, channels, axes, channel_axis, spatial
):
    import napari

    from napari_unet._widgets._layers import ImageGeometry

    data = blobs(shape[:-1] if axes.endswith("S") else shape, seed=1)
    if axes.endswith("S"):  # the colour samples, the last axis
        data = np.stack([data, data // 2, data // 3], axis=-1)
    layer = napari.layers.Image(data, rgb=axes.endswith("S"))
    geometry = ImageGeometry.of(layer, channels)
    assert (geometry.axes, geometry.channel_axis) == (axes, channel_axis)
    assert geometry.spatial_shape == spatial
    planes = list(geometry.planes())
    assert len(planes) == int(np.prod(spatial[:-2]))
    last = planes[-1]
    outer = len(shape) - len(axes)
    z = last[outer] if "Z" in axes else 0
    expected = ImagePlane(data[last[:outer]], axes, z, channels)  # as the CLI reads a T
    np.testing.assert_array_equal(geometry.read_plane(data, last, channels), expected)
    # the same geometry built from its channel axis alone (as _memory's tests do)
    rebuilt = ImageGeometry(geometry.shape, geometry.channel_axis, geometry.rgb)
    assert rebuilt.axes == axes


def test_min_size_reaches_the_cli_the_zarr_store_and_the_widget_alike(
    qtbot, make_napari_viewer, tmp_path
):
    """``--min-size`` and the "Smallest object (px)" spin box drop the same objects."""
    import zarr

    from napari_unet._widgets import PredictWidget
    from napari_unet._widgets._state import model_state
    from napari_unet.config import PredictConfig

    image = blobs((2, 60, 72), seed=9)
    checkpoint = tmp_path / "tiny.safetensors"
    save_model(contrasted_model(1, image[0]), checkpoint)
    tifffile.imwrite(tmp_path / "img.tif", image, photometric="minisblack")
    arguments = ["predict", str(tmp_path / "img.tif"), "--model", str(checkpoint)]
    options = ["--tile-size", str(TILE), "--device", "cpu"]

    def cli(min_size, output_format="tiff"):
        out = tmp_path / f"out-{min_size}-{output_format}"
        sizes = ["--min-size", str(min_size), "--output-format", output_format]
        assert main([*arguments, *options, *sizes, "--output", str(out)]) == 0
        if output_format == "zarr":
            return np.asarray(zarr.open_group(str(out / "img_prediction.zarr"))["instances"])
        return tifffile.imread(out / "img_instances.tif")

    default = PredictConfig().min_instance_size
    everything, usual = cli(0), cli(default)
    sizes = np.bincount(everything.ravel())[1:]
    threshold = int(np.median(sizes[sizes >= default])) + 1  # half the usual objects are smaller
    fewer = cli(threshold)
    mask = tifffile.imread(tmp_path / f"out-{threshold}-tiff" / "img_mask.tif")
    assert 0 < fewer.max() < usual.max() < everything.max()
    np.testing.assert_array_equal(usual, stack_instances(mask))
    np.testing.assert_array_equal(fewer, stack_instances(mask, min_size=threshold))
    np.testing.assert_array_equal(cli(threshold, "zarr"), fewer)

    viewer = make_napari_viewer()
    viewer.add_image(image, name="img")
    model_state(viewer).set_model(load_model(checkpoint), "tiny")
    widget = PredictWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Predict")
    # the section starts at the config's defaults, resolved for the model and the image in
    # view ("auto": the model's default tile, which covers a 60x72 slice in one tile, so
    # the section passes None, one whole-image pass: the tiles the CLI's "auto" makes;
    # test-time augmentation None: the model's own, off for this one)
    model = model_state(viewer).model
    assert widget.tile_size.native.currentText().startswith("Automatic (whole image")
    assert widget.predict_config() == PredictConfig(tile_size=None, test_time_augmentation=False)
    assert tile_layout(model, (60, 72), None) == tile_layout(
        model, (60, 72), default_tile_size(model)
    )
    widget.device.value = "cpu"
    choose_tile_like(widget, model, (60, 72), TILE)
    widget.min_size.value = threshold
    assert widget.predict_config().min_instance_size == threshold
    widget.fill_holes.value = False
    assert widget.predict_config().fill_holes is False
    widget.fill_holes.value = True
    widget.close_boundaries.value = False
    assert widget.predict_config().close_boundaries is False
    widget.close_boundaries.value = True
    with qtbot.waitSignal(widget.finished, timeout=60_000):
        assert widget.run_prediction() is not None
    np.testing.assert_array_equal(viewer.layers["img instances"].data, fewer)


def test_the_boundary_threshold_choice_follows_the_model_and_reaches_the_config(
    make_napari_viewer,
):
    from napari_unet._widgets import PredictWidget
    from napari_unet._widgets._predict_controls import MODELS_OWN
    from napari_unet._widgets._state import model_state

    viewer = make_napari_viewer()
    state = model_state(viewer)
    em, nuclei = load_model("em-membranes"), load_model("nuclei")
    state.set_model(em, "em-membranes")
    widget = PredictWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Predict")
    assert widget.background_threshold.value == MODELS_OWN
    own = em.info.background_threshold
    assert widget.background_threshold.native.currentText() == f"the model's own ({own:.2f})"
    assert widget.predict_config().background_threshold is None
    widget.background_threshold.value = 0.6
    assert widget.predict_config().background_threshold == 0.6
    state.set_model(nuclei, "nuclei")  # a fixed choice is kept
    assert widget.background_threshold.value == 0.6
    widget.background_threshold.value = MODELS_OWN
    own = nuclei.info.background_threshold
    assert widget.background_threshold.native.currentText() == f"the model's own ({own:.2f})"
    widget.close_boundaries.value = False  # no growth without the closing: greyed out
    assert not widget.background_threshold.enabled


def test_the_fine_tune_widget_starts_at_the_core_and_cli_defaults(qtbot):
    """One set of defaults: the widget's controls start where the core and the CLI do."""
    from napari_unet import AugmentConfig, TrainConfig, WeightConfig
    from napari_unet._widgets._finetune_settings import FinetuneSettings
    from napari_unet.cli import build_parser
    from napari_unet.cli.train import _train_config

    settings = FinetuneSettings()
    assert settings.augment_config() == AugmentConfig()
    assert settings.weight_config() == WeightConfig()
    args = build_parser().parse_args(
        ["train", "--images", "a.tif", "--labels", "b.tif", "--new", "--output", "o"]
    )
    assert (args.w0, args.sigma, args.no_elastic) == (WeightConfig.w0, WeightConfig.sigma, False)
    widget_config, cli_config = settings.train_config(), _train_config(args)
    fields = ("learning_rate", "lr_schedule", "distillation", "batch_size", "patch_size")
    for field in (*fields, "seconds", "iterations", "finetune_iterations"):
        assert (
            getattr(widget_config, field)
            == getattr(cli_config, field)
            == getattr(TrainConfig(), field)
        )


def test_a_new_model_has_one_architecture_in_the_widget_and_the_cli(qtbot):
    from napari_unet._widgets._new_model import NewModelOptions
    from napari_unet.cli import build_parser
    from napari_unet.cli.train import _new_or_loaded_model
    from napari_unet.config import NEW_MODEL_CONFIG

    args = build_parser().parse_args(
        ["train", "--images", "a.tif", "--labels", "b.tif", "--new", "--output", "o"]
    )
    assert _new_or_loaded_model(args).config == NewModelOptions().config() == NEW_MODEL_CONFIG
    assert NEW_MODEL_CONFIG.base_features == 8 and NEW_MODEL_CONFIG.padding == "valid"

"""Which axes of a napari layer the widgets read as channels: what the layer declares
(its axis labels) wins; a guessed channel axis after a stack axis that may be a second
stack axis is refused with words that say how to declare it; a (T, 1, Y, X) stack is
read as one."""

from __future__ import annotations

import numpy as np
import pytest

from napari_unet.io.axes import ImagePlane


def _layer(shape, labels=None, rgb=False):
    import napari

    data = np.random.default_rng(0).integers(0, 255, shape).astype(np.uint8)
    options = {} if labels is None else {"axis_labels": labels}
    return napari.layers.Image(data, rgb=rgb, **options)


def test_a_stack_of_one_slice_per_time_point_is_read_as_a_stack():
    """(T, 1, Y, X) was read as ZCYX with one channel, and refused as a channel axis."""
    from napari_unet._widgets._geometry import ImageGeometry

    layer = _layer((4, 1, 30, 36))
    geometry = ImageGeometry.of(layer, 1)
    assert (geometry.axes, geometry.channel_axis) == ("ZYX", None)
    assert geometry.layout_problem("movie") is None
    assert geometry.spatial_shape == (4, 1, 30, 36)
    assert len(list(geometry.planes())) == 4
    np.testing.assert_array_equal(
        geometry.read_plane(layer.data, (2, 0), 1), layer.data[2].astype(np.float32)
    )


def test_axes_the_layer_declares_are_believed():
    """(T, Z, Y, X) with Z = 3 labelled t, z, y, x: 3 slices per time point, not RGB."""
    from napari_unet._widgets._geometry import ImageGeometry, declared_axes

    layer = _layer((4, 3, 30, 36), labels=("t", "z", "y", "x"))
    assert declared_axes(layer) == "TZYX"
    geometry = ImageGeometry.of(layer, 1)
    assert (geometry.axes, geometry.channel_axis, geometry.declared) == ("ZYX", None, True)
    assert geometry.layout_problem("movie") is None
    assert geometry.spatial_shape == (4, 3, 30, 36)
    np.testing.assert_array_equal(
        geometry.read_plane(layer.data, (3, 1), 1), layer.data[3, 1][None].astype(np.float32)
    )
    # (3, Z, Y, X) for a 3-channel model: channels first, as labelled (the rule: CZYX too)
    channels = ImageGeometry.of(_layer((3, 4, 30, 36), labels=("Channel", "Z", "Y", "X")), 3)
    assert (channels.axes, channels.channel_axis, channels.declared) == ("CZYX", 0, True)
    data = _layer((3, 4, 30, 36)).data
    expected = np.asarray(ImagePlane(data, "CZYX", 2, 3))
    np.testing.assert_array_equal(channels.read_plane(data, (2,), 3), expected)
    rgb = ImageGeometry.of(_layer((2, 3, 30, 36, 3), labels=("t", "z", "y", "x"), rgb=True), 1)
    assert (rgb.axes, rgb.channel_axis, rgb.spatial_shape) == ("ZYXS", 4, (2, 3, 30, 36))
    assert declared_axes(_layer((4, 3, 30, 36))) is None  # napari's own labels say nothing
    assert declared_axes(_layer((4, 3, 30, 36), labels=("a", "b", "y", "x"))) is None


@pytest.mark.parametrize(
    ("labels", "channels", "words"),
    [
        (("z", "c", "y", "x"), 1, "declared as ZCYX"),
        (("t", "z", "y", "x"), 2, "axis labels), and the model expects 2 input channels"),
        (("c", "t", "y", "x"), 1, "expects 1 input channel but the image has 4"),
    ],
)
def test_declared_axes_the_widgets_cannot_read_are_refused_saying_why(labels, channels, words):
    from napari_unet._widgets._geometry import ImageGeometry

    geometry = ImageGeometry.of(_layer((4, 3, 30, 36), labels=labels), channels)
    problem = geometry.layout_problem("movie")
    assert problem is not None and words in problem
    assert "axis_labels =" not in problem  # declared: no advice to declare them
    assert problem.endswith(".") and ".." not in problem


def test_channels_the_model_cannot_take_are_refused_with_a_way_out():
    from napari_unet._widgets._geometry import ImageGeometry

    two = _layer((2, 30, 36), labels=("c", "y", "x"))
    problem = ImageGeometry.of(two, 1).layout_problem("two_ch")
    assert "expects 1 input channel but the image has 2" in problem
    assert problem.endswith(
        "axes CYX). Split its channels (right-click the layer, Split Stack) and predict the "
        "one the model was made for, or choose a model made for 2 channels."
    )
    three = ImageGeometry.of(_layer((3, 30, 36), labels=("c", "y", "x")), 2)
    assert three.layout_problem("rgb").endswith(
        "Choose a model made for 3 channels, or an image with 2."
    )
    later = ImageGeometry.of(_layer((5, 2, 30, 36), labels=("z", "c", "y", "x")), 1)
    problem = later.layout_problem("zc")  # Split Stack would split the slices: not offered
    assert "Split Stack" not in problem and problem.endswith(
        "made for 2 channels, or an image with 1."
    )
    one = ImageGeometry.of(_layer((5, 30, 36), labels=("z", "y", "x")), 2)
    assert one.layout_problem("z").endswith(
        "Choose a model made for 1 channel, or an image with 2."
    )


def test_a_guessed_channel_axis_after_a_stack_axis_says_how_to_declare_the_axes():
    """(T, 3, Y, X) for a one-channel model reads as RGB planes (the command line's rule):
    the widgets cannot line those up, and the words now say how to declare a stack."""
    from napari_unet._widgets._geometry import ImageGeometry

    layer = _layer((4, 3, 30, 36))
    geometry = ImageGeometry.of(layer, 1)
    assert (geometry.axes, geometry.channel_axis) == ("ZCYX", 1)  # as the command line reads it
    problem = geometry.layout_problem("movie")
    assert "channel axis (3 channels)" in problem and "read as ZCYX" in problem
    assert "viewer.layers['movie'].axis_labels = ('t', 'z', 'y', 'x')" in problem
    layer.axis_labels = ("t", "z", "y", "x")  # as the words say
    assert ImageGeometry.of(layer, 1).layout_problem("movie") is None


def test_channels_last_are_named_so_and_how_to_put_them_first():
    """A (Y, X, 2) file: napari makes no RGB of 2 channels, so it reads as thin slices."""
    from napari_unet._widgets._geometry import ImageGeometry

    for in_channels in (1, 2):  # refused as the command line refuses it, for any model
        guessed = ImageGeometry.of(_layer((30, 36, 2)), in_channels)
        assert guessed.layout_problem("two") == (
            "“two” (shape (30, 36, 2)) was read as 30 slices of 36 x 2 pixels: its last axis "
            "probably holds channels. Put them first (in napari's console: "
            "viewer.layers['two'].data = np.moveaxis(viewer.layers['two'].data, -1, 0)), then "
            "use a model made for that many channels (Input channels, Model section) or split "
            "them (right-click the layer, Split Stack) and use one."
        )
    assert ImageGeometry.of(_layer((30, 36, 16)), 1).layout_problem("wide") is None
    declared = ImageGeometry.of(_layer((30, 36, 2), labels=("y", "x", "c")), 2)
    problem = declared.layout_problem("two")
    assert problem.startswith(
        "“two” has its channel axis (2 channels) last: shape (30, 36, 2), declared as YXC. "
        "napari would show annotations and outputs, which have no channel axis, over the "
        "wrong axes (napari lines layers up by their last). Put the channels first"
    )
    assert "stack axis" not in problem
    time_series = ImageGeometry.of(_layer((4, 2, 30, 36), labels=("t", "c", "y", "x")), 2)
    assert "declared as TCYX" in time_series.layout_problem("movie")  # as the user named it


def test_an_rgb_image_for_a_two_channel_model_is_refused_before_a_run():
    """It failed only once the run had started, with no advice."""
    from napari_unet._widgets._geometry import ImageGeometry

    rgb = _layer((30, 36, 3), rgb=True)
    assert ImageGeometry.of(rgb, 2).channels_problem("photo", 2) == (
        "“photo” cannot be read: the model expects 2 input channels but the image has 3 "
        "(shape (30, 36, 3), axes YXS). Choose a model made for 3 channels, or an image with 2."
    )
    for readable in (1, 3):  # luminance, or the three colours
        assert ImageGeometry.of(rgb, readable).channels_problem("photo", readable) is None


@pytest.mark.gui
def test_predict_widget_predicts_a_declared_time_series_of_stacks(qtbot, make_napari_viewer):
    from helpers import tiny_model
    from napari_unet._widgets import PredictWidget
    from napari_unet._widgets._state import model_state

    viewer = make_napari_viewer()
    data = np.random.default_rng(1).integers(0, 255, (2, 3, 40, 48)).astype(np.uint8)
    viewer.add_image(data, name="movie", axis_labels=("t", "z", "y", "x"))
    model_state(viewer).set_model(tiny_model(), "tiny")
    widget = PredictWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Predict")
    widget.device.value = "cpu"
    with qtbot.waitSignal(widget.finished, timeout=60_000):
        assert widget.run_prediction() is not None
    assert widget.status.text().startswith("Done"), widget.status.text()
    assert viewer.layers["movie mask"].data.shape == (2, 3, 40, 48)
    assert viewer.layers["movie probabilities"].data.shape == (2, 3, 40, 48)


def test_a_few_undeclared_planes_are_said_to_be_read_as_slices():
    """A 2-channel file opened as one layer: napari shows a slider, Predict reads slices."""
    from napari_unet._widgets._geometry import ImageGeometry

    said = ImageGeometry.of(_layer((2, 30, 36)), 1).reading_note(1)
    assert said == (
        " Its 2 planes were read as slices: if they are channels, split the layer "
        "(right-click it, Split Stack) and predict the one the model was made for, or make "
        "a new model with 2 input channels (Model section)."
    )
    for quiet in (
        _layer((9, 30, 36)),
        _layer((30, 36)),
        _layer((2, 30, 36), labels=("z", "y", "x")),
    ):
        assert ImageGeometry.of(quiet, 1).reading_note(1) == ""  # a stack, a plane, declared
    assert ImageGeometry.of(_layer((2, 30, 36)), 2).reading_note(2) == ""  # the model's channels


def test_a_channel_count_error_survives_pickling():
    """Raised in a dask or multiprocessing worker, it must come back whole."""
    import pickle

    from napari_unet.io.axes import ChannelCountError

    error = pickle.loads(pickle.dumps(ChannelCountError("two for one", 2, 1)))
    assert (str(error), error.found, error.expected) == ("two for one", 2, 1)


def test_geometry_of_rgb_stack_and_channel_images():
    import napari

    from napari_unet._widgets._layers import ImageGeometry, annotated_planes

    rgb = napari.layers.Image(np.zeros((4, 32, 48, 3)), rgb=True)
    geometry = ImageGeometry.of(rgb, in_channels=1)
    assert geometry.spatial_shape == (4, 32, 48) and geometry.leading_shape == (4,)
    assert geometry.read_plane(rgb.data, (1,), 1).shape == (1, 32, 48)
    channels = napari.layers.Image(np.zeros((2, 5, 32, 48)))
    geometry = ImageGeometry.of(channels, in_channels=2)
    assert geometry.channel_axis == 0 and geometry.spatial_shape == (5, 32, 48)
    assert geometry.read_plane(channels.data, (3,), 2).shape == (2, 32, 48)
    labels = np.zeros((3, 2, 8, 8), np.uint8)
    labels[1, 0, 2, 2] = labels[2, 1, 0, 0] = 1
    assert annotated_planes(labels, 2) == [(1, 0), (2, 1)]


@pytest.mark.gui
def test_predict_says_once_per_layer_that_a_few_planes_were_read_as_slices(
    qtbot, make_napari_viewer
):
    """A real 3-slice stack (3 PNG files opened together) heard it on every run."""
    from helpers import tiny_model
    from napari_unet._widgets import PredictWidget
    from napari_unet._widgets._state import model_state

    viewer = make_napari_viewer()
    viewer.add_image(np.random.default_rng(1).integers(0, 255, (3, 40, 48)), name="slices")
    model_state(viewer).set_model(tiny_model(), "tiny")
    widget = PredictWidget(viewer)
    widget.device.value = "cpu"
    said = []
    for _run in range(2):
        with qtbot.waitSignal(widget.finished, timeout=60_000):
            assert widget.run_prediction() is not None
        said.append(widget.status.text())
    assert "3 planes were read as slices" in said[0]
    assert said[1].startswith("Done") and "planes were read" not in said[1]


def test_fine_tune_says_at_start_that_an_rgb_image_is_learnt_from_its_luminance():
    from napari_unet._widgets._finetune_text import colour_notice
    from napari_unet._widgets._geometry import ImageGeometry

    rgb = ImageGeometry.of(_layer((30, 36, 3), rgb=True), 1)
    said = colour_notice(rgb, 1)
    assert said.startswith("The image is RGB and this model takes one channel: the run learns")
    assert "new model with 3 input channels" in said
    assert colour_notice(ImageGeometry.of(_layer((30, 36, 3), rgb=True), 3), 3) == ""
    assert colour_notice(ImageGeometry.of(_layer((30, 36)), 1), 1) == ""


@pytest.mark.gui
def test_annotate_refuses_channels_read_as_slices(make_napari_viewer, notifications):
    """Strokes on a (Y, X, 2) layer read as 30 slices would train nothing the image shows."""
    from helpers import tiny_model
    from napari_unet._widgets import UNetWidget

    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((30, 36, 2), np.float32), name="two")
    widget = UNetWidget(viewer)
    widget.model.use_model(tiny_model(in_channels=2), "two-channel")
    assert widget.annotate.create_annotation_layer() is None
    assert [layer.name for layer in viewer.layers] == ["two"]
    assert str(notifications[-1].message).startswith("“two” (shape (30, 36, 2)) was read as 30")
    viewer.layers["two"].data = np.moveaxis(viewer.layers["two"].data, -1, 0)  # as it says
    assert widget.annotate.create_annotation_layer().data.shape == (30, 36)


@pytest.mark.gui
def test_annotate_says_a_few_planes_are_read_as_slices(make_napari_viewer, notifications):
    """A 2-channel file opened as one layer reads as 2 slices: Annotate says so, as Predict
    does, when it makes their annotation layer."""
    from helpers import tiny_model
    from napari_unet._widgets import UNetWidget

    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((2, 30, 36), np.float32), name="two")
    widget = UNetWidget(viewer)
    widget.model.use_model(tiny_model(), "one-channel")
    assert widget.annotate.create_annotation_layer().data.shape == (2, 30, 36)
    assert str(notifications[-1].message).startswith("“two”: Its 2 planes were read as slices")
    viewer.add_image(np.zeros((5, 30, 36), np.float32), name="stack")  # a stack: no note
    said = len(notifications)
    assert widget.annotate.create_annotation_layer().data.shape == (5, 30, 36)
    assert "read as slices" not in " ".join(str(n.message) for n in notifications[said:])

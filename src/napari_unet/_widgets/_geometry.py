"""Which axes of an image layer are channels, stack and plane, and reading one plane.

Image layers may be 2D, stacks (..., Y, X), RGB(A) (..., Y, X, 3|4) or carry a
channel axis for a multi-channel model; which axis is which is what the layer's axis
labels say (``layer.axis_labels``, e.g. ``("t", "z", "y", "x")``: :func:`declared_axes`),
else the command line's rule, :func:`napari_unet.io.axes.guess_axes` (see
:meth:`ImageGeometry.of`). Annotations and outputs have the image's *spatial*
shape: its shape without the channel axis.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import napari
import numpy as np

from ..io.axes import MIN_PLANE_SIZE, ChannelCountError, ImagePlane, check_axes, guess_axes


@dataclass(frozen=True)
class ImageGeometry:
    """Where the channels and the spatial axes of an image layer's data are.

    Attributes
    ----------
    shape : tuple of int
        The layer data's shape.
    channel_axis : int or None
        Axis holding the channels (last for RGB images), or None.
    rgb : bool
        Whether the layer is an RGB(A) image.
    """

    shape: tuple[int, ...]
    channel_axis: int | None
    rgb: bool
    axes: str = ""
    """:mod:`napari_unet.io.axes` letters of the last ``len(axes)`` axes; any axes before
    them are further stack axes, stepped through like ``Z``. Empty: derived from
    ``channel_axis`` and ``rgb``."""
    declared: bool = False
    """Whether the axes are the layer's own (its axis labels), not the rule's guess."""
    refusal: str = ""
    """Why the layer's declared axes cannot be read ("": they can, or none were)."""
    labels: str = ""
    """The letters the layer's axis labels declare ("TCYX"), as the user named them;
    :attr:`axes` reads T as Z."""

    def __post_init__(self) -> None:
        if not self.axes:
            object.__setattr__(self, "axes", _axes_from(self.shape, self.channel_axis, self.rgb))

    @classmethod
    def of(cls, layer: napari.layers.Image, in_channels: int) -> ImageGeometry:
        """The geometry of ``layer`` for a model with ``in_channels`` input channels.

        Axes the layer declares (:func:`declared_axes`) are believed: all stack axes
        but the last are stepped through (``("t", "z", "y", "x")`` reads each T's Z
        slices). Else the axes are the command line's guess,
        :func:`napari_unet.io.axes.guess_axes` with the layer's ``rgb`` flag, so both
        front ends read an array alike: (2, Z, Y, X) for a 2-channel model is CZYX,
        (Z, 2, Y, X) and (2, 2, Y, X) are ZCYX. A layer with more than one stack axis
        (more than 4 axes, or (T, Z, Y, X) whose second axis cannot be the model's
        channels, or is 1 long) has its leading axes stepped through, and the rule
        applied to the rest.
        """
        shape = tuple(int(n) for n in image_data(layer).shape)
        rgb = bool(layer.rgb)
        guessed = cls._guessed(shape, rgb, in_channels)
        declared = declared_axes(layer)
        if declared is None:
            return guessed
        try:
            return cls._declared(shape, rgb, declared, in_channels)
        except ValueError as error:  # the guess keeps the shapes the widgets ask for
            way_out = _channels_way_out(error, _declared_channel_axis(declared))
            return dataclasses.replace(guessed, refusal=f"{error}.{way_out}")

    @classmethod
    def _guessed(cls, shape: tuple[int, ...], rgb: bool, in_channels: int) -> ImageGeometry:
        """The geometry by the axes rule (see :meth:`of`)."""
        outer = max(0, len(shape) - 4)
        axes = guess_axes(shape[outer:], in_channels, rgb)
        one_channel_after_a_stack = axes == "ZCYX" and shape[outer + 1] == 1
        if len(axes) == 4 and (
            one_channel_after_a_stack or not _fits(axes, shape[outer:], in_channels)
        ):
            outer += 1  # (T, Z, Y, X): one more stack axis, not a channel axis
            axes = guess_axes(shape[outer:], in_channels, rgb)
        channel = next((axes.index(c) for c in "CS" if c in axes), None)
        return cls(shape, None if channel is None else outer + channel, rgb, axes)

    @classmethod
    def _declared(
        cls, shape: tuple[int, ...], rgb: bool, declared: str, in_channels: int
    ) -> ImageGeometry:
        """The geometry of axes the layer declares (T, Z, C, Y, X and S letters).

        Raises
        ------
        ValueError
            Axes the widgets cannot read (a channel axis between two stack axes) or
            the model cannot take (:func:`~napari_unet.io.axes.check_axes`).
        """
        stacks = [index for index, letter in enumerate(declared) if letter in "TZ"]
        outer = max(0, len(stacks) - 1)  # every stack axis but the last is stepped through
        if stacks[:outer] != list(range(outer)):
            raise ValueError(
                f"its axes are {declared} (its axis labels), and only stack axes (T, Z) "
                "may come before the others; reorder the axes or split the channels"
            )
        try:
            axes = check_axes(declared[outer:].replace("T", "Z"), shape[outer:], in_channels)
        except ValueError as error:
            said = f"its axes are {declared} (its axis labels), and {error}"
            if isinstance(error, ChannelCountError):
                raise ChannelCountError(said, error.found, error.expected) from None
            raise ValueError(said) from None
        channel = next((axes.index(c) for c in "CS" if c in axes), None)
        channel_axis = None if channel is None else outer + channel
        return cls(shape, channel_axis, rgb, axes, declared=True, labels=declared)

    def channels_problem(self, name: str, in_channels: int) -> str | None:
        """Why a model of ``in_channels`` > 1 cannot read this one-channel image, with how
        napari users usually get there (each channel opened as a layer); None: it can."""
        if self.channel_axis is not None:  # as many as the model takes (RGB: luminance)?
            outer = len(self.shape) - len(self.axes)
            try:
                check_axes(self.axes, self.shape[outer:], in_channels)
            except ChannelCountError as error:
                way_out = _channels_way_out(error, self.channel_axis)
                return f"“{name}” cannot be read: {error}.{way_out}"
            return None
        if in_channels == 1:
            return None
        return (
            f"The model takes {in_channels} channels and “{name}” has one (shape "
            f"{self.shape}). napari opens each channel of a file as a layer of its own: stack "
            "them into one layer, channels first (in napari's console, with your layers' "
            "names: viewer.add_image(np.stack([viewer.layers['c0'].data, "
            "viewer.layers['c1'].data]))), or load a model made for one channel."
        )

    def layout_problem(self, name: str) -> str | None:
        """Why the plugin cannot line its layers up with this image (None: it can).

        Annotations and outputs have the :attr:`spatial_shape`, and napari lines layers
        up by their last axes. A channel axis after a stack axis, as in (Z, C, Y, X),
        would put their Z on the image's C slider: strokes painted on one slice would
        train another. RGB (channels last) and a first channel axis are fine. Declared
        axes that cannot be read are refused too, saying why. A guessed channel axis
        may be a second stack axis, (T, Z, Y, X) with 3 slices: the words say how to
        declare the axes then.
        """
        if self.refusal:
            return f"“{name}” (shape {self.shape}) cannot be read: {self.refusal}"
        thin = self._thin_planes(name)
        if thin:
            return thin
        axis = self.channel_axis
        if axis is None or self.rgb or axis == 0:
            return None
        how = "declared" if self.declared else "read"
        where, wrong = "after a stack axis", "on the wrong slider"
        if axis == len(self.shape) - 1:  # (..., Y, X, C) that is not RGB
            where, wrong = "last", "over the wrong axes (napari lines layers up by their last)"
        problem = (
            f"“{name}” has its channel axis ({self.shape[axis]} channels) {where}: shape "
            f"{self.shape}, {how} as {self.labels or self.axes}. napari would show annotations "
            f"and outputs, which have no channel axis, {wrong}. Put the channels first (in "
            f"napari's console: layer.data = np.moveaxis(layer.data, {axis}, 0)), or split "
            "them (right-click the layer, Split Stack) and use one."
        )
        if self.declared:
            return problem
        labels = "'t', 'z', 'y', 'x'" if len(self.shape) == 4 else "'t', 'z', 'c', 'y', 'x'"
        return (
            f"{problem} If that axis holds slices, not channels (a (T, Z, Y, X) stack), "
            f"say so with the layer's axis labels: in napari's console, "
            f"viewer.layers[{name!r}].axis_labels = ({labels})."
        )

    def _thin_planes(self, name: str) -> str | None:
        """Why guessed axes whose planes are narrower than
        :data:`~napari_unet.io.axes.MIN_PLANE_SIZE` are refused, as the command line
        refuses them: (Y, X, 2) is read as Y slices of X x 2 pixels, though its last axis
        almost surely holds channels (napari makes RGB of 3 or 4 only)."""
        height, width = self.spatial_shape[-2:]
        if self.declared or len(self.shape) <= 2 or min(height, width) >= MIN_PLANE_SIZE:
            return None
        slices = int(np.prod(self.leading_shape))
        return (
            f"“{name}” (shape {self.shape}) was read as {slices} slices of {height} x {width} "
            "pixels: its last axis probably holds channels. Put them first (in napari's "
            f"console: viewer.layers[{name!r}].data = np.moveaxis(viewer.layers[{name!r}].data"
            ", -1, 0)), then use a model made for that many channels (Input channels, Model "
            "section) or split them (right-click the layer, Split Stack) and use one."
        )

    def reading_note(self, in_channels: int) -> str:
        """A sentence when the image may not be read as meant: an RGB(A) image for a
        one-channel model is read as its luminance (alpha dropped); 2 to 4 undeclared
        planes are read as slices, though they may be a file's channels; "" otherwise."""
        if self.rgb and in_channels == 1:
            return (
                " The RGB image was read as its luminance (0.299 R + 0.587 G + 0.114 B): "
                "the model takes one channel."
            )
        if not self.planes_may_be_channels:
            return ""
        return (
            f" Its {self.shape[0]} planes were read as slices: if they are channels, split "
            "the layer (right-click it, Split Stack) and predict the one the model was made "
            f"for, or make a new model with {self.shape[0]} input channels (Model section)."
        )

    @property
    def planes_may_be_channels(self) -> bool:
        """Whether the image is 2 to 4 planes read as slices, undeclared: a file's
        channels opened as one layer look the same."""
        undeclared = not self.declared and self.channel_axis is None
        return undeclared and len(self.shape) == 3 and 2 <= self.shape[0] <= 4

    @property
    def spatial_shape(self) -> tuple[int, ...]:
        """The shape without the channel axis: (..., Y, X)."""
        return tuple(n for axis, n in enumerate(self.shape) if axis != self.channel_axis)

    @property
    def leading_shape(self) -> tuple[int, ...]:
        """The stack axes before (Y, X); () for a 2D image."""
        return self.spatial_shape[:-2]

    def planes(self) -> Iterator[tuple[int, ...]]:
        """Index of every 2D plane, in order."""
        return np.ndindex(*self.leading_shape)

    def read_plane(self, data: Any, plane: tuple[int, ...], in_channels: int) -> np.ndarray:
        """One plane as a (C, Y, X) array with the model's channels: float32, or float64
        for types wider than 16 bits (:func:`napari_unet.io.data.working_dtype`)."""
        return np.asarray(self._plane(data, plane, in_channels))

    def colour_plane(self, data: Any, plane: tuple[int, ...], in_channels: int) -> Any:
        """The red, green and blue of one plane of an RGB(A) image that a one-channel model
        reads as its luminance, as a lazy (3, Y, X) view; None for other images."""
        if not self.rgb or in_channels != 1:
            return None
        return self._plane(data, plane, 3)

    def _plane(self, data: Any, plane: tuple[int, ...], in_channels: int) -> ImagePlane:
        """A lazy view of one plane with ``in_channels`` channels, read as the command line
        reads a slice."""
        outer = len(self.shape) - len(self.axes)
        view = _Fixed(data, plane[:outer]) if outer else data
        index = plane[outer] if "Z" in self.axes else 0
        return ImagePlane(view, self.axes, index, in_channels)

    def spatial(self, values: Any) -> list[float]:
        """Per-axis ``values`` of a layer (scale, translate) without the channel axis."""
        values = list(values)
        if self.channel_axis is not None and not self.rgb:
            del values[self.channel_axis]
        return values

    def plane_in_view(self, layer: napari.layers.Layer, viewer: napari.Viewer) -> tuple[int, ...]:
        """Index of the plane the viewer shows (the dims sliders), clipped to the stack."""
        coordinates = self.spatial(layer.world_to_data(viewer.dims.point))
        leading = coordinates[: len(self.leading_shape)]
        return tuple(
            int(np.clip(round(value), 0, size - 1))
            for value, size in zip(leading, self.leading_shape)
        )


_LABEL_LETTERS = {
    "t": "T",
    "time": "T",
    "z": "Z",
    "depth": "Z",
    "c": "C",
    "channel": "C",
    "channels": "C",
    "y": "Y",
    "x": "X",
}
"""Axis labels (lower case) that declare an axis, and their letters."""


def declared_axes(layer: napari.layers.Image) -> str | None:
    """The axes ``layer`` declares with its axis labels, as T, Z, C, Y and X letters
    (and S last for an RGB(A) layer), or None.

    Labels are read without case: ``t``/``time``, ``z``/``depth``, ``c``/``channel``,
    ``y`` and ``x``. napari's own labels (``"-4"``, ``"-3"``, ...) and any other
    label declare nothing: the axes rule decides.
    """
    labels = [str(label).strip().lower() for label in getattr(layer, "axis_labels", ())]
    letters = [_LABEL_LETTERS.get(label) for label in labels]
    if not letters or any(letter is None for letter in letters):
        return None
    return "".join(letter for letter in letters if letter) + ("S" if layer.rgb else "")


def _fits(axes: str, shape: tuple[int, ...], in_channels: int) -> bool:
    """Whether the axes rule's ``axes`` give the model channels it can take."""
    try:
        check_axes(axes, shape, in_channels)
    except ValueError:
        return False
    return True


def _axes_from(shape: tuple[int, ...], channel_axis: int | None, rgb: bool) -> str:
    """Axes letters of the last axes of an image whose channel axis is known."""
    n = len(shape)
    letters = {n - 3: "Y", n - 2: "X", n - 1: "S"} if rgb else {n - 2: "Y", n - 1: "X"}
    if channel_axis is not None and not rgb:
        letters[channel_axis] = "C"
    stack = [axis for axis in range(n) if axis not in letters]
    if stack:
        letters[stack[-1]] = "Z"
    first = min(letters)
    if len(letters) != n - first:
        raise ValueError(f"channel axis {channel_axis} of shape {shape}: more than one stack axis")
    return "".join(letters[axis] for axis in range(first, n))


class _Fixed:
    """``data[outer + key]``: the array with its leading ``outer`` indices fixed, read lazily."""

    def __init__(self, data: Any, outer: tuple[int, ...]) -> None:
        self.data, self.outer = data, tuple(outer)
        self.shape = tuple(data.shape[len(self.outer) :])
        self.dtype = data.dtype

    def __getitem__(self, key: tuple) -> Any:
        return self.data[self.outer + tuple(key)]


def image_data(layer: napari.layers.Image) -> Any:
    """The full-resolution data of an image layer (level 0 of a multiscale one)."""
    return layer.data[0] if layer.multiscale else layer.data


def _channels_way_out(error: ValueError, channel_axis: int | None) -> str:
    """What to do about a channel count the model cannot take ("" for other refusals);
    napari's Split Stack splits the first axis, so it is offered for channels there."""
    if not isinstance(error, ChannelCountError):
        return ""
    if error.expected == 1 and channel_axis == 0:
        return (
            " Split its channels (right-click the layer, Split Stack) and predict the one the "
            f"model was made for, or choose a model made for {error.found} channels."
        )
    wanted = "1 channel" if error.found == 1 else f"{error.found} channels"
    return f" Choose a model made for {wanted}, or an image with {error.expected}."


def _declared_channel_axis(declared: str) -> int | None:
    """The index of the channel axis (C or S) among the ``declared`` letters, if any."""
    return next((index for index, letter in enumerate(declared) if letter in "CS"), None)

"""Axes and channels of images and stacks, and a lazy per-slice view for the model.

Axes letters
------------
An image's axes are described by a string over these letters:

``Y``, ``X``
    The image plane (always the last two spatial axes given to the model).
``Z``
    The slice axis of a stack: depth, time or any other axis the 2D model is run
    along, one slice at a time. At most one.
``C``
    Channels, mapped to the model's input channels (see below).
``S``
    Colour samples (RGB or RGBA): like ``C``, but a fourth (alpha) sample is dropped.

Axes rule (:func:`guess_axes`), used when the axes are not given:

* 2-D: ``YX``;
* 3-D: ``YXS`` when the last axis is 3 or 4 long and the first longer than 4 (or
  ``rgb=True``); ``CYX`` when the first axis equals the model's input channels
  and that is more than 1; otherwise ``ZYX`` (a stack of one-channel slices, as
  napari shows it);
* 4-D: ``ZYXS`` when the last axis is 3 or 4 long and the second longer than 4
  (or ``rgb=True``); ``CZYX`` when the first axis equals the model's input
  channels (more than 1) and the second cannot be its channels; otherwise
  ``ZCYX`` (ImageJ's order, which wins a tie such as (2, 2, Y, X)).

This one rule serves the command line and the napari widgets alike: a napari
layer is read with its ``rgb`` flag as ``rgb`` (see
:meth:`napari_unet._widgets._geometry.ImageGeometry.of`, which also steps through
further leading axes a layer may have, such as T of a (T, Z, Y, X) layer).

TIFF files and OME-Zarr stores carry their axes
(:func:`napari_unet.io.inputs.file_axes`), which take precedence over the guess
(except planar RGB, which napari shows as slices, and tifffile's unknown axis
``Q``, which the guess decides).

A channels-last array that is not RGB(A), such as (Y, X, 2) or (Y, X, 5), is
guessed ``ZYX``: Y slices of X x 2 (or X x 5) pixels, as napari shows it. The command line,
which shows nothing, refuses such a guess (:func:`check_guessed_plane`: a guessed
plane narrower than :data:`MIN_PLANE_SIZE` pixels in Y or X) and asks for the
axes (``--axes YXC``); given or declared axes are not checked so.

Arrays with more than 4 axes (e.g. OME-Zarr's (T, C, Z, Y, X)) are read with
their leading axes of length 1 dropped (:func:`drop_leading_singletons`, a lazy
view): a (1, 1, Z, Y, X) store is a (Z, Y, X) stack, and given axes name the
remaining axes.

Channel rule: C equal to the model's ``in_channels`` is kept; 3 colour channels
(after dropping alpha) for a one-channel model become luminance
``0.299 R + 0.587 G + 0.114 B`` (:func:`napari_unet.io.data.to_channels_first`);
anything else is an error naming both counts.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._leading_axes import drop_leading_singletons as drop_leading_singletons
from .data import to_channels_first, working_dtype

__all__ = [
    "MIN_PLANE_SIZE",
    "ChannelCountError",
    "ImagePlane",
    "check_axes",
    "check_guessed_plane",
    "describe_channels",
    "drop_leading_singletons",
    "guess_axes",
    "guessed_axes",
    "output_shapes",
    "slice_count",
]

_CHANNEL_LETTERS = ("C", "S")


class ChannelCountError(ValueError):
    """An image whose channels the model cannot take: ``found`` of them for ``expected``."""

    def __init__(self, message: str, found: int = 0, expected: int = 0) -> None:
        super().__init__(message)
        self.found, self.expected = found, expected


MIN_PLANE_SIZE = 16
"""Smallest Y and X of a guessed stack's plane (:func:`check_guessed_plane`).

A default U-Net (depth 4) halves the plane four times: 16 pixels shrink to one.
"""


def _is_colour_last(shape: tuple[int, ...], rgb: bool | None) -> bool:
    """Whether the last axis holds RGB(A) samples: 3 or 4 long, and Y (third from last) > 4."""
    if rgb is not None:
        return rgb and shape[-1] in (3, 4)
    return shape[-1] in (3, 4) and shape[-3] > 4


def guess_axes(shape: tuple[int, ...], in_channels: int, rgb: bool | None = None) -> str:
    """Axes of an array from its shape (the module's axes rule).

    Parameters
    ----------
    shape : tuple of int
        Array shape, 2 to 4 axes.
    in_channels : int
        The model's input channels.
    rgb : bool, optional
        Whether the array is RGB(A) (napari's ``layer.rgb``); None = guess.

    Returns
    -------
    str
        E.g. ``"YX"``, ``"ZYX"``, ``"CYX"``, ``"YXS"``, ``"ZCYX"``, ``"CZYX"``, ``"ZYXS"``.
    """
    shape = tuple(int(size) for size in shape)
    if len(shape) == 2:
        return "YX"
    if len(shape) == 3:
        if _is_colour_last(shape, rgb):
            return "YXS"
        if rgb or (shape[0] == in_channels and in_channels > 1):
            return "SYX" if rgb else "CYX"
        return "ZYX"
    if len(shape) == 4:
        if _is_colour_last(shape, rgb):
            return "ZYXS"
        first_is_channels = shape[0] == in_channels and in_channels > 1
        return "CZYX" if first_is_channels and not _maps(shape[1], in_channels) else "ZCYX"
    raise ValueError(
        f"expected an image with 2 to 4 axes ((Y, X), (Z, Y, X), (Z, C, Y, X), ...), got shape "
        f"{shape}; choose one time point or channel first"
    )


def _maps(found: int, in_channels: int) -> bool:
    """Whether ``found`` channels fit a model with ``in_channels`` (the channel rule)."""
    return found == in_channels or (found == 3 and in_channels == 1)


def check_axes(axes: str, shape: tuple[int, ...], in_channels: int) -> str:
    """Validate ``axes`` for an array of ``shape`` and the model's channels.

    Returns
    -------
    str
        ``axes`` upper-cased, ``T`` spelled ``Z``.

    Raises
    ------
    ValueError
        Wrong length, unknown or repeated letters, X before Y, or channels the
        model cannot take.
    """
    if len(axes) != len(shape):  # the letters as given: T is not yet spelled Z
        raise ValueError(f"axes {axes.upper()!r} do not match the image shape {tuple(shape)}")
    axes = axes.upper().replace("T", "Z")
    if set(axes) - set("ZCSYX") or len(set(axes)) != len(axes) or not {"Y", "X"} <= set(axes):
        raise ValueError(
            f"axes {axes!r}: use Y and X once each, at most one Z (or T) slice axis and "
            "at most one C (channels) or S (RGB/RGBA samples) axis"
        )
    if "C" in axes and "S" in axes:
        raise ValueError(f"axes {axes!r}: give channels as C or as S, not both")
    if axes.index("X") < axes.index("Y"):
        raise ValueError(f"axes {axes!r}: Y must come before X; transpose the image first")
    found = _channel_count(axes, shape)
    _channel_mapping(found, in_channels, "S" in axes, shape, axes)
    return axes


def check_guessed_plane(axes: str, shape: tuple[int, ...]) -> None:
    """Refuse guessed axes whose (Y, X) plane is implausibly small: a misread image.

    A (Y, X, 2) array is guessed ``ZYX`` (Y slices of X x 2 pixels, as napari
    shows it) though its last axis almost surely holds channels. Planes narrower
    than :data:`MIN_PLANE_SIZE` pixels in Y or X of an array with more than 2 axes
    are refused; 2-D images, and axes given or declared by the file, are not
    checked.

    Raises
    ------
    ValueError
        Saying to give the axes (``--axes``).
    """
    plane = int(shape[axes.index("Y")]), int(shape[axes.index("X")])
    if len(shape) <= 2 or min(plane) >= MIN_PLANE_SIZE:
        return
    raise ValueError(
        f"the axes guessed from shape {tuple(int(size) for size in shape)}, {axes}, give "
        f"image planes of {plane[0]} x {plane[1]} pixels (Y x X), narrower than "
        f"{MIN_PLANE_SIZE}: an axis probably holds channels. Give the axes with --axes, "
        "e.g. --axes YXC for (Y, X, channels), or --axes ZYX to predict these planes "
        '(in Python: axes="YXC")'
    )


def guessed_axes(shape: tuple[int, ...], in_channels: int, rgb: bool | None = None) -> str:
    """:func:`guess_axes`, refused when its planes are implausibly small
    (:func:`check_guessed_plane`): the rule for an array whose axes are not given."""
    axes = guess_axes(shape, in_channels, rgb)
    check_guessed_plane(axes, shape)
    return axes


def _channel_count(axes: str, shape: tuple[int, ...]) -> int:
    for letter in _CHANNEL_LETTERS:
        if letter in axes:
            return int(shape[axes.index(letter)])
    return 1


def _channel_mapping(
    found: int, in_channels: int, colour: bool, shape: tuple[int, ...], axes: str
) -> tuple[int, str]:
    """(channels kept, "keep" or "luminance"); raises for counts the rule cannot map."""
    if found == in_channels:
        return found, "keep"
    kept = 3 if colour and found == 4 else found
    if kept == in_channels:
        return kept, "keep"
    if kept == 3 and in_channels == 1:
        return kept, "luminance"
    plural = "s" if in_channels != 1 else ""
    raise ChannelCountError(
        f"the model expects {in_channels} input channel{plural} but the image has {found} "
        f"(shape {tuple(shape)}, axes {axes})",
        found,
        in_channels,
    )


def describe_channels(axes: str, shape: tuple[int, ...], in_channels: int) -> dict[str, Any]:
    """JSON-ready record of how an image was mapped to the model (for metadata)."""
    found = _channel_count(axes, shape)
    kept, how = _channel_mapping(found, in_channels, "S" in axes, shape, axes)
    rule = {
        "keep": "channels kept as they are",
        "luminance": "RGB to luminance 0.299 R + 0.587 G + 0.114 B",
    }[how]
    if kept < found:
        rule = f"alpha dropped; {rule}"
    return {
        "axes": axes,
        "shape": [int(size) for size in shape],
        "image_channels": found,
        "model_channels": in_channels,
        "channel_rule": rule,
        "normalisation": "per slice, percentiles from the model's metadata",
    }


def slice_count(shape: tuple[int, ...], axes: str) -> int:
    """Number of slices (1 for an image without a Z axis)."""
    return int(shape[axes.index("Z")]) if "Z" in axes else 1


def output_shapes(
    shape: tuple[int, ...], axes: str, n_classes: int
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Shapes of the probabilities and of the mask/instances for an input.

    Returns
    -------
    probabilities : (C, Y, X) or (Z, C, Y, X)
    mask : (Y, X) or (Z, Y, X)
    """
    plane = (int(shape[axes.index("Y")]), int(shape[axes.index("X")]))
    if "Z" in axes:
        n_slices = slice_count(shape, axes)
        return (n_slices, n_classes, *plane), (n_slices, *plane)
    return (n_classes, *plane), plane


class ImagePlane:
    """Lazy (C, Y, X) float view of one slice of an image, channels mapped.

    Its dtype is :func:`~napari_unet.io.data.working_dtype` of the array's: float32,
    or float64 for types wider than 16 bits.

    Indexing with ``[..., y_slice, x_slice]`` reads only that window from the
    underlying array (numpy, memory map, zarr, dask: anything with basic
    slicing), in blocks of at most ``max_read_pixels`` plane pixels per read.
    This is the image type :func:`napari_unet.core.inference.iter_predict` takes.

    Parameters
    ----------
    array : array-like
        The whole image, axes ``axes``.
    axes : str
        See the module docstring; validated with :func:`check_axes`.
    index : int
        The slice along ``Z`` (ignored without a ``Z`` axis).
    in_channels : int
        The model's input channels.
    max_read_pixels : int, optional
        Largest window (Y x X pixels) read from ``array`` at once; None = no limit.
    """

    def __init__(
        self,
        array: Any,
        axes: str,
        index: int,
        in_channels: int,
        max_read_pixels: int | None = None,
    ) -> None:
        self.array = array
        self.axes = check_axes(axes, tuple(array.shape), in_channels)
        n_slices = slice_count(array.shape, self.axes)
        if not -n_slices <= index < n_slices:
            raise IndexError(f"slice {index} out of range for {n_slices} slice(s)")
        self.index = index % n_slices
        self.in_channels = in_channels
        self.max_read_pixels = max_read_pixels
        found = _channel_count(self.axes, tuple(array.shape))
        self._kept, _ = _channel_mapping(
            found, in_channels, "S" in self.axes, tuple(array.shape), self.axes
        )
        plane = array.shape[self.axes.index("Y")], array.shape[self.axes.index("X")]
        self.shape = (in_channels, int(plane[0]), int(plane[1]))
        self.ndim = 3
        self.dtype = working_dtype(array.dtype)  # float64 for wide types (normalised later)

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        block = self[..., :, :]
        return block if dtype is None else block.astype(dtype)

    def __getitem__(self, key: Any) -> np.ndarray:
        rows, columns = _plane_slices(key, self.shape[1:])
        limit = self.max_read_pixels
        out_rows, out_columns = len(range(*rows)), len(range(*columns))
        if limit is None or out_rows * out_columns <= limit:
            return self._read(slice(*rows), slice(*columns))
        edge = max(1, int(np.sqrt(limit)))
        out = np.empty((self.in_channels, out_rows, out_columns), self.dtype)
        for row in range(0, out_rows, edge):
            for column in range(0, out_columns, edge):
                ys = _sub_slice(rows, row, min(row + edge, out_rows))
                xs = _sub_slice(columns, column, min(column + edge, out_columns))
                block = self._read(ys, xs)
                out[:, row : row + block.shape[1], column : column + block.shape[2]] = block
        return out

    def _read(self, ys: slice, xs: slice) -> np.ndarray:
        """One read of the window; returns (in_channels, y, x) of ``self.dtype``."""
        picks = {"Z": self.index, "C": slice(0, self._kept), "S": slice(0, self._kept)}
        key = tuple(picks.get(letter, ys if letter == "Y" else xs) for letter in self.axes)
        block = np.asarray(self.array[key])
        left = self.axes.replace("Z", "")
        channel = next((left.index(c) for c in _CHANNEL_LETTERS if c in left), None)
        block = block[None] if channel is None else np.moveaxis(block, channel, 0)
        return to_channels_first(block, self.in_channels, rgb=False)


def _plane_slices(key: Any, plane: tuple[int, int]) -> tuple[tuple[int, int, int], ...]:
    """(start, stop, step) of the Y and X slices of a ``[..., ys, xs]`` key."""
    key = key if isinstance(key, tuple) else (key,)
    spatial = [part for part in key if part is not Ellipsis]
    if len(spatial) == 3 and spatial[0] == slice(None):
        spatial = spatial[1:]
    if len(spatial) != 2 or not all(isinstance(part, slice) for part in spatial):
        raise IndexError(f"ImagePlane takes [..., y_slice, x_slice], got {key!r}")
    bounds = tuple(part.indices(size) for part, size in zip(spatial, plane))
    if any(step < 1 for _, _, step in bounds):
        raise IndexError("ImagePlane slices need a positive step")
    return bounds


def _sub_slice(bounds: tuple[int, int, int], first: int, stop: int) -> slice:
    """Output elements ``first:stop`` of the strided range ``bounds``, as a slice."""
    start, _, step = bounds
    return slice(start + first * step, start + (stop - 1) * step + 1, step)

"""Between napari layers and the core: image geometry, layer combo boxes, output layers.

Image layers may be 2D, stacks (..., Y, X), RGB(A) (..., Y, X, 3|4) or carry a
channel axis for a multi-channel model; which axis is which is decided by the
command line's rule, :func:`napari_unet.io.axes.guess_axes` (see
:meth:`ImageGeometry.of`). Annotations and outputs have the image's *spatial*
shape: its shape without the channel axis.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import napari
import numpy as np
from magicgui.widgets import ComboBox, create_widget
from napari.utils.colormaps import DirectLabelColormap

from ..io.axes import ImagePlane, check_axes, guess_axes

OUTPUT_KEY = "napari_unet_output"
"""``layer.metadata`` key marking a layer this plugin created (and may overwrite)."""

ROLE_KEY = "napari_unet_role"
"""``layer.metadata`` key holding the output's intended name, e.g. ``"cells mask"``."""

ANNOTATION_KEY = "napari_unet_annotation"
"""``layer.metadata`` key marking an annotation layer made by the Annotate widget."""

CLASS_COLOURS = (
    "#3b82f6",  # 1 background: blue
    "#f59e0b",  # 2 first foreground class: amber
    "#ec4899",
    "#10b981",
    "#8b5cf6",
    "#ef4444",
    "#06b6d4",
    "#84cc16",
)


def class_colour(label: int) -> str:
    """Display colour of label value ``label`` (1 = background, 2.. = foreground)."""
    return CLASS_COLOURS[(label - 1) % len(CLASS_COLOURS)]


def class_colormap(n_classes: int, show_background: bool = True) -> DirectLabelColormap:
    """Label colours for the annotation convention; 0 (unlabelled) is transparent."""
    colours: dict[int | None, Any] = {None: "transparent", 0: "transparent"}
    for label in range(1, n_classes + 1):
        colours[label] = class_colour(label)
    if not show_background:
        colours[1] = "transparent"
    return DirectLabelColormap(color_dict=colours)


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

    def __post_init__(self) -> None:
        if not self.axes:
            object.__setattr__(self, "axes", _axes_from(self.shape, self.channel_axis, self.rgb))

    @classmethod
    def of(cls, layer: napari.layers.Image, in_channels: int) -> ImageGeometry:
        """The geometry of ``layer`` for a model with ``in_channels`` input channels.

        The axes are the command line's guess, :func:`napari_unet.io.axes.guess_axes`
        with the layer's ``rgb`` flag, so both front ends read an array alike:
        (2, Z, Y, X) for a 2-channel model is CZYX, (Z, 2, Y, X) and (2, 2, Y, X)
        are ZCYX. A layer with more than one stack axis (more than 4 axes, or
        (T, Z, Y, X) whose second axis cannot be the model's channels) has its
        leading axes stepped through, and the rule applied to the rest.
        """
        shape = tuple(int(n) for n in image_data(layer).shape)
        rgb = bool(layer.rgb)
        outer = max(0, len(shape) - 4)
        axes = guess_axes(shape[outer:], in_channels, rgb)
        if len(axes) == 4 and not _fits(axes, shape[outer:], in_channels):
            outer += 1  # (T, Z, Y, X): one more stack axis, not a channel axis
            axes = guess_axes(shape[outer:], in_channels, rgb)
        channel = next((axes.index(c) for c in "CS" if c in axes), None)
        return cls(shape, None if channel is None else outer + channel, rgb, axes)

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
        outer = len(self.shape) - len(self.axes)  # read as the command line reads a slice
        view = _Fixed(data, plane[:outer]) if outer else data
        index = plane[outer] if "Z" in self.axes else 0
        return np.asarray(ImagePlane(view, self.axes, index, in_channels))

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


def annotated_planes(annotation: np.ndarray, n_leading: int) -> list[tuple[int, ...]]:
    """Indices of the 2D planes of ``annotation`` holding at least one label."""
    stack_shape = annotation.shape[:n_leading]
    flat = annotation.reshape(int(np.prod(stack_shape, dtype=int)), -1)
    painted = np.flatnonzero(flat.any(axis=1))
    return [tuple(int(i) for i in np.unravel_index(k, stack_shape)) for k in painted]


def is_output(layer: napari.layers.Layer) -> bool:
    """Whether this plugin created ``layer`` as an output (mask, preview, ...)."""
    return bool(layer.metadata.get(OUTPUT_KEY, False))


def is_annotation(layer: napari.layers.Layer) -> bool:
    """Whether ``layer`` was created as an annotation layer (by the Annotate section)."""
    return bool(layer.metadata.get(ANNOTATION_KEY, False))


# ---- layer combo boxes ------------------------------------------------------------
LAYER_LIST_EVENTS = ("inserted", "removed", "reordered", "renamed")
"""The viewer's layer-list events napari connects a docked magicgui widget's
``reset_choices`` to (``Window.add_dock_widget``); a :class:`LayerCombo` listens to the same."""


class LayerCombo:
    """magicgui's napari layer combo box, plus the choices it does not make by itself.

    The widget is ``magicgui.widgets.create_widget(annotation=layer_type)``: the
    combo box napari registers for its layer types. magicgui re-reads its choices
    on ``reset_choices`` and keeps the chosen item when it is still there; it is
    connected to the viewer's layer-list events (:data:`LAYER_LIST_EVENTS`), as
    napari does for a docked magicgui widget, here for each section (they are
    tabs of one dock, or docks of their own). On top of magicgui this adds only:

    - *choices* from this widget's own viewer, without the plugin's outputs.
      napari's ``get_layers`` finds the viewer through the widget's Qt parents,
      falling back to ``napari.current_viewer()`` (another viewer's layers while
      the widget is not docked yet), and lists the outputs ("… probabilities").
    - *following a new layer* (``follow_new``): an image just opened is chosen.
    - *what is chosen without the user* (``prefer``): at the start, and when the
      chosen layer goes, the topmost preferred layer is chosen, not magicgui's
      first item (the empty one); the Annotations combo never takes a ground
      truth this way. A renamed layer stays chosen (magicgui matches items by
      their text).

    Parameters
    ----------
    viewer : napari.Viewer
    layer_type : type
        ``napari.layers.Image`` or ``napari.layers.Labels``.
    label : str
        Shown beside the combo box.
    accept : callable, optional
        Further filter on layers (default: every layer that is not an output).
    prefer : callable, optional
        The listed layers that may be chosen without the user (default: all).
    follow_new : bool
        Choose a newly added (preferred) layer, e.g. an image just opened.

    Attributes
    ----------
    combo : magicgui.widgets.ComboBox
        The widget; ``combo.value`` is the chosen layer (None: none), and may be set.
    """

    def __init__(
        self,
        viewer: napari.Viewer,
        layer_type: type,
        label: str,
        accept: Callable[[napari.layers.Layer], bool] | None = None,
        *,
        prefer: Callable[[napari.layers.Layer], bool] | None = None,
        follow_new: bool = False,
    ) -> None:
        self.viewer = viewer
        self.accept = accept or (lambda layer: not is_output(layer))
        self.prefer = prefer or (lambda layer: True)
        self.follow_new = follow_new
        options = {"choices": self._choices, "nullable": True}
        combo = create_widget(annotation=layer_type, label=label, options=options)
        assert isinstance(combo, ComboBox)  # what napari registers for its layer types
        self.combo = combo
        self.combo.native.setMinimumContentsLength(12)
        for name in LAYER_LIST_EVENTS:
            # napari holds bound methods weakly; one whose Qt widget is gone raises, and is dropped
            getattr(viewer.layers.events, name).connect(self._on_layers_changed)
        self._choose_preferred()

    def _choices(self, combo: ComboBox) -> list[tuple[str, napari.layers.Layer]]:
        """magicgui's choices callable: (name, layer) of the listed layers, topmost first."""
        return [
            (layer.name, layer)
            for layer in reversed(self.viewer.layers)
            if isinstance(layer, combo.annotation) and self.accept(layer)
        ]

    def _on_layers_changed(self, event: Any) -> None:
        chosen = self.combo.value  # first: raises once the widget is gone (napari disconnects)
        self.combo.reset_choices()
        if chosen is not None and any(layer is chosen for layer in self.layers()):
            self.combo.value = chosen  # e.g. renamed: magicgui dropped its old text
        layer = event.value if event.type == "inserted" else None
        if self.follow_new and layer is not None and self._preferred(layer):
            self.combo.value = layer
        elif self.combo.value is None:
            self._choose_preferred()

    def _preferred(self, layer: napari.layers.Layer) -> bool:
        return any(item is layer for item in self.layers()) and self.prefer(layer)

    def _choose_preferred(self) -> None:
        topmost_first = (layer for _, layer in self._choices(self.combo))
        self.combo.value = next((layer for layer in topmost_first if self.prefer(layer)), None)

    def layers(self) -> list[napari.layers.Layer]:
        """The listed layers, in the combo box's order (magicgui adds new ones last)."""
        return [layer for layer in self.combo.choices if layer is not None]

    @property
    def layer(self) -> Any:
        """The chosen layer, or None."""
        return self.combo.value


# ---- output layers --------------------------------------------------------------
def output_role(source: napari.layers.Layer, kind: str) -> str:
    """The role of the ``kind`` output (``"mask"``, ``"preview"``...) made from ``source``.

    Tied to the source layer's ``unique_id``, not to any name, so renaming the image
    or an output layer never makes a widget lose its outputs or pile up new ones.
    """
    return f"{source.unique_id}:{kind}"


def find_output(
    viewer: napari.Viewer,
    source: napari.layers.Layer,
    kind: str,
    layer_type: type[napari.layers.Layer],
) -> Any:
    """This plugin's ``kind`` output layer made from ``source``, or None."""
    role = output_role(source, kind)
    for layer in viewer.layers:
        if (
            isinstance(layer, layer_type)
            and is_output(layer)
            and layer.metadata.get(ROLE_KEY) == role
        ):
            return layer
    return None


def show_output(
    viewer: napari.Viewer,
    source: napari.layers.Layer,
    kind: str,
    data: np.ndarray,
    layer_type: type,
    *,
    placement: dict[str, Any],
    **display: Any,
) -> Any:
    """Put ``data`` into this plugin's ``kind`` output layer of ``source``, creating it
    (named ``"<source name> <kind>"``) if needed.

    A layer this plugin made earlier for that source and kind gets the new data (and
    the ``contrast_limits`` in ``display``), so re-running replaces outputs instead of
    piling them up, whatever either layer is called now; layers the user made are
    never touched.

    Parameters
    ----------
    viewer : napari.Viewer
    source : napari.layers.Layer
        The layer the output was computed from (the image, or the annotations).
    kind : str
        What the output is, e.g. ``"mask"``.
    data : numpy.ndarray
    layer_type : type
        ``napari.layers.Image`` or ``napari.layers.Labels``.
    placement : dict
        ``scale`` and ``translate`` (one value per axis of ``data``).
    **display
        Further keyword arguments for ``viewer.add_image`` / ``viewer.add_labels``
        (colormap, contrast_limits, opacity, blending, ...).

    Returns
    -------
    napari.layers.Layer
    """
    layer = find_output(viewer, source, kind, layer_type)
    if layer is not None and layer.data.ndim == data.ndim:
        layer.data = data
        for key, value in placement.items():  # the image may have a new pixel size or origin
            setattr(layer, key, value)
        if "contrast_limits" in display:
            layer.contrast_limits = display["contrast_limits"]
        return layer
    index = None
    if layer is not None:  # another dimensionality: replace the layer in place
        index = viewer.layers.index(layer)
        viewer.layers.remove(layer)
    metadata = {OUTPUT_KEY: True, ROLE_KEY: output_role(source, kind)}
    add = viewer.add_image if layer_type is napari.layers.Image else viewer.add_labels
    layer = add(data, name=f"{source.name} {kind}", metadata=metadata, **placement, **display)
    if index is not None:
        viewer.layers.move(viewer.layers.index(layer), index)
    return layer


def placement_for(geometry: ImageGeometry, layer: napari.layers.Layer, extra_axes: int = 0):
    """``scale``/``translate`` aligning an output of spatial shape with ``layer``.

    ``extra_axes`` leading axes (e.g. a class axis) get scale 1 and no shift.
    """
    scale = [1.0] * extra_axes + geometry.spatial(layer.scale)
    translate = [0.0] * extra_axes + geometry.spatial(layer.translate)
    return {"scale": scale, "translate": translate}

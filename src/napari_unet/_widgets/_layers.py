"""Between napari layers and the core: class colours, layer markers, combo boxes, outputs.

Which axis of an image layer is which (:class:`ImageGeometry`, :func:`image_data`) is
:mod:`._geometry`'s, the combo boxes (:class:`LayerCombo`) :mod:`._layer_combo`'s, both
imported here too. Annotations and outputs have the image's
*spatial* shape: its shape without the channel axis.
"""

from __future__ import annotations

from typing import Any

import napari
import numpy as np
from napari.utils.colormaps import DirectLabelColormap

from ._geometry import ImageGeometry, image_data
from ._label_like import looks_like_labels
from ._layer_combo import LAYER_LIST_EVENTS, LayerCombo

__all__ = [  # ImageGeometry, image_data and LayerCombo are other modules', kept importable here
    "ANNOTATION_KEY",
    "CLASS_COLOURS",
    "LAYER_LIST_EVENTS",
    "OUTPUT_KEY",
    "ROLE_KEY",
    "ImageGeometry",
    "LayerCombo",
    "annotated_planes",
    "class_colormap",
    "class_colour",
    "find_output",
    "image_data",
    "image_truth",
    "is_annotation",
    "is_output",
    "mask_colormap",
    "output_role",
    "placement_for",
    "show_output",
]

OUTPUT_KEY = "napari_unet_output"
"""``layer.metadata`` key marking a layer this plugin created (and may overwrite)."""

ROLE_KEY = "napari_unet_role"
"""``layer.metadata`` key holding the output's intended name, e.g. ``"cells mask"``."""

ANNOTATION_KEY = "napari_unet_annotation"
"""``layer.metadata`` key marking an annotation layer made by the Annotate widget."""

WEIGHT_COLORMAP = "cyan"
"""Colormap of the paper's weight map (Predict's "weight map", Fine-tune's "loss weights"):
black at 0, so with additive blending unweighted pixels leave the image unchanged, and
unlike the probabilities' (magma) and the uncertainty's (inferno)."""

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


MASK_TINT = 0.5
"""How far a predicted mask's class colours are mixed towards white: the model's classes
in a paler shade of the strokes' colours, so strokes painted over the mask's outlines
stand out from them."""


def class_colormap(
    n_classes: int, show_background: bool = True, tint: float = 0.0
) -> DirectLabelColormap:
    """Label colours for the annotation convention; 0 (unlabelled) is transparent.

    ``tint``: the share of white mixed into each colour (:data:`MASK_TINT` for a
    predicted mask); ``show_background`` false: label 1 transparent too."""
    colours: dict[int | None, Any] = {None: "transparent", 0: "transparent"}
    for label in range(1, n_classes + 1):
        rgb = np.array([int(class_colour(label)[k : k + 2], 16) for k in (1, 3, 5)]) / 255
        colours[label] = (*(rgb + tint * (1.0 - rgb)), 1.0)
    if not show_background:
        colours[1] = "transparent"
    return DirectLabelColormap(color_dict=colours)


def mask_colormap(n_classes: int) -> DirectLabelColormap:
    """The colours of a predicted class mask: the classes' (:func:`class_colormap`) paler
    by :data:`MASK_TINT`, background transparent."""
    return class_colormap(n_classes, show_background=False, tint=MASK_TINT)


ANNOTATION_BRUSH_SIZE = 3
"""The brush an annotation layer starts with, in image pixels (napari's default is 10).
Strokes painted with a 10 px brush over whatever they pass made bundled ``nuclei`` worse on
DSB in 34 of 48 round-metrics of the loop benchmark, 3 px ones better in 48 of 48 (BENCHMARKS.md,
annotation loop, ``s39-brush*-sloppy``): a wide brush cannot paint the gap between touching
nuclei, or an EM membrane (about 5 px), without painting the objects beside it."""


def dress_annotation_layer(layer: napari.layers.Labels, n_classes: int) -> None:
    """Give a new annotation layer the class colours and the thin brush to paint with."""
    layer.colormap = class_colormap(n_classes)
    layer.brush_size = ANNOTATION_BRUSH_SIZE


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


#: Display settings napari's ``add_*`` functions do not take: set on a new layer after it is made.
SET_AFTER_ADDING = ("contour",)


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
        ``napari.layers.Image``, ``napari.layers.Labels`` or ``napari.layers.Points``
        (then ``data`` is (N, D) coordinates).
    placement : dict
        ``scale`` and ``translate`` (one value per axis of ``data``).
    **display
        Further keyword arguments for ``viewer.add_image`` / ``add_labels`` / ``add_points``
        (colormap, contrast_limits, opacity, blending, ...).

    Returns
    -------
    napari.layers.Layer
    """
    layer = find_output(viewer, source, kind, layer_type)
    points = layer_type is napari.layers.Points  # data: (N, D) coordinates
    ndim = data.shape[1] if points else data.ndim
    if layer is not None and layer.ndim == ndim:
        _refill_output(layer, data, placement, display)
        return layer
    return _add_output(viewer, source, kind, data, layer_type, layer, placement, display)


def _add_output(
    viewer: napari.Viewer,
    source: napari.layers.Layer,
    kind: str,
    data: np.ndarray,
    layer_type: type,
    replaced: Any,
    placement: dict[str, Any],
    display: dict[str, Any],
) -> Any:
    """A new output layer (see :func:`show_output`), where ``replaced`` was if not None."""
    index = None
    if replaced is not None:  # another dimensionality: replace the layer in place
        index = viewer.layers.index(replaced)
        viewer.layers.remove(replaced)
    metadata = {OUTPUT_KEY: True, ROLE_KEY: output_role(source, kind)}
    display = dict(display)
    afterwards = {key: display.pop(key) for key in SET_AFTER_ADDING if key in display}
    add = {
        napari.layers.Image: viewer.add_image,
        napari.layers.Labels: viewer.add_labels,
        napari.layers.Points: viewer.add_points,
    }[layer_type]
    layer = add(data, name=f"{source.name} {kind}", metadata=metadata, **placement, **display)
    for key, value in afterwards.items():
        setattr(layer, key, value)
    if index is not None:
        viewer.layers.move(viewer.layers.index(layer), index)
    return layer


def _refill_output(layer: Any, data: Any, placement: dict, display: dict) -> None:
    """An output ``layer`` gets ``data``, ``placement`` and ``display["contrast_limits"]``
    (the rest of ``display``, e.g. a Labels layer's contour, stays as the user left it)."""
    layer.data = data
    for key, value in placement.items():  # the image may have a new pixel size or origin
        if not np.array_equal(getattr(layer, key), value):  # each set redraws: ~13 ms
            setattr(layer, key, value)
    if "contrast_limits" in display:
        layer.contrast_limits = display["contrast_limits"]


def bring_to_front(viewer: napari.Viewer, layer: napari.layers.Layer) -> None:
    """Put ``layer`` above every other layer and make it the one tools act on.

    Used for the annotation layer after outputs are added above it: the user's strokes
    (and the brush) stay on the layer that trains, not on an output.
    """
    layers = viewer.layers
    if layers.index(layer) != len(layers) - 1:
        layers.move(layers.index(layer), len(layers))
    layers.selection.active = layer


def placement_for(geometry: ImageGeometry, layer: napari.layers.Layer, extra_axes: int = 0):
    """``scale``/``translate`` aligning an output of spatial shape with ``layer``.

    ``extra_axes`` leading axes (e.g. a class axis) get scale 1 and no shift.
    """
    scale = [1.0] * extra_axes + geometry.spatial(layer.scale)
    translate = [0.0] * extra_axes + geometry.spatial(layer.translate)
    return {"scale": scale, "translate": translate}


def image_truth(
    viewer: napari.viewer.Viewer,
    chosen: Any,
    shape: tuple[int, ...] | None,
    integer_after_prediction: bool,
) -> str | None:
    """The name of the topmost image layer that may be a ground truth opened with File →
    Open (which reads a label file as an image), None when there is none: of the
    prediction's ``shape``, neither the ``chosen`` image nor one predicted on, and holding
    labels (:func:`._label_like.looks_like_labels`), or, with ``integer_after_prediction``
    once something was predicted, of an integer type."""
    predicted = {  # the images predicted on are not ground truths
        str(layer.metadata.get(ROLE_KEY, "")).split(":")[0]
        for layer in viewer.layers
        if is_output(layer)
    }
    any_integer = integer_after_prediction and bool(predicted)
    for layer in reversed(viewer.layers):
        if (
            not isinstance(layer, napari.layers.Image)
            or layer is chosen
            or is_output(layer)
            or str(layer.unique_id) in predicted
            or tuple(layer.data.shape) != shape
        ):
            continue
        if looks_like_labels(layer) or (any_integer and np.issubdtype(layer.dtype, np.integer)):
            return str(layer.name)
    return None

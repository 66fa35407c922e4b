"""Which annotation layer belongs to which image, and the combo box that follows it.

The Annotate section names an image's annotation layer :func:`annotation_name` and marks
it (:data:`~napari_unet._widgets._layers.ANNOTATION_KEY`). An :class:`AnnotationCombo`
beside an image combo box chooses that layer whenever the image changes or the layer is
made, and never by itself one made for another image nor a Labels layer the user made (a
ground truth, say): those stay listed for the user to choose. A Labels layer with the
annotation layer's name but no mark is taken for its strokes saved and opened again
(:func:`saved_strokes`): napari's File → Save writes no layer metadata, but proposes the
layer's name as the file's, which File → Open gives the layer back.
"""

from __future__ import annotations

from typing import Any

import napari
from napari.utils.notifications import show_warning

from ._geometry import ImageGeometry
from ._layers import ANNOTATION_KEY, LayerCombo, dress_annotation_layer, is_annotation, is_output
from ._state import model_state


def annotation_name(image_name: str) -> str:
    """Name of the annotation layer of an image."""
    return f"{image_name} annotations"


IMAGE_KEY = "napari_unet_annotates"
"""``layer.metadata`` key of an annotation layer: the ``unique_id`` of the image it was made for."""


def annotates(
    layer: napari.layers.Layer, image: napari.layers.Layer | None, viewer: napari.Viewer
) -> bool:
    """Whether ``layer`` is the annotation layer the Annotate section made for ``image``.

    Tied to the image layer itself, so renaming either layer keeps the link. A layer
    whose image is no longer in ``viewer`` (closed and opened again, say) goes by its
    name, :func:`annotation_name`, as do layers made before the link was recorded.
    """
    if image is None:
        return False
    if not is_annotation(layer):
        return saved_strokes(layer, image)
    made_for = layer.metadata.get(IMAGE_KEY)
    if made_for == image.unique_id:
        return True
    alive = made_for is not None and any(other.unique_id == made_for for other in viewer.layers)
    return not alive and layer.name == annotation_name(image.name)


def saved_strokes(layer: napari.layers.Layer, image: napari.layers.Layer | None) -> bool:
    """Whether ``layer`` is ``image``'s strokes saved and opened again: a Labels layer
    named :func:`annotation_name` that the plugin did not make (no annotation mark, not an
    output). The Annotate section marks it once it picks it up (:func:`mark_annotation`);
    till then it is taken for the image's annotation layer all the same, never for a
    ground truth."""
    return (
        image is not None
        and isinstance(layer, napari.layers.Labels)
        and not is_annotation(layer)
        and not is_output(layer)
        and layer.name == annotation_name(image.name)
    )


def annotation_link(image: napari.layers.Layer) -> dict[str, Any]:
    """The metadata that marks an annotation layer and links it to ``image``."""
    return {ANNOTATION_KEY: True, IMAGE_KEY: image.unique_id, "image": image.name}


def mark_annotation(
    layer: napari.layers.Labels, image: napari.layers.Layer, n_classes: int
) -> None:
    """Make ``layer`` the annotation layer of ``image``: the mark and link in its metadata
    (:func:`annotation_link`), the class colours and the thin brush
    (:func:`~napari_unet._widgets._layers.dress_annotation_layer`)."""
    layer.metadata = {**layer.metadata, **annotation_link(image)}
    dress_annotation_layer(layer, n_classes)


def set_aside(layer: napari.layers.Labels, shape: tuple[int, ...]) -> None:
    """Unlink an annotation layer whose shape no longer fits the image's planes (the
    model's number of input channels changed): it stays, as a plain Labels layer, and
    is renamed so that its name no longer makes it the image's strokes."""
    layer.metadata = {
        key: value
        for key, value in layer.metadata.items()
        if key not in (ANNOTATION_KEY, IMAGE_KEY)
    }
    old_name = layer.name
    layer.name = f"{old_name} (set aside)"
    show_warning(
        f"“{old_name}” has shape {tuple(layer.data.shape)}, but with this model the "
        f"image's planes are {shape}: a new annotation layer is made. The old one is "
        f"kept as “{layer.name}”, no longer linked to the image."
    )


def annotation_of(viewer: napari.Viewer, image: napari.layers.Layer | None) -> Any:
    """The annotation layer of ``image`` in ``viewer`` (see :func:`annotates`), or None."""
    return next((layer for layer in viewer.layers if annotates(layer, image, viewer)), None)


class AnnotationCombo(LayerCombo):
    """A Labels :class:`~napari_unet._widgets._layers.LayerCombo` that follows an image combo.

    Parameters
    ----------
    viewer : napari.Viewer
    image_picker : LayerCombo
        The section's image combo box; its image's annotation layer is chosen.
    label : str
        Shown beside the combo box.
    """

    def __init__(
        self, viewer: napari.Viewer, image_picker: LayerCombo, label: str = "Annotations"
    ) -> None:
        self.image_picker = image_picker
        super().__init__(viewer, napari.layers.Labels, label, prefer=self.annotates_image)
        image_picker.combo.changed.connect(self.match_image)
        self.match_image()

    def annotates_image(self, layer: napari.layers.Layer) -> bool:
        """Whether ``layer`` is the annotation layer of the chosen image."""
        return annotates(layer, self.image_picker.layer, self.viewer)

    def match_image(self, *_: Any) -> None:
        """Choose the image's annotation layer; never one made for another image.

        Other Labels layers (a ground truth, say) stay listed for the user to choose.
        """
        image, current = self.image_picker.layer, self.layer
        match = next((layer for layer in self.layers() if self.annotates_image(layer)), None)
        if match is not None:
            self.combo.value = match
        elif image is not None and current is not None and is_annotation(current):
            self.combo.value = None

    def follow(self, layer: napari.layers.Layer) -> None:
        """``layer`` was selected in the layer list: an annotation layer made for the chosen
        image is chosen; one made for another image the image combo box lists is chosen
        with its image, unless the user chose the image shown there; one whose image is
        gone is chosen when it has the chosen image's shape. Other Labels layers (a ground
        truth, say) are chosen only by the user."""
        marked = is_annotation(layer) or self.annotates_image(layer)
        if not marked or not any(item is layer for item in self.layers()):
            return
        made_for = layer.metadata.get(IMAGE_KEY)
        image = next(
            (item for item in self.image_picker.layers() if item.unique_id == made_for), None
        )
        if self.annotates_image(layer):
            self.combo.value = layer
        elif image is not None:
            if self.image_picker.follows(image) and not self.image_picker.user_chose():
                self.image_picker.combo.value = image  # match_image then chooses ``layer``
        elif not any(item.unique_id == made_for for item in self.viewer.layers):
            if self._fits_image(layer):
                self.combo.value = layer

    def _fits_image(self, layer: napari.layers.Layer) -> bool:
        """Whether ``layer`` has the chosen image's spatial shape."""
        image = self.image_picker.layer
        if image is None:
            return False
        state = model_state(self.viewer)
        in_channels = state.model.config.in_channels if state.has_model else 1
        return tuple(layer.data.shape) == ImageGeometry.of(image, in_channels).spatial_shape

    def _on_layers_changed(self, event: Any) -> None:
        super()._on_layers_changed(event)
        inserted = event.value if event.type == "inserted" else None
        if inserted is not None and (is_annotation(inserted) or self.annotates_image(inserted)):
            self.match_image()  # e.g. just made by the Annotate section

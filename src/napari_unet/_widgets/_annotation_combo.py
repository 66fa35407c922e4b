"""Which annotation layer belongs to which image, and the combo box that follows it.

The Annotate section names an image's annotation layer :func:`annotation_name` and marks
it (:data:`~napari_unet._widgets._layers.ANNOTATION_KEY`). An :class:`AnnotationCombo`
beside an image combo box chooses that layer whenever the image changes or the layer is
made, and never by itself one made for another image nor a Labels layer the user made (a
ground truth, say): those stay listed for the user to choose.
"""

from __future__ import annotations

from typing import Any

import napari

from ._layers import LayerCombo, is_annotation


def annotation_name(image_name: str) -> str:
    """Name of the annotation layer of an image."""
    return f"{image_name} annotations"


def annotates(layer: napari.layers.Layer, image: napari.layers.Layer | None) -> bool:
    """Whether ``layer`` is the annotation layer the Annotate section made for ``image``."""
    return is_annotation(layer) and image is not None and layer.name == annotation_name(image.name)


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
        return annotates(layer, self.image_picker.layer)

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

    def _on_layers_changed(self, event: Any) -> None:
        super()._on_layers_changed(event)
        if event.type == "inserted" and is_annotation(event.value):
            self.match_image()  # e.g. just made by the Annotate section

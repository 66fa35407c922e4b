"""What the Fine-tune section does when a layer of its running fine-tune is removed: the
image (no more previews, the last one hidden) or the annotation layer (said: napari
cannot bring a removed layer back). The run goes on with what it read."""

from __future__ import annotations

import napari

from ._layers import find_output


def removal_notice(
    viewer: napari.Viewer,
    removed: napari.layers.Layer,
    image: napari.layers.Image | None,
    strokes: napari.layers.Labels | None,
) -> str:
    """The notice for ``removed`` during a run on ``image`` and its annotation layer
    ``strokes``; "" when it is neither. The image's preview is hidden: it would stand for
    an image that is gone."""
    if image is not None and removed is image:
        preview = find_output(viewer, image, "preview", napari.layers.Image)
        if preview is not None:
            preview.visible = False
        return (
            f"“{removed.name}” was removed: the fine-tune goes on with the image and "
            "strokes it read, without previews; Stop ends it."
        )
    if strokes is not None and removed is strokes:
        return (
            f"“{removed.name}” was removed: the fine-tune goes on with the strokes it read, "
            "but the layer is gone (napari cannot undo a removal); to paint on, create an "
            "annotation layer again (Annotate)."
        )
    return ""

"""The Annotate section: an annotation layer per image, class brushes, painted-pixel counts."""

from __future__ import annotations

from typing import Any

import napari
import numpy as np
from magicgui.widgets import Container, PushButton
from napari.layers import Labels
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtCore import QTimer
from qtpy.QtGui import QColor, QIcon, QPixmap
from qtpy.QtWidgets import (
    QButtonGroup,
    QGridLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ._annotation_combo import (
    annotates,
    annotation_link,
    annotation_name,
    annotation_of,
    mark_annotation,
    set_aside,
)
from ._copied_mask import note_copy
from ._geometry import ImageGeometry
from ._layers import (
    ANNOTATION_BRUSH_SIZE,
    LayerCombo,
    class_colormap,
    class_colour,
    dress_annotation_layer,
    find_output,
    is_annotation,
)
from ._predict_text import SEE_THROUGH_OPACITY
from ._state import model_state, real_viewer
from ._stroke_counts import StrokeCounts

RECOUNT_DELAY_MS = 300
"""Painting events are collected for this long before the pixels are counted again."""


class AnnotateWidget(QWidget):
    """Create the annotation layer of an image and paint classes into it.

    Label convention: 0 = unlabelled (the eraser), 1 = background, 2.. =
    foreground classes, named and coloured after the current model's classes.

    Parameters
    ----------
    viewer : napari.viewer.Viewer

    Attributes
    ----------
    brushes : QButtonGroup
        The class buttons, one checkable button per label value (its id); the
        annotation layer's selected label is the checked one, both ways.
    """

    def __init__(self, viewer: napari.viewer.Viewer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = real_viewer(viewer)
        self.state = model_state(self.viewer)
        self.image_picker = LayerCombo(self.viewer, napari.layers.Image, "Image", follow_new=True)
        self.create_button = PushButton(text="Create annotation layer")
        self.create_button.changed.connect(self.create_annotation_layer)
        self.copy_button = PushButton(text="Start from the prediction (slice in view)")
        self.copy_button.tooltip = (
            "Fill the unpainted pixels of the slice in view with Predict's mask of this "
            "image, to correct it with the brush and fine-tune on it. Strokes already "
            "painted are kept; Ctrl+Z undoes the copy."
        )
        self.copy_button.changed.connect(self.copy_prediction)
        self.legend = QGridLayout()
        self.brushes = QButtonGroup(self)  # exclusive: one brush at a time
        self.counts = QLabel()
        self.counts.setWordWrap(True)
        hint = QLabel(
            "Paint a few strokes of background and of each foreground class, on one or "
            "more slices, then fine-tune. What you want as objects (cells, nuclei) is a "
            "foreground class; what separates them (membranes, gaps) is background. The "
            f"brush starts {ANNOTATION_BRUSH_SIZE} px wide (brush size, in the layer "
            "controls): a wider one also paints the objects beside a membrane or gap, which "
            "teaches the model wrong. Label 0 erases. "
            "Once the model is close, start from its prediction and correct its mistakes."
        )
        hint.setWordWrap(True)
        picker = Container(widgets=[self.image_picker.combo])
        picker.margins = (0, 0, 0, 0)
        layout = QVBoxLayout(self)
        layout.addWidget(picker.native)
        layout.addWidget(self.create_button.native)
        layout.addWidget(self.copy_button.native)
        layout.addWidget(QLabel("Brush (label value and class):"))
        layout.addLayout(self.legend)
        layout.addWidget(self.counts)
        layout.addWidget(hint)
        layout.addStretch(1)
        self.annotation_layer: napari.layers.Labels | None = None
        self._counts = StrokeCounts()
        self._recount_timer = QTimer(self)
        self._recount_timer.setSingleShot(True)
        self._recount_timer.setInterval(RECOUNT_DELAY_MS)
        self._recount_timer.timeout.connect(self._recount_changed)
        self.image_picker.combo.changed.connect(self._follow_image)
        self.state.model_changed.connect(self._build_legend)
        self.viewer.layers.events.inserted.connect(self._pick_up_added)
        self.viewer.layers.events.removed.connect(self._forget_removed)
        self._build_legend()
        self._follow_image()

    # ---- the annotation layer ------------------------------------------------
    def create_annotation_layer(self, *_: Any) -> napari.layers.Labels | None:
        """Create (or pick up) the chosen image's annotation layer and start painting.

        The layer has the image's spatial shape (no channel axis), its scale and
        translation, the class colours, and is left in paint mode with the first
        foreground class (label 2) selected. A hidden layer is shown again: it
        is there to be painted (and napari cannot edit a hidden layer's slice).
        """
        image = self.image_picker.layer
        if image is None:
            show_warning("Add or open an image first, then create its annotation layer.")
            return None
        in_channels = self.state.model.config.in_channels
        geometry = ImageGeometry.of(image, in_channels)
        problem = geometry.layout_problem(image.name) or geometry.channels_problem(
            image.name, in_channels
        )
        if problem:  # strokes on the wrong axes would train nothing the image shows
            show_error(problem)
            return None
        layer = annotation_of(self.viewer, image)
        if layer is not None and layer.data.shape != geometry.spatial_shape:
            set_aside(layer, geometry.spatial_shape)
            layer = None
        if layer is None:
            layer = self._add_annotation_layer(image, annotation_name(image.name))
            if geometry.planes_may_be_channels:  # strokes would go on each plane apart
                show_info(f"“{image.name}”:{geometry.reading_note(in_channels)}")
        else:
            show_info(f"Using the existing layer “{layer.name}”.")
        self._watch(layer)
        layer.visible = True
        self.viewer.layers.selection.active = layer
        layer.mode = "paint"
        layer.selected_label = 2
        self.update_counts()
        return layer

    def copy_prediction(self, *_: Any) -> int:
        """Copy the predicted mask into the unpainted pixels of the slice in view.

        Returns the number of pixels copied (0 if there was nothing to copy). The
        copy goes through the layer's edit history, so Ctrl+Z undoes it.
        """
        image = self.image_picker.layer
        mask = find_output(self.viewer, image, "mask", Labels) if image else None
        if image is None or mask is None:
            show_warning("Predict this image first (Predict section): its mask is copied.")
            return 0
        layer = self.create_annotation_layer()
        if layer is None or layer.data.shape != mask.data.shape:
            show_warning(f"“{mask.name}” and the annotation layer differ in shape; predict again.")
            return 0
        geometry = ImageGeometry.of(image, self.state.model.config.in_channels)
        plane = geometry.plane_in_view(image, self.viewer)
        predicted = np.asarray(mask.data[plane])
        fill = (np.asarray(layer.data[plane]) == 0) & (predicted > 0)
        pixels = np.nonzero(fill)
        where = tuple(np.full(pixels[0].size, index) for index in plane) + pixels
        layer.data_setitem(where, predicted[fill].astype(layer.data.dtype))
        note_copy(layer, plane, mask)
        self.update_counts()
        shown = []
        if mask.visible:  # it would cover the copy, which is what is corrected now
            mask.visible = False
            shown.append(f"“{mask.name}” is hidden, so that the copy shows")
        if layer.opacity > SEE_THROUGH_OPACITY:  # a filled slice would hide the image
            layer.opacity = SEE_THROUGH_OPACITY
            shown.append(f"“{layer.name}” is at opacity {SEE_THROUGH_OPACITY}, so the image shows")
        slice_text = f" of slice {', '.join(map(str, plane))}" if plane else ""
        show_info(
            f"Copied {pixels[0].size:,} predicted pixels into the unpainted pixels{slice_text}"
            f"{' (' + '; '.join(shown) + ')' if shown else ''}: correct the mistakes with the "
            "brush, then fine-tune."
        )
        return int(pixels[0].size)

    def _add_annotation_layer(self, image: napari.layers.Image, name: str) -> napari.layers.Labels:
        geometry = ImageGeometry.of(image, self.state.model.config.in_channels)
        layer = self.viewer.add_labels(
            np.zeros(geometry.spatial_shape, dtype=np.uint8),
            name=name,
            scale=geometry.spatial(image.scale),
            translate=geometry.spatial(image.translate),
            metadata=annotation_link(image),  # marked as added: no combo box takes it for a truth
            opacity=0.7,
        )
        dress_annotation_layer(layer, self.state.model.config.n_classes)
        return layer

    def _follow_image(self, *_: Any) -> None:
        image = self.image_picker.layer
        layer = annotation_of(self.viewer, image) if image is not None else None
        self._watch(layer)
        self.update_counts()

    def _watch(self, layer: napari.layers.Labels | None) -> None:
        if layer is self.annotation_layer:
            return
        if self.annotation_layer is not None:
            self._connect(self.annotation_layer, connect=False)
        self.annotation_layer = layer
        self._counts.mark_all()
        if layer is not None:
            self._connect(layer, connect=True)
            self._adopt(layer)
        self._show_brush()

    def _adopt(self, layer: napari.layers.Labels) -> None:
        """Mark the chosen image's strokes saved and opened again (:func:`saved_strokes`),
        when they fit its planes: the class colours and the thin brush, before any painting."""
        image = self.image_picker.layer
        geometry = ImageGeometry.of(image, self.state.model.config.in_channels) if image else None
        if is_annotation(layer) or geometry is None or layer.data.shape != geometry.spatial_shape:
            return
        mark_annotation(layer, image, self.state.model.config.n_classes)
        show_info(
            f"“{layer.name}” holds the strokes on “{image.name}”: it now has the class colours "
            f"and a {ANNOTATION_BRUSH_SIZE} px brush."
        )

    def _connect(self, layer: napari.layers.Labels, *, connect: bool) -> None:
        """Recount where the layer changes: the planes a stroke (or fill) touched, all of
        them for new data, the plane in view after a refresh (an undo, say)."""
        events = layer.events
        handlers = (
            (events.paint, self._on_paint),
            (events.data, self._on_new_data),
            (events.set_data, self._on_refresh),
            (events.selected_label, self._show_brush),
        )
        for emitter, handler in handlers:
            if connect:
                emitter.connect(handler)
            else:
                emitter.disconnect(handler)

    def _on_paint(self, event: Any) -> None:
        if self.annotation_layer is not None:
            self._counts.mark_edit(event.value, tuple(self.annotation_layer.data.shape))
        self.schedule_count()

    def _on_new_data(self, *_: Any) -> None:
        self._counts.mark_all()
        self.schedule_count()

    def _on_refresh(self, *_: Any) -> None:
        layer = self.annotation_layer
        if layer is None:
            return
        geometry = ImageGeometry(tuple(layer.data.shape), None, False)  # no channel axis
        plane = geometry.plane_in_view(layer, self.viewer)
        self._counts.mark_planes([int(np.ravel_multi_index(plane, geometry.leading_shape))])
        self.schedule_count()

    def _pick_up_added(self, event: Any) -> None:
        """Watch an annotation layer of the chosen image added while none is watched (its
        strokes saved and opened again, say)."""
        if self.annotation_layer is None and annotates(
            event.value, self.image_picker.layer, self.viewer
        ):
            self._watch(event.value)
            self.update_counts()

    def _forget_removed(self, event: Any) -> None:
        if event.value is self.annotation_layer:
            self._watch(None)
            self.update_counts()

    # ---- legend and counts ---------------------------------------------------
    def _build_legend(self, *_: Any) -> None:
        while self.legend.count():
            item = self.legend.takeAt(0)
            old = item.widget() if item is not None else None
            if isinstance(old, QPushButton):
                self.brushes.removeButton(old)
            if old is not None:
                old.setParent(None)  # gone at once, not at the next event loop
                old.deleteLater()
        model = self.state.model
        names = model.info.class_names
        labels = [(0, "eraser (unlabelled)", "#808080")]
        for label in range(1, model.config.n_classes + 1):
            name = names[label - 1] if label <= len(names) else f"class {label}"
            labels.append((label, name, class_colour(label)))
        for position, (label, name, colour) in enumerate(labels):
            button = QPushButton(_swatch(colour), f"{label} {name}")
            button.setToolTip(f"Paint label {label} ({name})")
            button.setCheckable(True)
            button.clicked.connect(lambda _checked=False, value=label: self.select_label(value))
            self.brushes.addButton(button, label)
            self.legend.addWidget(button, position // 2, position % 2)
        if self.annotation_layer is not None:
            self.annotation_layer.colormap = class_colormap(model.config.n_classes)
        self._show_brush()
        self.update_counts()

    def _show_brush(self, *_: Any) -> None:
        """Check the button of the annotation layer's selected label; none without a
        layer, or for a label without a button (chosen in napari's own controls)."""
        layer = self.annotation_layer
        button = self.brushes.button(int(layer.selected_label)) if layer is not None else None
        if button is not None:
            button.setChecked(True)
            return
        checked = self.brushes.checkedButton()
        if checked is not None:  # an exclusive group keeps one button checked: not now
            self.brushes.setExclusive(False)
            checked.setChecked(False)
            self.brushes.setExclusive(True)

    def select_label(self, label: int) -> None:
        """Paint ``label`` from now on (0 erases)."""
        layer = self.annotation_layer or self.create_annotation_layer()
        if layer is None:
            self._show_brush()  # nothing to paint on: no brush shown as selected
            return
        self.viewer.layers.selection.active = layer
        layer.selected_label = label
        layer.mode = "paint" if label else "erase"

    def schedule_count(self, *_: Any) -> None:
        """Count again shortly (painting sends many events)."""
        self._recount_timer.start()

    def update_counts(self) -> dict[int, int]:
        """Count every plane again; show, and return, the annotated pixels of each label
        value (1..n_classes)."""
        self._counts.mark_all()
        return self._recount_changed()

    def _recount_changed(self) -> dict[int, int]:
        """Recount the planes changed since the last count (see :meth:`_connect`); show,
        and return, the annotated pixels of each label value (1..n_classes)."""
        layer = self.annotation_layer
        n_classes = self.state.model.config.n_classes
        if layer is None:
            self.counts.setText("No annotation layer for this image yet.")
            return {}
        data = np.asarray(layer.data)
        totals = self._counts.totals(data, n_classes)  # only the planes changed since
        text = " · ".join(
            f"<span style='color:{class_colour(label)}'>■</span> {label}: {count:,} px"
            for label, count in totals.per_label.items()
        )
        if totals.above:
            text += (
                f"<br>{totals.above:,} px carry labels above {n_classes}: "
                "the model will refuse them"
            )
        if data.ndim > 2:
            text += f"<br>annotated slices: {totals.annotated_planes} of {totals.planes}"
            text += _which_slices(totals.annotated) if data.ndim == 3 else ""
        self.counts.setText(f"Annotated on “{layer.name}”:<br>{text}")
        return totals.per_label


#: How many annotated slices the counts name before "…".
NAMED_SLICES = 8


def _which_slices(annotated: tuple[int, ...]) -> str:
    """`` (1, 3)``: which slices of a (Z, Y, X) stack hold strokes, the first few."""
    if not annotated:
        return ""
    named = ", ".join(map(str, annotated[:NAMED_SLICES]))
    return f" ({named}{', …' if len(annotated) > NAMED_SLICES else ''})"


def _swatch(colour: str) -> QIcon:
    """A small square of ``colour``, for the class buttons."""
    pixmap = QPixmap(12, 12)
    pixmap.fill(QColor(colour))
    return QIcon(pixmap)

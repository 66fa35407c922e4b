"""The widgets' layer pickers (:class:`LayerCombo`), importable from :mod:`._layers` too."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import napari
from magicgui.widgets import ComboBox, create_widget
from napari.utils.notifications import show_info

from ._label_like import LABEL_IMAGE_MARK, first_hint, label_image_hint, looks_like_labels

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
    - *following a new layer* (``follow_new``): an image just opened is chosen,
      unless it looks like a label image (:func:`._label_like.looks_like_labels`:
      a ground truth that File → Open read as an image), which is only listed.
    - *what is chosen without the user* (``prefer``): at the start, and when the
      chosen layer goes, the topmost preferred layer is chosen, not magicgui's
      first item (the empty one), and not a label image while another is listed;
      the Annotations combo never takes a ground truth this way. A renamed layer
      stays chosen (magicgui matches items by their text).
    - *following the layer list's selection*: the layer the user selects in napari's
      layer list (its active layer) is chosen when listed and preferred, and no label
      image (:meth:`follow`), unless the user chose the layer now shown in this combo
      box (that choice holds until the combo box shows another layer). A layer made
      active by being added is left to ``follow_new``.
    - *label images marked*: an image layer holding labels is listed as
      "<name> (labels?)", and once chosen in an image combo box the combo's tooltip and
      a notification (once per layer) say how to use it (:func:`._label_like.label_image_hint`).

    Parameters
    ----------
    viewer : napari.Viewer
    layer_type : type
        ``napari.layers.Image``, ``napari.layers.Labels`` or ``napari.layers.Points``
        (then ``data`` is (N, D) coordinates).
    label : str
        Shown beside the combo box.
    accept : callable, optional
        Further filter on layers (default: every layer that is not an output).
    prefer : callable, optional
        The listed layers that may be chosen without the user (default: all).
    follow_new : bool
        Choose a newly added (preferred) layer, e.g. an image just opened, but not an
        image layer holding labels.

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
        from ._layers import is_output  # _layers imports this module: not at the top

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
        self._user_choice: napari.layers.Layer | None = None  # chosen here, by the user
        self._inserted: napari.layers.Layer | None = None  # active because just added
        self.combo.native.activated.connect(self._note_user_choice)  # the user's, only
        self.combo.changed.connect(self._on_chosen)
        viewer.layers.selection.events.active.connect(self._follow_active)
        self._choose_preferred()
        self._on_chosen()

    def _choices(self, combo: ComboBox) -> list[tuple[str, napari.layers.Layer]]:
        """magicgui's choices callable: (name, layer) of the listed layers, topmost first."""
        return [
            (f"{layer.name}{LABEL_IMAGE_MARK if looks_like_labels(layer) else ''}", layer)
            for layer in reversed(self.viewer.layers)
            if isinstance(layer, combo.annotation) and self.accept(layer)
        ]

    def _on_layers_changed(self, event: Any) -> None:
        chosen = self.combo.value  # first: raises once the widget is gone (napari disconnects)
        self.combo.reset_choices()
        if chosen is not None and any(layer is chosen for layer in self.layers()):
            self.combo.value = chosen  # e.g. renamed: magicgui dropped its old text
        layer = event.value if event.type == "inserted" else None
        self._inserted = layer  # napari makes it active next: that is no choice of the user
        if self.follow_new and layer is not None and self._followed(layer):
            self.combo.value = layer
        elif self.combo.value is None:
            self._choose_preferred()

    def _note_user_choice(self, *_: Any) -> None:
        self._user_choice = self.combo.value

    def _on_chosen(self, *_: Any) -> None:
        """Another layer is shown: a choice of the user's no longer holds (unless it is
        this one); a label image gets its hint (:meth:`_hint_label_image`)."""
        chosen = self.combo.value
        if self._user_choice is not None and self._user_choice is not chosen:
            self._user_choice = None
        self._hint_label_image(chosen)

    def _hint_label_image(self, chosen: napari.layers.Layer | None) -> None:
        """Say on an image combo box holding a label image how to use that layer: in the
        tooltip, and once per layer (whichever combo box) in a notification."""
        hint = None
        if chosen is not None and looks_like_labels(chosen):
            hint = label_image_hint(chosen.name)
        self.combo.tooltip = hint or FOLLOW_TOOLTIP
        if hint and first_hint(chosen):
            show_info(hint)

    def _follow_active(self, event: Any) -> None:
        """Choose the layer the user selected in the layer list, if :meth:`follows`."""
        chosen = self.combo.value  # first: raises once the widget is gone (napari disconnects)
        layer = event.value
        if layer is None or layer is chosen or layer is self._inserted:
            return
        self._inserted = None
        if not self.user_chose():
            self.follow(layer)

    def follow(self, layer: napari.layers.Layer) -> None:
        """``layer`` was selected in the layer list: choose it if it :meth:`follows`."""
        if self.follows(layer):
            self.combo.value = layer

    def user_chose(self) -> bool:
        """Whether the layer shown was chosen here by the user (then it stays chosen
        when another layer is selected in the layer list)."""
        return self._user_choice is not None and self._user_choice is self.combo.value

    def follows(self, layer: napari.layers.Layer) -> bool:
        """Whether ``layer``, selected in the layer list, is chosen here: it is listed
        and preferred, and no label image."""
        return self._followed(layer)

    def _followed(self, layer: napari.layers.Layer) -> bool:
        """Whether the new ``layer`` is chosen: listed, preferred, not a label image."""
        listed = any(item is layer for item in self.layers())
        return listed and self.prefer(layer) and not looks_like_labels(layer)

    def _choose_preferred(self) -> None:
        """Choose the topmost preferred layer that is no label image, else the topmost
        preferred one, else none."""
        preferred = [layer for _, layer in self._choices(self.combo) if self.prefer(layer)]
        images = (layer for layer in preferred if not looks_like_labels(layer))
        self.combo.value = next(images, preferred[0] if preferred else None)

    def layers(self) -> list[napari.layers.Layer]:
        """The listed layers, in the combo box's order (magicgui adds new ones last)."""
        return [layer for layer in self.combo.choices if layer is not None]

    @property
    def layer(self) -> Any:
        """The chosen layer, or None."""
        return self.combo.value


FOLLOW_TOOLTIP = "Follows the layer you select in the layer list, until you choose one here."

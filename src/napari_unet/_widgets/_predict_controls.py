"""The Predict section's settings: its controls, how they follow the loaded model, and the
:class:`~napari_unet.config.PredictConfig` they make."""

from __future__ import annotations

import weakref
from dataclasses import replace
from typing import Any

import napari
import numpy as np
from magicgui.widgets import CheckBox, ComboBox, SpinBox
from qtpy.QtWidgets import QLabel

from ..config import PredictConfig
from ..core.engine import TEST_TIME_TRANSFORM_WORDS, TEST_TIME_TRANSFORMS
from ..core.inference import default_tile_size, resolved_tile_size
from ..core.tile_choice import (
    TileChoice,
    distinct_tile_sizes,
    equivalent_tile_size,
    whole_image_input,
)
from ._geometry import ImageGeometry
from ._layers import LayerCombo
from ._memory import memory_refusal
from ._predict_job import MAX_TILE_CHOICE, PredictionRequest
from ._predict_text import TILE_SIZE_TOOLTIP, tile_choice_label, tile_size_tooltip
from ._state import ModelState
from ._tasks import available_devices

WHOLE_IMAGE = 0
"""Tile-size choice meaning: no tiling, one pass over the whole (mirror-padded) image."""

MAX_MIN_SIZE = 1_000_000
"""Largest value of the "Smallest object" spin box, in pixels."""

MODELS_OWN = "model"
"""Boundary-threshold choice meaning: the model's own (``PredictConfig.background_threshold``
None)."""

THRESHOLD_CHOICES = (0.5, 0.6, 0.7, 0.8, 0.9)
"""The fixed boundary thresholds offered besides the model's own."""

CLOSING_TEXT = "Close gaps in boundaries"
CLOSING_TOOLTIP = (
    "Objects joined through a faint spot of their boundary become separate instances (a "
    "seeded watershed on the boundary probability); objects grow to the model's own "
    "background threshold, if it has one. Off: the most probable class (with its holes "
    "filled while Fill holes is on)."
)
GROWING_TEXT = "Thin boundaries (grow objects to the model's threshold)"
GROWING_TOOLTIP = (
    "Objects grow to the model's own background threshold, never joining. This model was "
    "trained from strokes alone and draws boundaries thicker than its strokes imply, so "
    "its gaps are not closed: that would split objects. Off: the most probable class (with "
    "its holes filled while Fill holes is on)."
)


def _augmentation_tooltip(transforms: str) -> str:
    """The test-time augmentation box's tooltip for a model's transform set (its name)."""
    return (
        f"Average each tile's prediction over its {TEST_TIME_TRANSFORM_WORDS[transforms]}: "
        "smoother, usually slightly more accurate maps. Ticked when a model is loaded whose "
        "figures were chosen with it."
    )


def _plane_shape(geometry: ImageGeometry) -> tuple[int, int]:
    """(Y, X) of a plane of the image."""
    return geometry.spatial_shape[-2], geometry.spatial_shape[-1]


def _value(choice: TileChoice) -> int:
    """A tile-size item's value: the edge, or :data:`WHOLE_IMAGE`."""
    return WHOLE_IMAGE if choice.size is None else choice.size


class PredictControls:
    """Mixin of :class:`~napari_unet._widgets._predict.PredictWidget`: the section's
    controls (as attributes of the widget), kept in step with the loaded model, and
    :meth:`predict_config`. The widget sets ``viewer``, ``state``, ``defaults`` and
    ``_tile_sizes_of`` and ``_augmentation_of`` before creating the controls."""

    viewer: napari.viewer.Viewer
    state: ModelState
    defaults: PredictConfig
    status: QLabel
    _tile_sizes_of: Any
    _augmentation_of: Any

    def _create_controls(self, defaults: PredictConfig) -> None:
        """Every control of the section (then :meth:`_follow_the_model`, once they are in
        their container: a magicgui container resets a combo box's choices it is given)."""
        self._create_inference_controls(defaults)
        self._create_mask_controls(defaults)
        self._create_output_controls()

    def _follow_the_model(self) -> None:
        """Keep the controls in step with the loaded model (and the threshold box enabled
        with the closing), starting now."""
        self.state.model_changed.connect(self.update_tile_sizes)
        self.state.model_changed.connect(self.update_threshold_choices)
        self.state.model_changed.connect(self.follow_model_augmentation)
        self.state.model_changed.connect(self.follow_model_gaps)
        self.state.model_changed.connect(self.forget_last_run)
        self.image_picker.combo.changed.connect(self.update_tile_sizes)
        self.tile_size.changed.connect(self._note_tile_choice)
        self.close_boundaries.changed.connect(self._enable_threshold)
        self.update_tile_sizes()
        self.update_threshold_choices()
        self.follow_model_augmentation()
        self.follow_model_gaps()

    def _create_inference_controls(self, defaults: PredictConfig) -> None:
        """The image, tile size, device and test-time augmentation."""
        self.image_picker = LayerCombo(self.viewer, napari.layers.Image, "Image", follow_new=True)
        self.tile_size = ComboBox(
            label="Tile size",
            choices=[("whole image", WHOLE_IMAGE)],
            tooltip=TILE_SIZE_TOOLTIP,
        )
        self._tile_request: int | None = None  # the user's tile size; None: Automatic
        self._refreshing_tiles = False
        devices = available_devices()
        self.device = ComboBox(
            label="Device",
            choices=devices,
            value=defaults.device if defaults.device in devices else devices[0],
        )
        self.test_time_augmentation = CheckBox(
            text="Test-time augmentation (8x slower)",
            value=bool(defaults.test_time_augmentation),
            tooltip=_augmentation_tooltip("dihedral"),
        )

    def _create_mask_controls(self, defaults: PredictConfig) -> None:
        """How the mask and the instances are made from the probabilities."""
        self.instance_method = ComboBox(
            label="Instances",
            choices=["components", "watershed"],
            value=defaults.instances,
            tooltip="components: each connected region is one object; watershed also splits "
            "touching objects of one class.",
        )
        self.min_size = SpinBox(
            label="Smallest object (px)",
            min=0,
            max=MAX_MIN_SIZE,
            value=defaults.min_instance_size,
            tooltip="Objects under this many pixels are not instances; 0 keeps all.",
        )
        self.fill_holes = CheckBox(
            text="Fill holes in objects",
            value=defaults.fill_holes,
            tooltip="What one object encloses joins it, in the mask and the instances: a "
            "nucleus or a cell has no holes, and an outline drawn inside it (a mitochondrion's "
            "membrane) is not a cell of its own.",
        )
        self.close_boundaries = CheckBox(text=CLOSING_TEXT, value=defaults.close_boundaries)
        self.background_threshold = ComboBox(
            label="Boundary threshold",
            choices=[(MODELS_OWN, MODELS_OWN)],
            value=MODELS_OWN,
            tooltip="With gaps closed, objects grow into the boundary pixels whose probability "
            "is at most this, never joining: higher = thinner boundaries; 0.5 = as thick as "
            "the most probable class draws them. The model's own: chosen on its validation "
            "data (0.85 for em-membranes; 0.5 for a model without one).",
        )

    def _create_output_controls(self) -> None:
        """Which extra layers Predict shows."""
        self.with_weights = CheckBox(
            text="Weight map of the prediction",
            value=True,
            tooltip="The paper's loss weights of the predicted mask, with the w0, σ and class "
            "balance of the model's last training run (the paper's settings if it has none).",
        )
        self.with_uncertainty = CheckBox(
            text="Uncertainty (where to paint next)",
            value=True,
            tooltip="How unsure the model is of each pixel's class (normalised entropy of "
            "the probabilities: 0 = certain, 1 = every class equally likely). Strokes "
            "painted where it is bright teach the model most.",
        )

    def update_tile_sizes(self, *_: Any) -> None:
        """Offer the tile sizes that tile the chosen image differently, each once
        (:func:`~napari_unet.core.tile_choice.distinct_tile_sizes`): first "Automatic"
        (``PredictConfig().tile_size``, "auto": the model's default tile, as the choice
        that tiles this image like it), then the others, the whole image last.

        The user's choice is kept, as the choice that tiles the image alike, while the
        architecture stays the same (after a fine-tune, another image); another
        architecture goes back to Automatic.
        """
        model = self.state.model
        if model.config != self._tile_sizes_of:
            self._tile_request = None
        self._tile_sizes_of = model.config
        geometry = self._picked_geometry()
        shape = None if geometry is None else _plane_shape(geometry)
        choices = distinct_tile_sizes(model, shape, MAX_TILE_CHOICE, (default_tile_size(model),))
        automatic = resolved_tile_size(model, self.defaults.tile_size)
        auto_size = equivalent_tile_size(model, shape, automatic, choices)
        whole = None if shape is None else whole_image_input(model, shape)
        self.tile_size.tooltip = tile_size_tooltip(whole)
        stack = geometry is not None and int(np.prod(geometry.leading_shape)) > 1
        items = [
            (tile_choice_label(choice, stack, choice.size == auto_size), _value(choice))
            for choice in choices
        ]
        automatic_item = next(item for item in items if item[1] == (auto_size or WHOLE_IMAGE))
        items.remove(automatic_item)
        wanted = automatic_item[1]
        if self._tile_request is not None:
            wanted = equivalent_tile_size(model, shape, self._tile_request or None, choices) or 0
        self._refreshing_tiles = True
        try:
            self.tile_size.choices = ()  # magicgui keeps surviving items first: start afresh
            self.tile_size.choices = [automatic_item, *items]
            self.tile_size.value = wanted
        finally:
            self._refreshing_tiles = False

    def choose_tile_size(self, size: int | None) -> int:
        """Choose the offered tile size that tiles the chosen image as ``size`` does (None:
        the whole image), as a user would (kept like their choice); returns its value."""
        model = self.state.model
        geometry = self._picked_geometry()
        shape = None if geometry is None else _plane_shape(geometry)
        choices = distinct_tile_sizes(model, shape, MAX_TILE_CHOICE, (default_tile_size(model),))
        value = equivalent_tile_size(model, shape, size, choices) or WHOLE_IMAGE
        self.tile_size.value = value
        return value

    def _note_tile_choice(self, *_: Any) -> None:
        """Remember a tile size chosen by the user (or a caller): Automatic, or a size."""
        if not self._refreshing_tiles:
            automatic = self.tile_size.native.currentIndex() == 0
            self._tile_request = None if automatic else int(self.tile_size.value)

    def smaller_tile_that_fits(self, request: PredictionRequest, name: str) -> int | None:
        """The largest offered tile size below the chosen one with which ``request``
        would fit in memory (None: none does, or the chosen one is the smallest)."""
        chosen = self.tile_size.value or None
        smaller = sorted((int(size) for size in self.tile_size.choices if size), reverse=True)
        for size in smaller:
            if chosen is not None and size >= chosen:
                continue
            lighter = replace(request, config=request.config.replace(tile_size=size))
            if not memory_refusal(lighter, name):
                return size
        return None

    def _picked_geometry(self) -> ImageGeometry | None:
        """The geometry of the chosen image layer for the loaded model (None: none)."""
        image = self.image_picker.layer
        if image is None:
            return None
        try:
            return ImageGeometry.of(image, self.state.model.config.in_channels)
        except ValueError:
            return None

    def update_threshold_choices(self, *_: Any) -> None:
        """Offer the model's own background threshold (named with its value) and fixed ones.

        A fixed choice is kept across models; "the model's own" follows the model.
        """
        kept = self.background_threshold.value
        own = self.state.model.info.background_threshold
        self.background_threshold.choices = ()
        self.background_threshold.choices = [(f"the model's own ({own:.2f})", MODELS_OWN)] + [
            (f"{value:.2f}", value) for value in THRESHOLD_CHOICES
        ]
        self.background_threshold.value = kept if kept in THRESHOLD_CHOICES else MODELS_OWN

    def follow_model_augmentation(self, *_: Any) -> None:
        """Tick test-time augmentation as a newly loaded model says (the config's default
        None: the model's own), unless the section's defaults fix it; say what it costs
        with this model (its transform set). The same model changed in place (fine-tuned)
        keeps the user's choice."""
        model = self.state.model
        info = model.info
        passes = len(TEST_TIME_TRANSFORMS[info.test_time_transforms])
        self.test_time_augmentation.text = f"Test-time augmentation ({passes}x slower)"
        self.test_time_augmentation.tooltip = _augmentation_tooltip(info.test_time_transforms)
        followed = self._augmentation_of() if self._augmentation_of is not None else None
        self._augmentation_of = weakref.ref(model)
        if self.defaults.test_time_augmentation is None and followed is not model:
            self.test_time_augmentation.value = info.test_time_augmentation

    def follow_model_gaps(self, *_: Any) -> None:
        """Name what the boundary checkbox does with the loaded model: a model trained
        from strokes alone may leave the gaps open (``model.info.close_gaps``)."""
        closes = self.state.model.info.close_gaps
        self.close_boundaries.text = CLOSING_TEXT if closes else GROWING_TEXT
        self.close_boundaries.tooltip = CLOSING_TOOLTIP if closes else GROWING_TOOLTIP

    def forget_last_run(self, *_: Any) -> None:
        """Another model became current (or this one was fine-tuned): the status line
        described a run of the model before."""
        if self.status.text():
            self.status.setText("The model changed: run again to predict with it.")

    def _enable_threshold(self, *_: Any) -> None:
        self.background_threshold.enabled = bool(self.close_boundaries.value)

    def predict_config(self) -> PredictConfig:
        """The options chosen in the section (the batch size is the default's)."""
        return self.defaults.replace(
            tile_size=self.tile_size.value or None,
            device=self.device.value,
            test_time_augmentation=self.test_time_augmentation.value,
            instances=self.instance_method.value,
            min_instance_size=self.min_size.value,
            fill_holes=self.fill_holes.value,
            close_boundaries=self.close_boundaries.value,
            background_threshold=(
                None
                if self.background_threshold.value == MODELS_OWN
                else self.background_threshold.value
            ),
        )

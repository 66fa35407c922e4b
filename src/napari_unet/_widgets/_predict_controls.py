"""The Predict section's settings: its controls, how they follow the loaded model, and the
:class:`~napari_unet.config.PredictConfig` they make."""

from __future__ import annotations

import weakref
from typing import Any

import napari
from magicgui.widgets import CheckBox, ComboBox, SpinBox
from qtpy.QtWidgets import QLabel

from ..config import PredictConfig
from ..core.engine import TEST_TIME_TRANSFORM_WORDS, TEST_TIME_TRANSFORMS
from ..core.inference import default_tile_size, resolved_tile_size, usable_tile_sizes
from ._layers import LayerCombo
from ._predict_job import MAX_TILE_CHOICE
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
GROWING_TEXT = "Thin boundaries (this model: gaps left open)"
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
            tooltip="Input tile edge in pixels, context included (overlap-tile strategy).",
        )
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
        """Offer the model's valid tile sizes, preselecting the default
        (``PredictConfig().tile_size``: "auto", the model's default tile).

        The user's choice is kept while the architecture stays the same (after a
        fine-tune, for instance).
        """
        model = self.state.model
        kept = self.tile_size.value if model.config == self._tile_sizes_of else None
        self._tile_sizes_of = model.config
        default = default_tile_size(model)
        sizes = usable_tile_sizes(model, MAX_TILE_CHOICE)
        if default > MAX_TILE_CHOICE:
            sizes.append(default)
        self.tile_size.choices = ()  # magicgui keeps surviving items first: start afresh
        self.tile_size.choices = [("whole image", WHOLE_IMAGE)] + [(f"{n} px", n) for n in sizes]
        preferred = resolved_tile_size(model, self.defaults.tile_size) or WHOLE_IMAGE
        if kept is not None:
            self.tile_size.value = kept
        else:
            self.tile_size.value = preferred if preferred in sizes else WHOLE_IMAGE

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

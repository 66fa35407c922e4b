"""The settings of the Fine-tune section: budget, learning rate, augmentation, loss weights."""

from __future__ import annotations

from typing import Any

from magicgui.widgets import CheckBox, ComboBox, Container, FloatSpinBox, SpinBox

from ..config import (
    FINETUNE_ITERATIONS,
    LEARNING_FLOOR_CAP,
    LEARNT_ITERATIONS,
    TIME_BUDGET_SECONDS,
    TRAINED_ITERATIONS,
    AugmentConfig,
    TrainConfig,
    WeightConfig,
)
from ._tasks import available_devices

LEARNING_RATES = (1e-2, 3e-3, 1e-3, 3e-4, 1e-4, 3e-5, 1e-5)


class FinetuneSettings(Container):
    """The fine-tuning options as magicgui widgets, turned into the core's option groups."""

    def __init__(self) -> None:
        self._running = False
        self._still_learning = False  # the current model is a new one (see follow_model)
        self._create_budget_controls()
        self._create_data_controls(AugmentConfig(), WeightConfig())
        self.device = ComboBox(label="Device", choices=available_devices())
        self.live_preview = CheckBox(
            text="Live preview of the slice in view",
            value=True,
            tooltip="Every few seconds, the slice in view is predicted into an "
            "“<image> preview” layer: brighter where the model is surer of a class other "
            "than the first (nucleus, cell), dark for the first (background, membrane). "
            "Previews do not count in the time budget.",
        )
        self.from_base = CheckBox(
            text="Start each run from the model you began with",
            value=True,
            tooltip=FROM_BASE_TIP,
        )
        self.more = CheckBox(
            text="More options",
            value=False,
            tooltip="Iterations, learning rate, augmentation, the paper's border weights and "
            "the device. Their defaults are the ones the annotation-loop benchmark checks.",
        )
        self.advanced = (
            self.iterations,
            self.learning_rate,
            self.lr_schedule,
            self.elastic,
            self.elastic_std,
            self.w0,
            self.sigma,
            self.device,
        )
        super().__init__(
            widgets=[self.seconds, self.live_preview, self.from_base, self.more, *self.advanced]
        )
        self.margins = (0, 0, 0, 0)
        self.elastic.changed.connect(self._update_enabled)
        self.more.changed.connect(self._show_more)
        self._show_more()

    def _show_more(self, *_: Any) -> None:
        """Show the options beyond the time budget only when asked: the defaults suit a
        first run, and hidden they leave Start, the status and the loss curve in view."""
        for control in self.advanced:
            control.visible = bool(self.more.value)

    def _create_budget_controls(self) -> None:
        """Time and iteration budget, learning rate and its schedule."""
        self.seconds = SpinBox(
            label="Time budget (s)",
            value=int(TIME_BUDGET_SECONDS),
            min=1,
            max=86_400,
            tooltip="The run ends here (previews do not count). A new model trains for all "
            f"of it, and on past it until it has trained {TRAINED_ITERATIONS} iterations (at most "
            f"{LEARNING_FLOOR_CAP:g} times the budget); a trained one usually stops earlier, "
            "after its iterations.",
        )
        self.iterations = SpinBox(
            label="Max iterations (0: auto)",
            value=0,
            min=0,
            max=10_000_000,
            tooltip="Stop after this many iterations at the latest. 0 (auto): "
            f"{FINETUNE_ITERATIONS} for a trained model (what the annotation-loop benchmark "
            "checks: more moved the unpainted part more), only the time budget for a new one.",
        )
        self.learning_rate = ComboBox(
            label="Learning rate",
            choices=[("auto", None), *((f"{rate:g}", rate) for rate in LEARNING_RATES)],
            value=None,
            tooltip="Adam's learning rate at the start of the run. auto: 1e-3 for a new "
            "model (or one still learning), 1e-4 to "
            "fine-tune a trained one (faster rates undo what it knew).",
        )
        self.lr_schedule = ComboBox(
            label="Rate schedule",
            choices=[("decay to 0", "linear"), ("cosine to 0", "cosine"), ("constant", "constant")],
            value=TrainConfig.lr_schedule,
            tooltip="How the learning rate changes over the budget (time or iterations): "
            "decaying to 0 ends each run with small, careful steps.",
        )

    def _create_data_controls(self, augment: AugmentConfig, weights: WeightConfig) -> None:
        """Elastic deformation and the paper's border weights, at the core's defaults."""
        self.elastic = CheckBox(text="Elastic deformation", value=augment.elastic)
        self.elastic_std = FloatSpinBox(
            label="Elastic strength (px)",
            value=augment.elastic_std,
            min=0.0,
            max=50.0,
            step=1.0,
            tooltip="Standard deviation of the random displacements (the paper: 10 px).",
        )
        self.w0 = FloatSpinBox(
            label="Border weight w0",
            value=weights.w0,
            min=0.0,
            max=100.0,
            step=1.0,
            tooltip="Extra loss weight of background between close objects (the paper: 10).",
        )
        self.sigma = FloatSpinBox(
            label="Border width σ (px)",
            value=weights.sigma,
            min=0.5,
            max=50.0,
            step=0.5,
            tooltip="How far from the objects the border weight reaches (the paper: 5 px).",
        )

    def train_config(self) -> TrainConfig:
        """The budget, learning rate, its schedule and the device."""
        return TrainConfig(
            seconds=float(self.seconds.value),
            iterations=self.iterations.value or None,
            learning_rate=self.learning_rate.value,
            lr_schedule=self.lr_schedule.value,
            device=self.device.value,
        )

    def augment_config(self) -> AugmentConfig:
        """The augmentation."""
        return AugmentConfig(elastic=self.elastic.value, elastic_std=self.elastic_std.value)

    def weight_config(self) -> WeightConfig:
        """The loss weights (w0, sigma)."""
        return WeightConfig(w0=self.w0.value, sigma=self.sigma.value)

    def set_running(self, running: bool) -> None:
        """Lock the options during a run: it uses the values it started with."""
        self._running = running
        training = (self.seconds, self.iterations, self.learning_rate, self.lr_schedule)
        data = (self.elastic, self.w0, self.sigma, self.live_preview, self.device)
        for control in (*training, *data):
            control.enabled = not running
        self._update_enabled()

    def follow_model(self, still_learning: bool) -> None:
        """Whether the current model is still learning: then each run continues where its
        last ended whatever :attr:`from_base` says (``ModelState.prepare_finetune``), so
        the option is disabled, its tooltip saying why."""
        self._still_learning = still_learning
        self.from_base.tooltip = FROM_BASE_IGNORED_TIP if still_learning else FROM_BASE_TIP
        self._update_enabled()

    def _update_enabled(self, *_: Any) -> None:
        self.elastic_std.enabled = bool(self.elastic.value) and not self._running
        self.from_base.enabled = not self._running and not self._still_learning


FROM_BASE_TIP = (
    "Fine-tune again from the model you started these annotations with, on all "
    "their strokes, instead of training the last result further (which drifts)."
)
FROM_BASE_IGNORED_TIP = (
    "A new model keeps training where its last run ended until it has learnt: "
    f"{LEARNT_ITERATIONS} iterations with a loss below a guess's, or {TRAINED_ITERATIONS} in "
    "all; then this option applies."
)

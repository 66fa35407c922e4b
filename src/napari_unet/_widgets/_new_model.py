"""The Model section's choices for a new, untrained model (its architecture)."""

from __future__ import annotations

from magicgui.widgets import ComboBox, Container, SpinBox

from ..config import ModelConfig
from ._state import DEFAULT_NEW_CONFIG

__all__ = ["NewModelOptions"]


class NewModelOptions(Container):
    """Architecture of a new, untrained model."""

    def __init__(self) -> None:
        config = DEFAULT_NEW_CONFIG
        self.in_channels = SpinBox(
            label="Input channels",
            value=config.in_channels,
            min=1,
            max=16,
            tooltip="The image channels the model reads: 1 for a grey image (an RGB image is "
            "read as its luminance); 2 or more for an image whose channels (nuclei and "
            "membrane stains, say) are its first axis, (C, Y, X).",
        )
        self.n_classes = SpinBox(
            label="Classes",
            value=config.n_classes,
            min=2,
            max=16,
            tooltip="Including background: 2 = background + one foreground class.",
        )
        self.depth = SpinBox(label="Depth", value=config.depth, min=1, max=6)
        self.base_features = ComboBox(
            label="Base features",
            choices=[8, 16, 32, 64],
            value=config.base_features,
            tooltip="The paper uses 64. On a CPU, 8 learned the most per second (about "
            "64 times fewer operations per pixel than 64).",
        )
        self.padding = ComboBox(
            label="Padding",
            choices=["valid", "same"],
            value=config.padding,
            tooltip="valid: unpadded convolutions as in the paper; same: zero-padded.",
        )
        super().__init__(
            widgets=[self.in_channels, self.n_classes, self.depth, self.base_features, self.padding]
        )
        self.margins = (0, 0, 0, 0)

    def config(self) -> ModelConfig:
        """The chosen architecture."""
        return ModelConfig(
            in_channels=self.in_channels.value,
            n_classes=self.n_classes.value,
            depth=self.depth.value,
            base_features=self.base_features.value,
            padding=self.padding.value,
        )

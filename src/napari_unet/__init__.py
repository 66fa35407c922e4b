"""napari-unet: the U-Net of Ronneberger et al. (2015) for napari.

The headless API (no napari or Qt import):

>>> import napari_unet as nu
>>> model = nu.load_model("em-membranes")           # bundled name or checkpoint path
>>> probabilities = nu.predict(image, model, tile_size=572)
"""

from __future__ import annotations

__version__ = "0.1.0"

from .checkpoint import CheckpointError, load_model, save_model
from .config import (
    AugmentConfig,
    ModelConfig,
    NormConfig,
    TileConfig,
    TrainConfig,
    WeightConfig,
)
from .inference import predict
from .model import UNet

__all__ = [
    "AugmentConfig",
    "CheckpointError",
    "ModelConfig",
    "NormConfig",
    "TileConfig",
    "TrainConfig",
    "UNet",
    "WeightConfig",
    "__version__",
    "load_model",
    "predict",
    "save_model",
]

"""napari-unet: the U-Net of Ronneberger et al. (2015) for napari.

The headless API (no napari or Qt import):

>>> import napari_unet as nu
>>> model = nu.load_model("em-membranes")           # bundled name or checkpoint path
>>> probabilities = nu.predict(image, model, tile_size=572)
>>> probabilities = nu.predict(image, model, config=nu.PredictConfig())  # the model's tile
"""

from __future__ import annotations

__version__ = "0.1.0"

from . import _huge_pages  # noqa: F401  (before anything imports torch)
from .config import (
    NEW_MODEL_CONFIG,
    AugmentConfig,
    ModelConfig,
    NormConfig,
    PredictConfig,
    TileConfig,
    TrainConfig,
    WeightConfig,
)
from .core.checkpoint import CheckpointError, load_model, new_model, save_model
from .core.inference import Cancelled, predict
from .core.model import UNet
from .core.postprocess import class_mask, instance_labels, mask_steps, prediction_mask
from .evaluation.metrics import evaluate
from .io.outofcore import predict_to_zarr
from .io.volumes import annotated_slices, predict_stack
from .training.augment import elastic_deform
from .training.loop import TrainingError, TrainProgress, finetune, train
from .training.sampling import AnnotationError
from .training.weights import annotation_from_binary, annotation_from_instances, weight_map

__all__ = [
    "NEW_MODEL_CONFIG",
    "AnnotationError",
    "AugmentConfig",
    "Cancelled",
    "CheckpointError",
    "ModelConfig",
    "NormConfig",
    "PredictConfig",
    "TileConfig",
    "TrainConfig",
    "TrainProgress",
    "TrainingError",
    "UNet",
    "WeightConfig",
    "__version__",
    "annotated_slices",
    "annotation_from_binary",
    "annotation_from_instances",
    "class_mask",
    "elastic_deform",
    "evaluate",
    "finetune",
    "instance_labels",
    "load_model",
    "mask_steps",
    "new_model",
    "predict",
    "predict_stack",
    "predict_to_zarr",
    "prediction_mask",
    "save_model",
    "train",
    "weight_map",
]

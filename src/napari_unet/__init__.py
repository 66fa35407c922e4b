"""napari-unet: the U-Net of Ronneberger et al. (2015) for napari.

The headless API (no napari or Qt import):

>>> import napari_unet as nu
>>> model = nu.load_model("em-membranes")           # bundled name or checkpoint path
>>> probabilities = nu.predict(image, model, tile_size=572)
>>> probabilities = nu.predict(image, model, config=nu.PredictConfig())  # the model's tile
"""

from __future__ import annotations

__version__ = "0.2.0"

from typing import TYPE_CHECKING

from . import _huge_pages  # noqa: F401  (before anything imports torch)
from . import io as _io  # noqa: F401  (registers bioimage.io packages with load_model; light)
from ._lazy import lazy_attributes as _lazy_attributes

if TYPE_CHECKING:
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
    from .core.postprocess import (
        MaskSteps,
        class_mask,
        instance_labels,
        mask_steps,
        prediction_mask,
    )
    from .evaluation.metrics import evaluate
    from .io.outofcore import predict_to_zarr
    from .io.volumes import annotated_slices, predict_stack
    from .training.augment import elastic_deform
    from .training.loop import TrainingError, TrainProgress, finetune, train
    from .training.sampling import AnnotationError
    from .training.weights import annotation_from_binary, annotation_from_instances, weight_map

#: Where each public name lives: imported on first use (:mod:`napari_unet._lazy`), so that
#: ``import napari_unet``, napari's reader and the sample data do not load PyTorch.
_PUBLIC_MODULES = {
    "NEW_MODEL_CONFIG": "config",
    "AugmentConfig": "config",
    "ModelConfig": "config",
    "NormConfig": "config",
    "PredictConfig": "config",
    "TileConfig": "config",
    "TrainConfig": "config",
    "WeightConfig": "config",
    "CheckpointError": "core.checkpoint",
    "load_model": "core.checkpoint",
    "new_model": "core.checkpoint",
    "save_model": "core.checkpoint",
    "Cancelled": "core.inference",
    "predict": "core.inference",
    "UNet": "core.model",
    "MaskSteps": "core.postprocess",
    "class_mask": "core.postprocess",
    "instance_labels": "core.postprocess",
    "mask_steps": "core.postprocess",
    "prediction_mask": "core.postprocess",
    "evaluate": "evaluation.metrics",
    "predict_to_zarr": "io.outofcore",
    "annotated_slices": "io.volumes",
    "predict_stack": "io.volumes",
    "elastic_deform": "training.augment",
    "TrainingError": "training.loop",
    "TrainProgress": "training.loop",
    "finetune": "training.loop",
    "train": "training.loop",
    "AnnotationError": "training.sampling",
    "annotation_from_binary": "training.weights",
    "annotation_from_instances": "training.weights",
    "weight_map": "training.weights",
}

__all__ = [
    "NEW_MODEL_CONFIG",
    "AnnotationError",
    "AugmentConfig",
    "Cancelled",
    "CheckpointError",
    "MaskSteps",
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


__getattr__, __dir__ = _lazy_attributes(__name__, _PUBLIC_MODULES, __all__)

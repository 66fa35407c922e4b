"""Small frozen option groups, each with its one set of defaults.

Every long-running function takes one of these instead of a long list of keyword
arguments: :class:`ModelConfig`, :class:`NormConfig`, :class:`WeightConfig` and
:class:`TrainConfig` are stored inside checkpoints; :class:`PredictConfig` is what
``napari-unet predict``, the Predict widget and the prediction functions share. Each
has ``to_dict`` / ``from_dict`` so it travels through JSON (checkpoint metadata, the
CLI, dask workers). The training groups (:class:`WeightConfig`, :class:`AugmentConfig`,
:class:`TrainConfig` and the learning-rate defaults) are defined in
``napari_unet._train_config`` and imported from here.
"""

from __future__ import annotations

import enum
import warnings
from dataclasses import dataclass
from typing import Any, Final, Literal

import numpy as np

from ._options import _Options
from ._train_config import (
    FINETUNE_ITERATIONS,
    FINETUNE_LEARNING_RATE,
    LEARNING_FLOOR_CAP,
    LEARNT_ITERATIONS,
    SCRATCH_LEARNING_RATE,
    TIME_BUDGET_SECONDS,
    TRAINED_ITERATIONS,
    AugmentConfig,
    TrainConfig,
    WeightConfig,
)
from .core.postprocess import MIN_INSTANCE_SIZE, InstanceMethod

__all__ = [
    "AUTO_TILE",
    "FINETUNE_ITERATIONS",
    "FINETUNE_LEARNING_RATE",
    "LEARNING_FLOOR_CAP",
    "LEARNT_ITERATIONS",
    "NEW_MODEL_CONFIG",
    "SCRATCH_LEARNING_RATE",
    "TIME_BUDGET_SECONDS",
    "TRAINED_ITERATIONS",
    "UNSET",
    "AugmentConfig",
    "ModelConfig",
    "NormConfig",
    "PredictConfig",
    "TileConfig",
    "TrainConfig",
    "Unset",
    "WeightConfig",
    "predict_config",
]


@dataclass(frozen=True)
class ModelConfig(_Options):
    """Architecture of a :class:`~napari_unet.core.model.UNet`.

    Attributes
    ----------
    in_channels : int
        Number of input channels (1 for grayscale).
    n_classes : int
        Number of output classes. Class index ``c`` is label value ``c + 1``:
        index 0 = label 1 = background, index 1 = label 2 = first foreground class.
    depth : int
        Number of 2x2 max-pool steps (the paper: 4).
    base_features : int
        Feature maps of the first level, doubled at each level (the paper: 64).
    padding : {"valid", "same"}
        ``"valid"``: unpadded 3x3 convolutions as in the paper (output smaller than
        input). ``"same"``: zero-padded, output as large as the input.
    batch_norm : bool
        Batch normalisation after each convolution.
    upsampling : {"upconv", "bilinear"}
        2x2 up-convolution (the paper) or bilinear up-sampling followed by a 1x1 conv.
        Tiled prediction is seam-exact only with "upconv": bilinear interpolation
        clamps at tile edges (differences up to about 0.02 in probability there).
    """

    in_channels: int = 1
    n_classes: int = 2
    depth: int = 4
    base_features: int = 64
    padding: Literal["valid", "same"] = "valid"
    batch_norm: bool = False
    upsampling: Literal["upconv", "bilinear"] = "upconv"

    def __post_init__(self) -> None:
        if self.padding not in ("valid", "same"):
            raise ValueError(f"padding must be 'valid' or 'same', not {self.padding!r}")
        if self.upsampling not in ("upconv", "bilinear"):
            raise ValueError(f"upsampling must be 'upconv' or 'bilinear', not {self.upsampling!r}")
        if self.depth < 0 or self.base_features < 1 or self.in_channels < 1 or self.n_classes < 2:
            raise ValueError(
                "need depth >= 0, base_features >= 1, in_channels >= 1 and n_classes >= 2; "
                f"got {self}"
            )


#: The architecture of a new model in the Model widget and ``napari-unet train --new``: the
#: paper's depth and valid convolutions at an eighth of its width (8 base features instead of
#: 64). On a CPU that width learned the most per second, from scratch on ISBI scribbles in 60 s
#: (against 16 features, 3 seeds: lower pixel error in all, lower Rand error in 2) and for the
#: bundled ``em-membranes`` over 40 minutes (BENCHMARKS.md: network width; new model vs forest).
NEW_MODEL_CONFIG: Final = ModelConfig(base_features=8)


@dataclass(frozen=True)
class NormConfig(_Options):
    """Intensity normalisation, computed once per image (never per tile).

    Each channel is mapped so that its ``low`` percentile goes to 0 and its
    ``high`` percentile to 1; values beyond are kept up to ``clip``.

    Attributes
    ----------
    low, high : float
        The percentiles (0-100) mapped to 0 and 1; stored in the checkpoint.
    clip : float or None
        Normalised values are clipped to [-clip, clip] (None: not clipped). The real
        images of ``../shared/data`` stay within [-0.3, 1.6]; a few hot pixels of a
        camera (65535 in a dim 16-bit image: about 340 normalised) spoiled the
        prediction tens of pixels around them (DSB F1 0.882 -> 0.459 with 30 of them;
        0.857 clipped at 5: BENCHMARKS.md, hot pixels). A checkpoint without it gets 5.
    """

    low: float = 1.0
    high: float = 99.8
    clip: float | None = 5.0


#: The tile-size value meaning "the model's default tile"
#: (:func:`~napari_unet.core.tile_choice.default_tile_size`).
AUTO_TILE: Final = "auto"


class Unset(enum.Enum):
    """Type of :data:`UNSET`."""

    UNSET = "UNSET"

    def __repr__(self) -> str:  # as help() shows keyword defaults
        return "<from config>"


#: Default of the keyword arguments that override a :class:`PredictConfig` field:
#: "not given, take the config's value".
UNSET: Final = Unset.UNSET


def is_background_threshold(value: Any) -> bool:
    """Whether ``value`` is a background threshold: a number (not a bool) in [0.5, 1).

    The one rule for ``PredictConfig.background_threshold``, a checkpoint's stored
    threshold, ``--background-threshold`` and :func:`~napari_unet.core.boundaries.grow_objects`.
    """
    number = isinstance(value, (int, float, np.integer, np.floating))
    return number and not isinstance(value, (bool, np.bool_)) and 0.5 <= value < 1


def _whole_number(value: Any) -> bool:
    """An int (numpy's too), not a bool."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _optional_flag(value: Any) -> bool | None:
    """None stays None (the model decides); anything else as a bool."""
    return None if value is None else bool(value)


@dataclass(frozen=True)
class PredictConfig(_Options):
    """How an image is predicted and post-processed: one set of defaults for the Python
    API, ``napari-unet predict`` (its option defaults) and the Predict widget (its initial
    values).

    Attributes
    ----------
    tile_size : int, "auto" or None
        Input tile edge in pixels, context included; it must be a valid input size of the
        model (:meth:`~napari_unet.core.model.UNet.valid_input_sizes`), which is checked
        when predicting. ``"auto"``: the model's default tile
        (:func:`~napari_unet.core.tile_choice.default_tile_size`). ``None``: one pass over
        the whole mirror-padded image (out-of-core prediction into zarr, which needs
        tiles, takes the default tile then).
    batch_size : int
        Tiles per forward pass (>= 1).
    device : str
        "auto" (CUDA, else MPS, else CPU), "cpu", "cuda", "cuda:N" or "mps"; a
        ``torch.device`` or None ("auto") given here is stored as its name.
    test_time_augmentation : bool or None
        Average each tile's probabilities over its 8 rotations and flips (8x the compute;
        the 4 rotations for a model whose checkpoint asks for them,
        ``model.info.test_time_transforms``). None: as the model says
        (``model.info.test_time_augmentation``, false unless its figures were chosen with it;
        :func:`~napari_unet.core.inference.uses_test_time_augmentation`).
    instances : {"components", "watershed"}
        How instance labels are made from the class mask
        (:func:`~napari_unet.core.postprocess.instance_labels`).
    min_instance_size : int
        Objects under this many pixels are not instances (>= 0; 0 keeps all); default
        :data:`~napari_unet.core.postprocess.MIN_INSTANCE_SIZE`.
    fill_holes : bool
        What an object encloses joins it: in the mask, background pockets and the
        objects of its class inside them
        (:func:`~napari_unet.core.boundaries.fill_enclosed`, after the gaps are closed
        and the objects grown); in the instances, background pixels enclosed by one
        instance (:func:`~napari_unet.core.postprocess.fill_instance_holes`).
    close_boundaries : bool
        Close gaps in the predicted boundaries (membranes, the background between
        touching nuclei) before instances are labelled
        (:func:`~napari_unet.core.postprocess.prediction_mask`; out of core, chunk by
        chunk with a halo: :func:`~napari_unet.io.chunked_refine.close_gaps_chunked`),
        and grow the objects up to the model's own background threshold if it has one
        (``model.info.background_threshold``: 0.85 for ``em-membranes``;
        :func:`~napari_unet.core.boundaries.grow_objects`). False: the most probable
        class, nothing else.
    background_threshold : float or None
        With ``close_boundaries``: the threshold the objects grow to, in [0.5, 1), in
        place of the model's own (0.5: no growth; higher: thinner boundaries). None:
        the model's (``model.info.background_threshold``).

    Raises
    ------
    ValueError
        A tile size that is not "auto", None or a whole number >= 1, a batch size
        below 1, a negative or fractional minimum instance size, or an unknown
        instance method.
    """

    tile_size: int | Literal["auto"] | None = AUTO_TILE
    batch_size: int = 4
    device: str = "auto"
    test_time_augmentation: bool | None = None
    instances: InstanceMethod = "components"
    min_instance_size: int = MIN_INSTANCE_SIZE
    fill_holes: bool = True
    close_boundaries: bool = True
    background_threshold: float | None = None

    def __post_init__(self) -> None:
        tile_size = self.tile_size
        if not (tile_size is None or tile_size == AUTO_TILE or _whole_number(tile_size)) or (
            _whole_number(tile_size) and tile_size < 1  # type: ignore[operator]
        ):
            raise ValueError(
                "tile_size must be 'auto', None (the whole image) or a whole number of "
                f"pixels >= 1, got {tile_size!r}"
            )
        if not (_whole_number(self.batch_size) and self.batch_size >= 1):
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size!r}")
        if not (_whole_number(self.min_instance_size) and self.min_instance_size >= 0):
            raise ValueError(
                "min_instance_size must be a whole number of pixels >= 0 (0 keeps every "
                f"object), got {self.min_instance_size!r}"
            )
        threshold = self.background_threshold
        if threshold is not None and not is_background_threshold(threshold):
            raise ValueError(
                "background_threshold must be None (the model's) or a number in [0.5, 1), "
                f"got {threshold!r}"
            )
        if self.instances not in ("components", "watershed"):
            raise ValueError(
                f"instances must be 'components' or 'watershed', got {self.instances!r}"
            )
        device = self.device
        if device is None:
            device = "auto"
        elif not isinstance(device, str):
            if not hasattr(device, "type"):  # a torch.device
                raise ValueError(f"device must be a name such as 'auto' or 'cpu', got {device!r}")
            device = str(device)
        # plain Python values, so the config travels through JSON unchanged
        for name, value in (
            ("tile_size", tile_size if isinstance(tile_size, str | None) else int(tile_size)),
            ("batch_size", int(self.batch_size)),
            ("min_instance_size", int(self.min_instance_size)),
            ("device", device),
            ("test_time_augmentation", _optional_flag(self.test_time_augmentation)),
            ("fill_holes", bool(self.fill_holes)),
            ("close_boundaries", bool(self.close_boundaries)),
            ("background_threshold", None if threshold is None else float(threshold)),
        ):
            object.__setattr__(self, name, value)

    def overridden(self, **values: Any) -> PredictConfig:
        """This config with the fields given in ``values`` replaced, :data:`UNSET` skipped.

        How the pipeline functions apply their keyword arguments to a config.
        """
        changes = {name: value for name, value in values.items() if value is not UNSET}
        return self.replace(**changes) if changes else self


def predict_config(
    config: PredictConfig | None, fallback: PredictConfig, **values: Any
) -> PredictConfig:
    """The config a pipeline function runs with: ``config`` (else ``fallback``), with the
    keyword arguments that were given (not :data:`UNSET`) replacing its fields.

    Raises
    ------
    TypeError
        ``config`` that is not a :class:`PredictConfig`.
    """
    if config is not None and not isinstance(config, PredictConfig):
        raise TypeError(f"config must be a PredictConfig, got {type(config).__name__}")
    return (config if config is not None else fallback).overridden(**values)


@dataclass(frozen=True)
class TileConfig(PredictConfig):
    """Deprecated: use :class:`PredictConfig`, which holds these fields and the other
    prediction options (this name was never used by the pipeline).

    Kept so old code runs: a :class:`PredictConfig` whose ``tile_size`` defaults to 572
    as before. Creating one warns (``DeprecationWarning``).
    """

    tile_size: int | Literal["auto"] | None = 572

    def __post_init__(self) -> None:
        warnings.warn(
            "napari_unet.TileConfig is deprecated; use napari_unet.PredictConfig",
            DeprecationWarning,
            stacklevel=3,
        )
        super().__post_init__()

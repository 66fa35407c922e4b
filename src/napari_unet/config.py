"""Small frozen option groups, each with its one set of defaults.

Every long-running function takes one of these instead of a long list of keyword
arguments: :class:`ModelConfig`, :class:`NormConfig`, :class:`WeightConfig` and
:class:`TrainConfig` are stored inside checkpoints; :class:`PredictConfig` is what
``napari-unet predict``, the Predict widget and the prediction functions share. Each
has ``to_dict`` / ``from_dict`` so it travels through JSON (checkpoint metadata, the
CLI, dask workers).
"""

from __future__ import annotations

import dataclasses
import enum
import warnings
from dataclasses import dataclass
from typing import Any, ClassVar, Final, Literal, TypeVar

import numpy as np

from .core.postprocess import MIN_INSTANCE_SIZE, InstanceMethod

T = TypeVar("T", bound="_Options")


class _Options:
    """Mixin: JSON round-trip for frozen dataclasses."""

    __dataclass_fields__: ClassVar[dict[str, dataclasses.Field[Any]]]  # set by @dataclass

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls: type[T], values: dict[str, Any] | None) -> T:
        """Build from a dict, ignoring unknown keys (forward compatibility)."""
        values = dict(values or {})
        known = {f.name for f in dataclasses.fields(cls)}
        kwargs = {
            k: tuple(v) if isinstance(v, list) else v for k, v in values.items() if k in known
        }
        return cls(**kwargs)

    def replace(self: T, **changes: Any) -> T:
        return dataclasses.replace(self, **changes)


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


@dataclass(frozen=True)
class NormConfig(_Options):
    """Intensity normalisation, computed once per image (never per tile).

    Each channel is mapped so that its ``low`` percentile goes to 0 and its
    ``high`` percentile to 1 (values outside are kept, not clipped).
    """

    low: float = 1.0
    high: float = 99.8


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


def _whole_number(value: Any) -> bool:
    """An int (numpy's too), not a bool."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


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
    test_time_augmentation : bool
        Average each tile's probabilities over its 8 rotations and flips (8x the compute).
    instances : {"components", "watershed"}
        How instance labels are made from the class mask
        (:func:`~napari_unet.core.postprocess.instance_labels`).
    min_instance_size : int
        Objects under this many pixels are not instances (>= 0; 0 keeps all); default
        :data:`~napari_unet.core.postprocess.MIN_INSTANCE_SIZE`.
    fill_holes : bool
        Background pixels enclosed by one instance join it
        (:func:`~napari_unet.core.postprocess.fill_instance_holes`).
    close_boundaries : bool
        Close gaps in the predicted boundaries (membranes, the background between
        touching nuclei) before instances are labelled
        (:func:`~napari_unet.core.postprocess.prediction_mask`; out of core, chunk by
        chunk with a halo: :func:`~napari_unet.io.chunked_labels.close_gaps_chunked`).

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
    test_time_augmentation: bool = False
    instances: InstanceMethod = "components"
    min_instance_size: int = MIN_INSTANCE_SIZE
    fill_holes: bool = True
    close_boundaries: bool = True

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
            ("test_time_augmentation", bool(self.test_time_augmentation)),
            ("fill_holes", bool(self.fill_holes)),
            ("close_boundaries", bool(self.close_boundaries)),
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


@dataclass(frozen=True)
class WeightConfig(_Options):
    """The paper's pixel-wise loss weights (eq. 2).

    ``w(x) = w_c(x) + w0 * exp(-(d1(x) + d2(x))**2 / (2 * sigma**2))``.

    Attributes
    ----------
    w0, sigma : float
        Height and width (pixels) of the border term (paper: 10 and about 5);
        finite, w0 >= 0 and sigma > 0 (else ValueError).
    class_balance : bool
        ``w_c`` inversely proportional to each class's share of the labelled
        pixels of an image (else ``w_c = 1``). Training also draws patch centres
        class by class (:class:`~napari_unet.training.sampling.PatchSampler`), so with very
        unequal scribbles the two together favour the rarer class more than either
        alone; with scribbles that are roughly balanced already, switching this off
        changes little (BENCHMARKS.md, ISBI scribbles: off there).
    """

    w0: float = 10.0
    sigma: float = 5.0
    class_balance: bool = True

    def __post_init__(self) -> None:
        # sigma = 0 divides by zero in the border term; NaN or inf makes every weight NaN
        for name, value, positive in (("w0", self.w0, False), ("sigma", self.sigma, True)):
            try:
                low = bool(value > 0) if positive else bool(value >= 0)
                valid = low and bool(value < float("inf")) and not isinstance(value, bool)
            except (TypeError, ValueError):
                valid = False
            if not valid:
                what = "a finite number of pixels > 0" if positive else "a finite number >= 0"
                raise ValueError(f"WeightConfig {name} must be {what}, got {value!r}")


@dataclass(frozen=True)
class AugmentConfig(_Options):
    """Data augmentation applied to each training patch.

    Attributes
    ----------
    elastic : bool
        Elastic deformation (random displacements on a coarse grid, bicubic field).
    elastic_std : float
        Standard deviation of the coarse displacements, in pixels (the paper: 10).
    elastic_grid : int
        Points per axis of the coarse grid (the paper: 3).
    flips : bool
        Random horizontal and vertical flips.
    rot90 : bool
        Random multiples of 90 degree rotations.
    intensity : float
        Amplitude of random gain/offset changes of the normalised image (0: off).
    """

    elastic: bool = True
    elastic_std: float = 10.0
    elastic_grid: int = 3
    flips: bool = True
    rot90: bool = True
    intensity: float = 0.1


#: Learning rate of a model's first training (``TrainConfig.learning_rate=None``).
SCRATCH_LEARNING_RATE: float = 1e-3
#: Learning rate when fine-tuning a model that was trained before.
FINETUNE_LEARNING_RATE: float = 1e-4


@dataclass(frozen=True)
class TrainConfig(_Options):
    """Fine-tuning options.

    Attributes
    ----------
    seconds : float or None
        Time budget. ``None``: no time limit (then ``iterations`` must be set).
    iterations : int or None
        Iteration budget. Training stops at whichever budget is reached first.
    patch_size : int or None
        Input patch edge. ``None``: the smallest valid size whose output is at
        least 96 pixels (or the closest for "same" networks).
    batch_size : int
        Patches per iteration.
    learning_rate : float or None
        Adam learning rate at the start. ``None``: :data:`SCRATCH_LEARNING_RATE` for
        a model that was never trained, :data:`FINETUNE_LEARNING_RATE` for one that
        was (faster rates made the bundled models worse on the parts that were not
        painted: BENCHMARKS.md, annotation loop).
    lr_schedule : {"linear", "cosine", "constant"}
        How the learning rate changes over the budget (the larger of the time and
        iteration fractions used): "linear" decays it to 0 at the end of the budget,
        "cosine" follows half a cosine to 0, "constant" keeps it. Decaying to 0 over a
        fixed budget trains better in short runs than a constant rate (see
        BENCHMARKS.md, ISBI scribbles).
    bn_recalibration : int
        Models with batch norm only: after training, re-estimate the batch-norm
        statistics of the kept weights from this many batches of training patches
        (forward passes, no weight update; the time is taken from the budget);
        0 = off. With a constant learning rate the running averages lag behind the
        weights and this helps; with a decaying rate they catch up by themselves
        and it did not (BENCHMARKS.md, ISBI scribbles), hence the default 0.
    seed : int
        Seed of the random generator (patch positions, augmentation).
    device : str
        "auto", "cpu", "cuda", "cuda:N" or "mps".
    amp : bool
        Automatic mixed precision on CUDA (float16 autocast with a gradient scaler).
    distillation : float
        Weight of the term that keeps a trained model's own predictions on the
        unpainted pixels (:mod:`~napari_unet.training.distillation`); 0 = strokes only. Not
        used for a model that was never trained.
    distillation_margin : int
        Pixels around a stroke that contradicts the starting model where its
        predictions are not kept.
    distillation_border : float
        With distillation: ``w0`` of the paper's border term computed on the
        starting model's own objects, weighting the distillation of the gaps
        between its touching objects (0 = every unpainted pixel alike). 30 kept
        the most rounds of the annotation-loop benchmark no worse than the
        starting model (DSB F1 16/24 rounds against 12/24 at 10 and 9/24 at 0;
        ISBI Rand error 12/12 at 30 and 10, 9/12 at 0; BENCHMARKS.md).
    distillation_temperature : float
        The teacher's probabilities are sharpened to ``p ** (1 / T)``
        (renormalised) before distillation: 1 keeps them, below 1 its decisions
        at uncertain pixels become firm targets.
    context_patches : float
        With distillation: share of the training patches centred anywhere in the
        images instead of on a stroke, so the whole image is rehearsed.

    Raises
    ------
    ValueError
        A budget, batch size or learning rate that is not positive, or an
        unknown schedule.
    """

    seconds: float | None = 30.0
    iterations: int | None = None
    patch_size: int | None = None
    batch_size: int = 4
    learning_rate: float | None = None
    lr_schedule: Literal["linear", "cosine", "constant"] = "linear"
    bn_recalibration: int = 0
    seed: int = 0
    device: str = "auto"
    amp: bool = False
    distillation: float = 3.0
    distillation_margin: int = 3
    distillation_border: float = 30.0
    distillation_temperature: float = 1.0
    context_patches: float = 0.5

    def __post_init__(self) -> None:
        if not self.distillation_temperature > 0:
            raise ValueError(
                f"distillation_temperature must be > 0, got {self.distillation_temperature}"
            )
        if not self.distillation_border >= 0:
            raise ValueError(f"distillation_border must be >= 0, got {self.distillation_border}")
        if not (self.distillation >= 0 and self.distillation_margin >= 0):
            raise ValueError(
                "distillation and distillation_margin must be >= 0, got "
                f"{self.distillation} and {self.distillation_margin}"
            )
        if not 0 <= self.context_patches < 1:
            raise ValueError(f"context_patches must be in [0, 1), got {self.context_patches}")
        if self.lr_schedule not in ("linear", "cosine", "constant"):
            raise ValueError(
                f"lr_schedule must be 'linear', 'cosine' or 'constant', got {self.lr_schedule!r}"
            )
        if self.bn_recalibration < 0:
            raise ValueError(f"bn_recalibration must be >= 0, got {self.bn_recalibration}")
        positive = {
            "seconds": self.seconds,
            "iterations": self.iterations,
            "batch_size": self.batch_size,
            "learning_rate": self.learning_rate,
            "patch_size": self.patch_size,
        }
        for name, value in positive.items():
            if value is not None and not value > 0:
                raise ValueError(f"{name} must be positive, got {value}")

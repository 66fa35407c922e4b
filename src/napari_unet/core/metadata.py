"""A model's metadata as typed, frozen records, and their JSON form.

``model.metadata`` stays a plain dict (it travels with the model and is what
checkpoints store); :class:`ModelMetadata` is its typed reading, built with
:meth:`ModelMetadata.of` (or ``model.info``), and what :func:`~napari_unet.core.checkpoint.
load_model`, :func:`~napari_unet.core.checkpoint.new_model` and
:func:`~napari_unet.core.checkpoint.save_model` build that dict and the saved JSON with.

The JSON round-trips unchanged: ``ModelMetadata.from_dict(header).to_header() == header``,
keys in the same order, ``null`` values kept. Keys this version does not type (e.g.
``selected_on`` in the bundled em-membranes model) are kept in ``extra``; so is the value
of a typed key that is not of the expected form (e.g. a ``normalization`` with unknown
keys), written back as read while the typed field holds the best reading of it (the
field's default if there is none). Nothing here validates a checkpoint: the checks for
hostile files (:func:`~napari_unet.core.checkpoint.check_metadata`) run on the raw dict
before any of this is built.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..config import ModelConfig, NormConfig, WeightConfig, is_background_threshold
from ._json_record import JsonRecord, data_fields, read_key
from .training_run import TrainingRun

if TYPE_CHECKING:
    from .model import UNet

__all__ = [
    "FILE_KEYS",
    "FORMAT_VERSION",
    "TEST_TIME_TRANSFORM_SETS",
    "ModelMetadata",
    "TrainingRun",
]

FORMAT_VERSION = 1
"""Version of the checkpoint format :func:`~napari_unet.core.checkpoint.save_model` writes."""

FILE_KEYS = ("format_version", "package_version", "model_config")
"""Keys a checkpoint's JSON holds but ``model.metadata`` does not (the model has its config)."""

TEST_TIME_TRANSFORM_SETS = ("dihedral", "rotations")
"""Names of the test-time transform sets a checkpoint may ask for
(:data:`napari_unet.core.engine.TEST_TIME_TRANSFORMS` holds the transforms)."""


@dataclass(frozen=True)
class ModelMetadata(JsonRecord):
    """What a checkpoint stores beside the weights, typed.

    Attributes
    ----------
    format_version : int or None
        Checkpoint format (checkpoint files only; None in ``model.metadata``).
    package_version : str or None
        napari-unet version that wrote the file (checkpoint files only).
    model_config : ModelConfig or None
        The architecture (in ``model.metadata`` it is ``model.config`` instead).
    normalization : NormConfig
        How input images are normalised.
    class_names : tuple of str
        Name of each class: class index ``i`` is label value ``i + 1``.
    description : str or None
        One line about the model.
    trained_on : str or None
        What it was trained on (before the runs of ``training_history``).
    parent : str or None
        The bundled model or file it was fine-tuned from.
    source : str or None
        Where this model was loaded from (set by loading; written to a file only if a
        loaded model is saved before any training, as ever).
    training_history : tuple of TrainingRun
        Its training runs, oldest first.
    background_threshold : float
        Predict calls a pixel background (class 1) only where its probability exceeds
        this, growing objects into the rest without joining them
        (:func:`~napari_unet.core.boundaries.grow_objects`); 0.5 = the most probable
        class. Chosen on validation data (``scripts/calibrate_bundled.py``); written
        when not 0.5 or when the metadata read held it.
    close_gaps : bool
        Predict closes the gaps in this model's boundaries before labelling objects
        (when ``PredictConfig.close_boundaries`` asks for it). False for a model trained
        from strokes alone that draws its boundaries thicker than the strokes imply
        (:func:`~napari_unet.training.calibration.stroke_share_threshold`): its errors
        are split objects, and the closing would add more. Written when false or when
        the metadata read held it.
    test_time_augmentation : bool
        Predict averages this model's probabilities over rotations and flips
        (``test_time_transforms``) unless told otherwise
        (``PredictConfig.test_time_augmentation`` None: the model's own); for a model
        whose figures were chosen with it. Written when true or when the metadata read
        held it.
    test_time_transforms : str
        Which transforms test-time augmentation averages for this model, one of
        :data:`TEST_TIME_TRANSFORM_SETS`: "dihedral", the 8 rotations and flips (the
        default), or "rotations", the 4 quarter turns (half the passes). Written when
        not "dihedral" or when the metadata read held it.
    extra : dict
        Keys this version does not type (e.g. ``selected_on``), and values of typed keys
        that are not of the expected form (or lack a newer field, as a ``normalization``
        written before ``clip``), kept as read and written back unchanged while the typed
        field still holds what was read of them (``read_as``).
    key_order : tuple of str
        Order of the keys as read (``model.metadata``'s, without :data:`FILE_KEYS`).
    """

    format_version: int | None = None
    package_version: str | None = None
    model_config: ModelConfig | None = None
    normalization: NormConfig = field(default_factory=NormConfig)
    class_names: tuple[str, ...] = ("background", "foreground")
    description: str | None = "freshly initialised U-Net"
    trained_on: str | None = None
    parent: str | None = None
    source: str | None = None
    training_history: tuple[TrainingRun, ...] = ()
    background_threshold: float = 0.5
    close_gaps: bool = True
    test_time_augmentation: bool = False
    test_time_transforms: str = "dihedral"
    extra: dict[str, Any] = field(default_factory=dict)
    key_order: tuple[str, ...] = field(default=(), compare=False, repr=False)
    read_as: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def new(cls, config: ModelConfig | None = None) -> ModelMetadata:
        """The metadata of a freshly initialised model of architecture ``config``."""
        n_classes = (config or ModelConfig()).n_classes
        foreground = [f"class {label}" for label in range(2, n_classes + 1)]
        if n_classes == 2:
            foreground = ["foreground"]
        return cls(class_names=("background", *foreground))

    @classmethod
    def from_dict(
        cls, values: Mapping[str, Any], config: ModelConfig | None = None
    ) -> ModelMetadata:
        """Read a checkpoint's JSON object, or a ``model.metadata`` dict.

        The keys of a new model's metadata that ``values`` lacks take their defaults
        (:meth:`new`), as loading a checkpoint always did. ``config`` is the model's
        architecture; None: that of ``values["model_config"]`` (if there is one).
        """
        extra: dict[str, Any] = {}
        if config is None and "model_config" in values:  # always written as the model's own
            config = read_key(values, "model_config", _model_config, None, {})
        merged = {**ModelMetadata.new(config).to_dict(), **values}
        typed: dict[str, Any] = {
            "normalization": read_key(merged, "normalization", _norm, NormConfig(), extra),
            "class_names": read_key(merged, "class_names", _names, (), extra),
            "training_history": read_key(merged, "training_history", _history, (), extra),
        }
        if "background_threshold" in merged:
            typed["background_threshold"] = read_key(
                merged, "background_threshold", _threshold, 0.5, extra
            )
        if "close_gaps" in merged:
            typed["close_gaps"] = read_key(merged, "close_gaps", _flag, True, extra)
        if "test_time_augmentation" in merged:
            typed["test_time_augmentation"] = read_key(
                merged, "test_time_augmentation", _flag, False, extra
            )
        if "test_time_transforms" in merged:
            typed["test_time_transforms"] = read_key(
                merged, "test_time_transforms", _transform_set, "dihedral", extra
            )
        for key in ("format_version", "package_version", "description", "trained_on"):
            typed[key] = merged.get(key)
        typed["parent"], typed["source"] = merged.get("parent"), merged.get("source")
        known = data_fields(cls)
        extra.update(
            {key: copy.deepcopy(value) for key, value in merged.items() if key not in known}
        )
        order = tuple(key for key in merged if key not in FILE_KEYS)
        read_as = {key: typed[key] for key in extra if key in typed}
        return cls(model_config=config, **typed, extra=extra, key_order=order, read_as=read_as)

    @classmethod
    def of(cls, model: UNet) -> ModelMetadata:
        """The typed reading of ``model.metadata`` (with ``model.config``)."""
        return cls.from_dict(model.metadata, model.config)

    def to_dict(self) -> dict[str, Any]:
        """What ``model.metadata`` holds: the keys in the order read, None kept.

        Without :data:`FILE_KEYS` (see :meth:`to_header`); ``source`` only when set.
        """
        return self._ordered()

    def to_header(self) -> dict[str, Any]:
        """The JSON object a checkpoint stores: :meth:`to_dict`, then those of
        :data:`FILE_KEYS` that are set."""
        header = self.to_dict()
        for key in FILE_KEYS:
            value = getattr(self, key)
            if value is not None:
                header[key] = value.to_dict() if isinstance(value, ModelConfig) else value
        return header

    def _values(self) -> dict[str, Any]:
        values: dict[str, Any] = {
            "normalization": self.normalization.to_dict(),
            "class_names": list(self.class_names),
            "description": self.description,
            "trained_on": self.trained_on,
            "parent": self.parent,
            "training_history": [run.to_dict() for run in self.training_history],
        }
        if self.source is not None:
            values["source"] = self.source
        # the defaults (0.5, true, false, "dihedral") are written only when read
        if self.background_threshold != 0.5 or "background_threshold" in self.key_order:
            values["background_threshold"] = self.background_threshold
        if not self.close_gaps or "close_gaps" in self.key_order:
            values["close_gaps"] = self.close_gaps
        if self.test_time_augmentation or "test_time_augmentation" in self.key_order:
            values["test_time_augmentation"] = self.test_time_augmentation
        if self.test_time_transforms != "dihedral" or "test_time_transforms" in self.key_order:
            values["test_time_transforms"] = self.test_time_transforms
        return values

    @property
    def trained_weight_config(self) -> WeightConfig:
        """The weight-map settings of the latest run that recorded valid ones.

        The paper's defaults if there is none (e.g. sigma = 0, which older versions
        accepted, is skipped for an earlier run).
        """
        for run in reversed(self.training_history):
            weights = run.weights
            if weights is not None:
                return weights
        return WeightConfig()


def trained_description(before: str | None, trained_on: str, new: bool = False) -> str:
    """A trained model's description from the one it had (``before``): "trained from
    scratch on …" for a new model, else ``before`` with "; fine-tuned on …" added once
    (``napari-unet train`` unless ``--description`` is given, the Fine-tune widget)."""
    if new or not before or before == ModelMetadata.description:
        return f"U-Net trained from scratch on {trained_on}"
    if before.endswith(f" on {trained_on}"):
        return before
    return f"{before}; fine-tuned on {trained_on}"


def _model_config(raw: Any) -> tuple[ModelConfig, Any]:
    if not isinstance(raw, Mapping):
        raise TypeError("not an object")
    config = ModelConfig.from_dict(dict(raw))
    return config, config.to_dict()


def _norm(raw: Any) -> tuple[NormConfig, Any]:
    if raw is not None and not isinstance(raw, Mapping):
        raise TypeError("not an object")
    norm = NormConfig.from_dict(dict(raw) if raw is not None else None)
    return norm, norm.to_dict()


def _threshold(raw: Any) -> tuple[float, Any]:
    if not is_background_threshold(raw):
        raise ValueError("not a number in [0.5, 1)")
    return float(raw), raw


def _flag(raw: Any) -> tuple[bool, Any]:
    if not isinstance(raw, bool):
        raise TypeError("not true or false")
    return raw, raw


def _transform_set(raw: Any) -> tuple[str, Any]:
    if raw not in TEST_TIME_TRANSFORM_SETS:
        raise ValueError(f"not one of {', '.join(TEST_TIME_TRANSFORM_SETS)}")
    return str(raw), raw


def _names(raw: Any) -> tuple[tuple[str, ...], Any]:
    if not isinstance(raw, list):  # e.g. null: no names
        raise TypeError("not a list")
    return tuple(raw), list(raw)


def _history(raw: Any) -> tuple[tuple[TrainingRun, ...], Any]:
    if not isinstance(raw, list) or not all(isinstance(run, Mapping) for run in raw):
        raise TypeError("not a list of objects")
    runs = tuple(TrainingRun.from_dict(run) for run in raw)
    return runs, [run.to_dict() for run in runs]

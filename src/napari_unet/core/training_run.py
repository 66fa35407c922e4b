"""One entry of a model's training history (``training_history`` in its metadata), typed.

Read and written back unchanged as :class:`~napari_unet.core.metadata.ModelMetadata` is
(:mod:`napari_unet.core._json_record`): keys in their order, unknown ones in ``extra``.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..config import WeightConfig
from ._json_record import JsonRecord, as_lists, as_tuples, data_fields

__all__ = ["TrainingRun"]


@dataclass(frozen=True)
class TrainingRun(JsonRecord):
    """One entry of ``training_history``: a finished run, as recorded by
    :func:`~napari_unet.training.history.record_run` (and the Fine-tune widget).

    Fields are None when the entry does not have them (older versions recorded fewer:
    no ``bn_recalibration_passes``, ``kept_weights_iteration``, ``kept_smoothed_loss``
    or ``distilled``). The three option groups are kept as the dicts they were recorded
    as: a run of an older version may hold options this version names differently
    (:attr:`weights` reads ``weight_config`` as a :class:`WeightConfig`).

    Attributes
    ----------
    date : str
        When the run ended (ISO 8601, UTC).
    iterations : int
        Iterations run.
    seconds : float
        How long it ran.
    bn_recalibration_passes : int
        Passes over the data that re-estimated batch-norm statistics afterwards.
    final_smoothed_loss, kept_smoothed_loss : float
        The smoothed loss at the end, and that of the weights kept.
    kept_weights_iteration : int
        The iteration whose weights were kept.
    distilled : bool
        Whether the run was distilled from the starting model.
    annotated_pixels : dict of str to int
        Annotated pixels per label value (the keys are the values as text).
    images : tuple of tuple of int
        The shape of each training image.
    train_config, augment_config, weight_config : dict
        The options of the run (:class:`~napari_unet.config.TrainConfig`,
        :class:`~napari_unet.config.AugmentConfig`, :class:`WeightConfig`), as recorded.
    image_layer : str
        The napari layer trained on (runs of the Fine-tune widget).
    annotated_slices : tuple of tuple of int
        The planes of a stack that held annotations (runs of the Fine-tune widget).
    moved_decision : float
        For a new model whose most probable class found no object after this run: the
        background probability that its decision was moved to
        (:mod:`~napari_unet.training.seeding`).
    image_skewness : float or None
        The median skewness of the training images' intensities
        (:func:`~napari_unet.core.contrast.training_skewness`): Predict notes an image
        skewed the other way (:func:`~napari_unet.core.contrast.contrast_note`).
    extra : dict
        Keys this version does not know, kept as read.
    key_order : tuple of str
        The order of the keys as read, so that :meth:`to_dict` writes them back in it
        (empty: the fields' order).
    read_as : dict
        Empty: no typed key is kept as read (see
        :class:`~napari_unet.core._json_record.JsonRecord`).
    """

    date: str | None = None
    iterations: int | None = None
    seconds: float | None = None
    bn_recalibration_passes: int | None = None
    final_smoothed_loss: float | None = None
    kept_weights_iteration: int | None = None
    kept_smoothed_loss: float | None = None
    distilled: bool | None = None
    annotated_pixels: dict[str, int] | None = None
    images: tuple[tuple[int, ...], ...] | None = None
    train_config: dict[str, Any] | None = None
    augment_config: dict[str, Any] | None = None
    weight_config: dict[str, Any] | None = None
    image_layer: str | None = None
    annotated_slices: tuple[tuple[int, ...], ...] | None = None
    moved_decision: float | None = None
    image_skewness: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    key_order: tuple[str, ...] = field(default=(), compare=False, repr=False)
    read_as: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> TrainingRun:
        """Read a recorded entry (values as recorded, lists as tuples)."""
        known = data_fields(cls)
        typed = {key: copy.deepcopy(value) for key, value in values.items() if key in known}
        for key in ("images", "annotated_slices"):
            if key in typed:
                typed[key] = as_tuples(typed[key])
        extra = {key: copy.deepcopy(value) for key, value in values.items() if key not in known}
        return cls(**typed, extra=extra, key_order=tuple(values))

    def to_dict(self) -> dict[str, Any]:
        """The entry as JSON values: the keys read, in their order (None kept), then the rest."""
        return self._ordered()

    def _values(self) -> dict[str, Any]:
        return {
            name: as_lists(copy.deepcopy(getattr(self, name)))
            for name in data_fields(type(self))
            if getattr(self, name) is not None or name in self.key_order
        }

    @property
    def weights(self) -> WeightConfig | None:
        """``weight_config`` as a :class:`WeightConfig`; None if missing or not valid."""
        if not isinstance(self.weight_config, Mapping):
            return None
        try:
            return WeightConfig.from_dict(dict(self.weight_config))
        except (TypeError, ValueError):  # e.g. sigma = 0, which older versions accepted
            return None

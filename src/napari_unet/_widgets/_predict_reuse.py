"""The last run's probabilities, kept so that a change of post-processing alone does not
run the network again.

A user who predicted an image and then changes only what is done with the probabilities
(the instance method, the smallest instance, filling holes, closing gaps, the background
threshold, the weight map or the uncertainty) gets the new outputs in the time of the
post-processing: on a 2048² image 3.6 s instead of 8.8 s with ``em-membranes``, 2.1 s
instead of 6.6 s with ``nuclei``, on 2 cores (``benchmarks/bench_predict_reuse.py``).
The probabilities are used again only while everything they came from is unchanged: the
image layer and how its axes are read, the tile size, the device and the test-time
augmentation (:class:`NetworkInputs`, compared in the Qt thread), and the image's values
and the model's weights, configuration and metadata, byte for byte (:class:`Contents`,
digested in the worker thread, so that an image edited in place or a model changed by a
fine-tune is never mistaken for the last one). Lazy (dask, zarr) images are not digested,
and their probabilities not reused.

Keeping them costs 4 bytes per pixel and class beyond the layers (32 MiB for a 2048² image
and two classes): the kept array is private, never a layer's data, which a user may edit.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any

import napari
import numpy as np
import torch

from ..config import PredictConfig
from ..core.devices import resolve_device
from ..core.inference import augmentation_transforms
from ..core.memory_limits import available_ram
from ..core.model import UNet
from ._geometry import ImageGeometry

__all__ = ["Contents", "KnownProbabilities", "LastProbabilities", "NetworkInputs"]

KEEP_SHARE = 0.25
"""Largest share of the available memory the kept probabilities may take."""


def model_fingerprint(model: UNet) -> str:
    """A digest of ``model``'s weights, running statistics, configuration and metadata,
    byte for byte: it changes with a fine-tune (even a stopped one), going back, or
    loading another checkpoint. About 0.1-0.2 s for a 31-million-weight model on a CPU."""
    digest = hashlib.sha1()
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            values = tensor.detach().to("cpu", torch.float32).contiguous().numpy()
            digest.update(name.encode())
            digest.update(values.data)
    described = {"config": asdict(model.config), "metadata": getattr(model, "metadata", {})}
    digest.update(json.dumps(described, sort_keys=True, default=str).encode())
    return digest.hexdigest()


DIGEST_BLOCK_BYTES = 64 * 2**20
"""A strided (non-contiguous) image is digested in copies of at most about this size."""


def data_digest(data: Any) -> str | None:
    """A digest of an in-memory image's values, shape and type (about 0.1 s for 75 MB);
    None for lazy data (dask, zarr), which is not read whole for this. A strided view is
    copied a block of its first axis at a time, never whole."""
    if not isinstance(data, np.ndarray):
        return None
    digest = hashlib.sha1(f"{data.shape}{data.dtype.str}".encode())
    if data.flags.c_contiguous or data.ndim == 0:
        digest.update(np.ascontiguousarray(data).data)
        return digest.hexdigest()
    step = max(1, DIGEST_BLOCK_BYTES // max(data[0].nbytes, 1))
    for start in range(0, data.shape[0], step):
        digest.update(np.ascontiguousarray(data[start : start + step]).data)
    return digest.hexdigest()


@dataclass(frozen=True)
class Contents:
    """What a run read, digested in its worker thread (:func:`data_digest`,
    :func:`model_fingerprint`)."""

    data: str | None
    model: str

    @classmethod
    def of(cls, data: Any, model: UNet) -> Contents:
        return cls(data_digest(data), model_fingerprint(model))

    @property
    def comparable(self) -> bool:
        """Whether another run can be told to have read the same (not for lazy data)."""
        return self.data is not None


@dataclass(frozen=True)
class NetworkInputs:
    """The settings a run's probabilities depend on, besides its :class:`Contents`.

    Attributes
    ----------
    image_id : str
        The image layer's ``unique_id``.
    geometry : ImageGeometry
        How its axes are read.
    tile_size : int, "auto" or None
    device : str
        The device the run uses ("auto" resolved).
    transforms : tuple of (int, bool)
        The test-time transforms averaged
        (:func:`~napari_unet.core.inference.augmentation_transforms`).
    """

    image_id: str
    geometry: ImageGeometry
    tile_size: int | str | None
    device: str
    transforms: tuple[tuple[int, bool], ...]

    @classmethod
    def of(
        cls,
        image: napari.layers.Image,
        geometry: ImageGeometry,
        model: UNet,
        config: PredictConfig,
    ) -> NetworkInputs:
        try:
            device = str(resolve_device(config.device))
        except ValueError:  # not available: the run fails and says so
            device = str(config.device)
        return cls(
            str(image.unique_id),
            geometry,
            config.tile_size,
            device,
            augmentation_transforms(model, config),
        )


@dataclass(frozen=True)
class KnownProbabilities:
    """A finished run's probabilities (n_classes, ..., Y, X) float32, what they came from,
    and its contrast note; the job uses them when its :class:`Contents` are the same."""

    probabilities: np.ndarray
    contents: Contents
    note: str


class LastProbabilities:
    """The probabilities of the Predict section's last finished run, and what they came
    from; let go when the image or its probabilities layer is removed
    (:meth:`forget_layer`), the image gets new data, or a run needs other ones.
    """

    def __init__(self) -> None:
        self._inputs: NetworkInputs | None = None
        self._known: KnownProbabilities | None = None
        self._image: Any = None
        self._layer_ids: set[str] = set()

    def keep(
        self,
        inputs: NetworkInputs,
        known: KnownProbabilities,
        image: napari.layers.Image,
        layers: list[napari.layers.Layer],
    ) -> None:
        """Remember ``known`` of ``image``; ``layers``: the outputs whose removal lets them
        go. Not kept for lazy data, nor when keeping them would take more than
        :data:`KEEP_SHARE` of the available memory."""
        self.forget()
        if (
            not known.contents.comparable
            or known.probabilities.nbytes > KEEP_SHARE * available_ram()
        ):
            return
        if known.probabilities.shape[0] > 2:  # the layer shows this array: edits go into it
            known = dataclasses.replace(known, probabilities=known.probabilities.copy())
        self._inputs, self._known, self._image = inputs, known, image
        self._layer_ids = {str(layer.unique_id) for layer in (image, *layers)}
        image.events.data.connect(self.forget)

    def recall(self, inputs: NetworkInputs) -> KnownProbabilities | None:
        """The kept probabilities when they came from ``inputs``; otherwise they are let
        go (a run that needs other ones replaces them: both are not held at once)."""
        if inputs != self._inputs:
            self.forget()
        return self._known

    def forget_layer(self, layer: napari.layers.Layer) -> None:
        """Let the probabilities go if ``layer`` (just removed) is their image or output."""
        if str(layer.unique_id) in self._layer_ids:
            self.forget()

    def forget(self, *_: Any) -> None:
        """Let the probabilities go."""
        if self._image is not None:
            self._image.events.data.disconnect(self.forget)
        self._inputs, self._known, self._image, self._layer_ids = None, None, None, set()

    @property
    def kept(self) -> bool:
        """Whether probabilities are kept."""
        return self._known is not None

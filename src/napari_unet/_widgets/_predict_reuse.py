"""The last run's probabilities, kept so that a change of post-processing alone does not
run the network again.

A user who predicted an image and then changes only what is done with the probabilities
(the instance method, the smallest instance, filling holes, closing gaps, the background
threshold, the weight map or the uncertainty) gets the new outputs in the time of the
post-processing: on a 2048² image 3.4 s instead of 18.5 s with ``em-membranes``, 2.0 s
instead of 6.1 s with ``nuclei`` (``benchmarks/bench_predict_reuse.py``). The
probabilities are used again only while everything they came from is unchanged
(:class:`NetworkInputs`): the image layer and its data, how its axes are read, the
model's weights and metadata, the tile size, the device and the test-time augmentation.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import napari
import numpy as np
import torch

from ..config import PredictConfig
from ..core.inference import augmentation_transforms
from ..core.memory_limits import available_ram
from ..core.model import UNet
from ._geometry import ImageGeometry

KEEP_SHARE = 0.25
"""Largest share of the available memory the kept probabilities may take: a two-class
model's layer shows a copy of the foreground's, so keeping all classes costs twice that."""

__all__ = ["LastProbabilities", "NetworkInputs", "model_fingerprint"]


def model_fingerprint(model: UNet) -> str:
    """A digest of ``model``'s weights, running statistics and metadata, byte for byte: it
    changes with a fine-tune (even a stopped one), going back, or loading another
    checkpoint. About 0.1 s for a 31-million-weight model on a CPU."""
    digest = hashlib.sha1()
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            values = tensor.detach().to("cpu", torch.float32).contiguous().numpy()
            digest.update(name.encode())
            digest.update(values.data)
    metadata = json.dumps(getattr(model, "metadata", {}), sort_keys=True, default=str)
    digest.update(metadata.encode())
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class NetworkInputs:
    """What a run's probabilities depend on; two runs with equal ones give the same
    probabilities.

    Attributes
    ----------
    image_id : str
        The image layer's ``unique_id``.
    data_id : int
        ``id`` of its data: napari gives a layer new data as a new array.
    geometry : ImageGeometry
        How its axes are read.
    model : str
        :func:`model_fingerprint` of the model.
    tile_size : int, "auto" or None
    device : str
    transforms : tuple of (int, bool)
        The test-time transforms averaged
        (:func:`~napari_unet.core.inference.augmentation_transforms`).
    """

    image_id: str
    data_id: int
    geometry: ImageGeometry
    model: str
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
        return cls(
            image_id=str(image.unique_id),
            data_id=id(image.data),
            geometry=geometry,
            model=model_fingerprint(model),
            tile_size=config.tile_size,
            device=str(config.device),
            transforms=augmentation_transforms(model, config),
        )


class LastProbabilities:
    """The probabilities of the Predict section's last finished run, and what they came
    from.

    The array is the one the probabilities layer shows (or its base, for a two-class
    model's foreground), so keeping it costs no memory while that layer exists; it is
    let go when the image or that layer is removed (:meth:`forget_layer`) or the image
    gets new data (:meth:`forget`).
    """

    def __init__(self) -> None:
        self._inputs: NetworkInputs | None = None
        self._probabilities: np.ndarray | None = None
        self._note = ""
        self._image: Any = None
        self._layer_ids: set[str] = set()

    def keep(
        self,
        inputs: NetworkInputs,
        probabilities: np.ndarray,
        note: str,
        image: napari.layers.Image,
        layers: list[napari.layers.Layer],
    ) -> None:
        """Remember ``probabilities`` (n_classes, ..., Y, X) of ``image`` and its contrast
        ``note``; ``layers``: the outputs whose removal lets them go. Not kept when they
        would take more than :data:`KEEP_SHARE` of the available memory."""
        self.forget()
        if probabilities.nbytes > KEEP_SHARE * available_ram():
            return
        self._inputs, self._probabilities, self._note = inputs, probabilities, note
        self._image = image
        self._layer_ids = {str(layer.unique_id) for layer in (image, *layers)}
        image.events.data.connect(self.forget)

    def recall(self, inputs: NetworkInputs) -> tuple[np.ndarray, str] | None:
        """The kept probabilities and note when they came from ``inputs``, else None."""
        if self._probabilities is None or inputs != self._inputs:
            return None
        return self._probabilities, self._note

    def forget_layer(self, layer: napari.layers.Layer) -> None:
        """Let the probabilities go if ``layer`` (just removed) is their image or output."""
        if str(layer.unique_id) in self._layer_ids:
            self.forget()

    def forget(self, *_: Any) -> None:
        """Let the probabilities go."""
        if self._image is not None:
            self._image.events.data.disconnect(self.forget)
        self._inputs, self._probabilities, self._note, self._image = None, None, "", None
        self._layer_ids = set()

    @property
    def kept(self) -> bool:
        """Whether probabilities are kept."""
        return self._probabilities is not None

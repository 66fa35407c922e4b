"""How tiles go through the network: engine options, test-time augmentation, the forward pass.

:mod:`napari_unet.core.inference` plans and stitches tiles; this module runs a batch of
them. :class:`EngineOptions` choose how (memory layout, fused convolutions, tiles per
pass), never what: every combination gives the same probabilities up to float rounding.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .fused import FUSED_CONV_RELU, fused_unet_forward
from .metadata import TEST_TIME_TRANSFORM_SETS
from .model import UNet

__all__ = [
    "DEFAULT_ENGINE",
    "DIHEDRAL",
    "IDENTITY",
    "ROTATIONS",
    "TEST_TIME_TRANSFORMS",
    "TEST_TIME_TRANSFORM_WORDS",
    "EngineOptions",
    "dihedral",
    "dihedral_inverse",
    "forward",
    "tile_probabilities",
    "to_device",
]


@dataclass(frozen=True)
class EngineOptions:
    """How the inference engine runs, not what it computes: every combination gives the
    same probabilities up to float rounding (tests/test_inference.py). The defaults are
    the measured fastest; benchmarks pass other values to time the alternatives.

    Attributes
    ----------
    channels_last : bool
        On the CPU, feed tiles to the network in channels-last (NHWC) memory layout.
        Measured under load it looked 1.45x faster than NCHW; on the idle machine the
        two layouts took the same time (benchmarks/results_performance.md, section 5):
        the speed-up is ``cpu_tiles_per_pass``'s. False gives the plain NCHW path.
    fused_conv_relu : bool
        On the CPU, run each 3x3 convolution and the ReLU after it as one oneDNN
        operation (``torch.ops.mkldnn._convolution_pointwise``, the fused kernel torch's
        own compiler emits; :mod:`napari_unet.core.fused`) instead of a convolution and
        a separate pass over its output. Measured 1.13x per forward pass of
        the 16-feature ``em-membranes`` (benchmarks/results_inference_speed.md). Falls back to
        ``model(x)`` when the operation is missing. False gives the plain eager path.
    shrink_tiles_to_image : bool
        Tiles of one image share their edge: with the stride of ``tile_size`` an axis
        needs ``n`` tiles, and the smallest valid tile that still covers it in ``n``
        tiles is used (never more than ``tile_size``). Same stride grid rules, so the
        same result as one pass over the whole image; less halo and mirrored padding to
        compute (a 2048 px axis: 6 tiles of 540 instead of 572, or 3 of 876 instead of
        1020). False uses ``tile_size`` itself.
    cpu_tiles_per_pass : int
        On the CPU, at most this many tiles go through the network in one forward pass
        (a larger ``batch_size`` still groups the reading and the progress reports; on
        other devices a whole batch is one pass). The activations of one 572 x 572 tile
        (about 20 MB per 16-channel feature map) already fill the last-level cache:
        with channels-last, a pass over 4 tiles took 2x longer per tile than passes of 1
        (benchmarks/results_performance.md).
    """

    channels_last: bool = True
    fused_conv_relu: bool = True
    shrink_tiles_to_image: bool = True
    cpu_tiles_per_pass: int = 1

    def __post_init__(self) -> None:
        if self.cpu_tiles_per_pass < 1:
            raise ValueError(
                f"cpu_tiles_per_pass must be at least 1, got {self.cpu_tiles_per_pass}"
            )


#: The options :func:`~napari_unet.core.inference.predict` and its relatives run with
#: unless given others.
DEFAULT_ENGINE = EngineOptions()


#: The 8 symmetries of the square (rot90 turns ``k``, then an optional left-right flip).
DIHEDRAL = tuple((turns, flip) for turns in range(4) for flip in (False, True))

#: The 4 rotations by quarter turns, no flip.
ROTATIONS = tuple((turns, False) for turns in range(4))

#: One pass, as the tile is.
IDENTITY = ((0, False),)

#: The transform sets a checkpoint may ask for, by the name it stores
#: (``ModelMetadata.test_time_transforms``).
TEST_TIME_TRANSFORMS: dict[str, tuple[tuple[int, bool], ...]] = dict(
    zip(TEST_TIME_TRANSFORM_SETS, (DIHEDRAL, ROTATIONS), strict=True)
)

#: What each set averages, in words for the user.
TEST_TIME_TRANSFORM_WORDS: dict[str, str] = dict(
    zip(TEST_TIME_TRANSFORM_SETS, ("8 rotations and flips", "4 rotations"), strict=True)
)


def tile_probabilities(
    model: UNet,
    inputs: torch.Tensor,
    per_pass: int,
    transforms: Sequence[tuple[int, bool]] = IDENTITY,
    check_stop: Callable[[], None] | None = None,
    engine: EngineOptions = DEFAULT_ENGINE,
) -> np.ndarray:
    """(N, n_classes, y, x) probabilities of a batch of input tiles, as float32 numpy.

    The probabilities are the mean over ``transforms`` of each tile (``(turns, flip)``
    pairs as :func:`dihedral` takes them, each mapped back before averaging; test-time
    augmentation, e.g. :data:`DIHEDRAL` or :data:`ROTATIONS`). ``check_stop`` (raising
    to cancel) is called before every forward pass but the first, which the caller checked.
    """
    if not transforms:
        raise ValueError("test-time augmentation needs at least one transform")
    total: torch.Tensor | None = None
    for turns, flip in transforms:
        turned = dihedral(inputs, turns, flip)
        if turns or flip:
            layout = (
                torch.channels_last
                if inputs.is_contiguous(memory_format=torch.channels_last)
                else torch.contiguous_format
            )
            turned = turned.contiguous(memory_format=layout)
        passes: list[torch.Tensor] = []
        for part in turned.split(max(1, per_pass)):
            if (passes or total is not None) and check_stop is not None:
                check_stop()
            passes.append(forward(model, part, engine))
        scores = torch.cat(passes)
        probabilities = dihedral_inverse(torch.softmax(scores.float(), dim=1), turns, flip)
        total = probabilities if total is None else total + probabilities
    assert total is not None  # transforms is not empty
    if len(transforms) > 1:
        total /= len(transforms)
    return total.cpu().numpy()


def forward(
    model: UNet, inputs: torch.Tensor, engine: EngineOptions = DEFAULT_ENGINE
) -> torch.Tensor:
    """``model(inputs)``; on the CPU with each convolution + ReLU fused when possible
    (``engine.fused_conv_relu``).

    A model with forward hooks (or a subclass of :class:`UNet`) is called as it is,
    so the hooks see every pass.
    """
    if (
        engine.fused_conv_relu
        and inputs.device.type == "cpu"
        and inputs.dtype == torch.float32
        and type(model) is UNet
        and not (model._forward_hooks or model._forward_pre_hooks)
        and FUSED_CONV_RELU is not None
    ):
        return fused_unet_forward(model, inputs, engine.channels_last)
    return model(inputs)


def dihedral(tensor: torch.Tensor, turns: int, flip: bool) -> torch.Tensor:
    turned = torch.rot90(tensor, turns, dims=(-2, -1)) if turns else tensor
    return torch.flip(turned, dims=(-1,)) if flip else turned


def dihedral_inverse(tensor: torch.Tensor, turns: int, flip: bool) -> torch.Tensor:
    unflipped = torch.flip(tensor, dims=(-1,)) if flip else tensor
    return torch.rot90(unflipped, -turns, dims=(-2, -1)) if turns else unflipped


def to_device(blocks: np.ndarray, device: torch.device, channels_last: bool) -> torch.Tensor:
    """A (N, C, Y, X) float32 batch as a tensor on ``device`` (channels-last on the CPU
    when ``channels_last``)."""
    inputs = torch.from_numpy(blocks).to(device)
    if device.type == "cpu" and channels_last:
        inputs = inputs.contiguous(memory_format=torch.channels_last)
    return inputs

"""A U-Net forward pass with each 3x3 convolution and its ReLU fused into one oneDNN call (CPU).

Used by :mod:`napari_unet.core.engine` when ``EngineOptions.fused_conv_relu`` is set; it
mirrors :meth:`napari_unet.core.model.UNet.forward` (a test keeps the two equal).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, cast

import torch

from .model import UNet, UpBlock

__all__ = ["FUSED_CONV_RELU", "fused_unet_forward"]


def _fused_conv_relu_op() -> Any:
    try:
        return torch.ops.mkldnn._convolution_pointwise.default
    except (AttributeError, RuntimeError):
        return None


FUSED_CONV_RELU = _fused_conv_relu_op() if torch.backends.mkldnn.is_available() else None


def _fused_block(block: torch.nn.Sequential, x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """A ``ConvBlock`` (or any ``Sequential``) with each Conv2d followed by ReLU fused.

    With ``channels_last`` every fused output is channels-last. oneDNN returns a
    convolution of a one-channel input (which is both layouts at once) in the default
    layout, and the rest of the network then followed it: the full-resolution layers ran
    at about a third of their channels-last speed (a 828 px tile of ``em-membranes``, 1
    thread: 0.36 s per forward pass against 0.23 s; docs/experiments/inference_speed.md).
    """
    fused = FUSED_CONV_RELU
    assert fused is not None, "the fused forward needs oneDNN's convolution_pointwise"
    layers = list(block)
    index = 0
    while index < len(layers):
        layer = layers[index]
        if (
            isinstance(layer, torch.nn.Conv2d)
            and index + 1 < len(layers)
            and isinstance(layers[index + 1], torch.nn.ReLU)
            and isinstance(layer.padding, tuple)
            and layer.padding_mode == "zeros"
            and layer.weight.dtype == torch.float32
        ):
            x = fused(
                x,
                layer.weight,
                layer.bias,
                list(layer.padding),
                list(layer.stride),
                list(layer.dilation),
                layer.groups,
                "relu",
                [],
                "",
            )
            if channels_last and not x.is_contiguous(memory_format=torch.channels_last):
                x = x.contiguous(memory_format=torch.channels_last)
            index += 2
            continue
        x = layer(x)
        index += 1
    return x


def fused_unet_forward(model: UNet, x: torch.Tensor, channels_last: bool = True) -> torch.Tensor:
    """:meth:`UNet.forward` with :func:`_fused_block` for its convolution blocks
    (channels-last activations with ``channels_last``)."""
    skips = []
    for block in cast("Iterable[torch.nn.Sequential]", model.down):  # ConvBlocks
        x = _fused_block(block, x, channels_last)
        skips.append(x)
        x = torch.nn.functional.max_pool2d(x, 2)
    x = _fused_block(model.bottleneck, x, channels_last)
    for up, skip in zip(cast("Iterable[UpBlock]", model.up), reversed(skips)):
        x = up.up(x)
        dy = (skip.shape[-2] - x.shape[-2]) // 2
        dx = (skip.shape[-1] - x.shape[-1]) // 2
        skip = skip[..., dy : dy + x.shape[-2], dx : dx + x.shape[-1]]
        x = _fused_block(up.conv, torch.cat([skip, x], dim=1), channels_last)
    return model.head(x)

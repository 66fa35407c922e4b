"""A U-Net forward pass with each 3x3 convolution and its ReLU fused into one oneDNN call (CPU).

Used by :mod:`napari_unet.core.engine` when ``EngineOptions.fused_conv_relu`` is set; it
mirrors :meth:`napari_unet.core.model.UNet.forward` (a test keeps the two equal). The first
convolution of each decoder block skips the concatenation of the skip connection with the
up-sampled features: it convolves the two parts with the two halves of its weights and adds
them inside oneDNN (the same sum; the concatenation was a tenth of ``predict``'s time).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, cast

import torch

from .model import UNet, UpBlock

__all__ = ["FUSED_CONV_RELU", "fused_unet_forward"]


def _pointwise_op(overload: str) -> Any:
    try:
        return getattr(torch.ops.mkldnn._convolution_pointwise, overload)
    except (AttributeError, RuntimeError):
        return None


_MKLDNN = torch.backends.mkldnn.is_available()
#: oneDNN's convolution with a fused element-wise step (the ReLU), or None.
FUSED_CONV_RELU = _pointwise_op("default") if _MKLDNN else None
#: oneDNN's convolution that adds another tensor before the element-wise step, or None.
FUSED_CONV_ADD_RELU = _pointwise_op("binary") if _MKLDNN else None


def _fusable(layers: Sequence[torch.nn.Module], index: int) -> bool:
    """Whether ``layers[index]`` is a Conv2d that the fused op can run with the next ReLU."""
    layer = layers[index]
    return (
        isinstance(layer, torch.nn.Conv2d)
        and index + 1 < len(layers)
        and isinstance(layers[index + 1], torch.nn.ReLU)
        and isinstance(layer.padding, tuple)
        and layer.padding_mode == "zeros"
        and layer.weight.dtype == torch.float32
    )


def _geometry(layer: torch.nn.Conv2d) -> list[Any]:
    return [list(layer.padding), list(layer.stride), list(layer.dilation), layer.groups]


def _in_layout(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    if channels_last and not x.is_contiguous(memory_format=torch.channels_last):
        return x.contiguous(memory_format=torch.channels_last)
    return x


def _fused_layers(
    layers: Sequence[torch.nn.Module], x: torch.Tensor, channels_last: bool
) -> torch.Tensor:
    """The layers of a ``ConvBlock`` (or any ``Sequential``), each Conv2d + ReLU fused.

    With ``channels_last`` every fused output is channels-last. oneDNN returns a
    convolution of a one-channel input (which is both layouts at once) in the default
    layout, and the rest of the network then followed it: the full-resolution layers ran
    at about a third of their channels-last speed (a 828 px tile of the 16-feature
    ``em-membranes``, 1 thread: 0.36 s per forward pass against 0.23 s;
    docs/experiments/inference_speed.md).
    """
    fused = FUSED_CONV_RELU
    assert fused is not None, "the fused forward needs oneDNN's convolution_pointwise"
    index = 0
    while index < len(layers):
        layer = layers[index]
        if _fusable(layers, index):
            conv = cast("torch.nn.Conv2d", layer)
            x = fused(x, conv.weight, conv.bias, *_geometry(conv), "relu", [], "")
            x = _in_layout(x, channels_last)
            index += 2
            continue
        x = layer(x)
        index += 1
    return x


def _fused_up_block(
    block: torch.nn.Sequential, skip: torch.Tensor, x: torch.Tensor, channels_last: bool
) -> torch.Tensor:
    """``block(torch.cat([skip, x], dim=1))``, fused, without building the concatenation.

    The first convolution is the sum of the skip's convolution with the first ``C_skip``
    input channels of its weights (bias included) and the up-sampled features'
    convolution with the rest, the ReLU applied after the sum, all in two oneDNN calls.
    """
    layers = list(block)
    first = layers[0]
    if (
        FUSED_CONV_ADD_RELU is None
        or not _fusable(layers, 0)
        or cast("torch.nn.Conv2d", first).groups != 1
    ):
        return _fused_layers(layers, torch.cat([skip, x], dim=1), channels_last)
    conv = cast("torch.nn.Conv2d", first)
    split = skip.shape[1]
    skip_weight = conv.weight[:, :split].contiguous()
    up_weight = conv.weight[:, split:].contiguous()
    geometry = _geometry(conv)
    assert FUSED_CONV_RELU is not None  # both ops come from the same oneDNN build
    layout = torch.channels_last if channels_last else torch.contiguous_format
    partial = FUSED_CONV_RELU(
        skip.contiguous(memory_format=layout), skip_weight, conv.bias, *geometry,
        "none", [], "",
    )  # fmt: skip
    x = FUSED_CONV_ADD_RELU(
        _in_layout(x, channels_last), partial, up_weight, None, *geometry,
        "add", None, "relu", [], "",
    )  # fmt: skip
    return _fused_layers(layers[2:], _in_layout(x, channels_last), channels_last)


def fused_unet_forward(model: UNet, x: torch.Tensor, channels_last: bool = True) -> torch.Tensor:
    """:meth:`UNet.forward` with :func:`_fused_layers` for its convolution blocks
    (channels-last activations with ``channels_last``)."""
    skips = []
    for block in cast("Iterable[torch.nn.Sequential]", model.down):  # ConvBlocks
        x = _fused_layers(list(block), x, channels_last)
        skips.append(x)
        x = torch.nn.functional.max_pool2d(x, 2)
    x = _fused_layers(list(model.bottleneck), x, channels_last)
    for up, skip in zip(cast("Iterable[UpBlock]", model.up), reversed(skips)):
        x = up.up(x)
        dy = (skip.shape[-2] - x.shape[-2]) // 2
        dx = (skip.shape[-1] - x.shape[-1]) // 2
        skip = skip[..., dy : dy + x.shape[-2], dx : dx + x.shape[-1]]
        x = _fused_up_block(up.conv, skip, x, channels_last)
    return model.head(x)

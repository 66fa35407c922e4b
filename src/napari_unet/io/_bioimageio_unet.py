"""Stand-alone U-Net architecture shipped inside bioimage.io packages.

This file is copied verbatim into every package that
:func:`napari_unet.io.bioimageio.export_bioimageio` writes, as the architecture of
the ``pytorch_state_dict`` weights. It imports only torch, so a consumer
(bioimageio.core, ilastik, ...) can rebuild the network without napari-unet.
Its parameters have the same names and shapes as :class:`napari_unet.core.model.UNet`
(its state dict loads unchanged) and its ``forward`` returns class
probabilities (softmax over the channel axis) instead of logits. It is also
what the TorchScript weights are scripted from. The tests check that both give
napari-unet's own outputs.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def _conv_block(in_ch: int, out_ch: int, padding: int, batch_norm: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    for channels_in in (in_ch, out_ch):
        layers.append(nn.Conv2d(channels_in, out_ch, 3, padding=padding, bias=not batch_norm))
        if batch_norm:
            layers.append(nn.BatchNorm2d(out_ch))
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class _Up(nn.Module):
    def __init__(
        self, in_ch: int, out_ch: int, padding: int, batch_norm: bool, upsampling: str
    ) -> None:
        super().__init__()
        if upsampling == "upconv":
            self.up: nn.Module = nn.ConvTranspose2d(in_ch, out_ch, 2, stride=2)
        else:
            self.up = nn.Sequential(
                nn.Upsample(scale_factor=2.0, mode="bilinear", align_corners=False),
                nn.Conv2d(in_ch, out_ch, 1),
            )
        self.conv = _conv_block(2 * out_ch, out_ch, padding, batch_norm)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = self.up(x)
        dy = (skip.shape[-2] - x.shape[-2]) // 2
        dx = (skip.shape[-1] - x.shape[-1]) // 2
        skip = skip[:, :, dy : dy + x.shape[-2], dx : dx + x.shape[-1]]
        return self.conv(torch.cat([skip, x], dim=1))


class UNetProbabilities(nn.Module):
    """U-Net (Ronneberger et al. 2015) returning softmax class probabilities.

    Parameters
    ----------
    in_channels, n_classes, depth, base_features, padding, batch_norm, upsampling
        As in ``napari_unet.config.ModelConfig``.
    """

    def __init__(
        self,
        in_channels: int = 1,
        n_classes: int = 2,
        depth: int = 4,
        base_features: int = 64,
        padding: str = "valid",
        batch_norm: bool = False,
        upsampling: str = "upconv",
    ) -> None:
        super().__init__()
        pad = 1 if padding == "same" else 0
        features = [base_features * 2**level for level in range(depth + 1)]
        self.down = nn.ModuleList()
        channels = in_channels
        for level_features in features[:-1]:
            self.down.append(_conv_block(channels, level_features, pad, batch_norm))
            channels = level_features
        self.bottleneck = _conv_block(channels, features[-1], pad, batch_norm)
        self.up = nn.ModuleList(
            _Up(features[level + 1], features[level], pad, batch_norm, upsampling)
            for level in reversed(range(depth))
        )
        self.head = nn.Conv2d(features[0], n_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips: list[torch.Tensor] = []
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = F.max_pool2d(x, 2)
        x = self.bottleneck(x)
        level = len(skips)
        for block in self.up:
            level -= 1
            x = block(x, skips[level])
        return torch.softmax(self.head(x), dim=1)

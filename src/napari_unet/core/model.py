"""The U-Net of Ronneberger et al. (2015) and its geometry.

A contracting path of ``depth`` levels (two 3x3 convolutions + ReLU, then a 2x2
max-pool), a bottleneck, and a symmetric expanding path (2x2 up-convolution,
concatenation with the cropped skip connection, two 3x3 convolutions), closed by
a 1x1 convolution to the class scores.
"""

from __future__ import annotations

import bisect
import functools
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from ..config import ModelConfig
from .metadata import ModelMetadata


class ConvBlock(nn.Sequential):
    """Two 3x3 convolutions, each followed by (batch norm and) ReLU."""

    def __init__(self, in_ch: int, out_ch: int, padding: int, batch_norm: bool) -> None:
        layers: list[nn.Module] = []
        for channels_in in (in_ch, out_ch):
            layers.append(nn.Conv2d(channels_in, out_ch, 3, padding=padding, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm2d(out_ch))
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class UpBlock(nn.Module):
    """Up-sample by 2, concatenate the (centre-cropped) skip, then a :class:`ConvBlock`."""

    def __init__(self, in_ch: int, out_ch: int, config: ModelConfig) -> None:
        super().__init__()
        if config.upsampling == "upconv":
            self.up: nn.Module = nn.ConvTranspose2d(in_ch, out_ch, 2, stride=2)
        else:
            self.up = nn.Sequential(
                nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                nn.Conv2d(in_ch, out_ch, 1),
            )
        padding = 1 if config.padding == "same" else 0
        self.conv = ConvBlock(2 * out_ch, out_ch, padding, config.batch_norm)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = self.up(x)
        dy = (skip.shape[-2] - x.shape[-2]) // 2
        dx = (skip.shape[-1] - x.shape[-1]) // 2
        skip = skip[..., dy : dy + x.shape[-2], dx : dx + x.shape[-1]]
        return self.conv(torch.cat([skip, x], dim=1))


class UNet(nn.Module):
    """U-Net for 2D images.

    Parameters
    ----------
    config : ModelConfig
        Architecture. Kept as ``model.config``.

    Notes
    -----
    ``forward`` maps a float tensor (N, C_in, Y, X) to class scores (logits)
    (N, n_classes, Y', X'), where ``Y' = output_size(Y)``. For ``"valid"``
    networks ``Y'`` is smaller than ``Y`` by ``2 * halo``; for ``"same"``
    networks ``Y' = Y`` and ``Y`` must be a multiple of ``2 ** depth``.
    ``model.metadata`` holds the checkpoint metadata (normalisation, class
    names, training history) and travels with the model; ``model.info`` is its
    typed reading (:class:`~napari_unet.core.metadata.ModelMetadata`).
    """

    def __init__(self, config: ModelConfig | None = None) -> None:
        super().__init__()
        self.config = config or ModelConfig()
        self.metadata: dict[str, Any] = {}
        cfg = self.config
        padding = 1 if cfg.padding == "same" else 0
        features = [cfg.base_features * 2**level for level in range(cfg.depth + 1)]
        self.down = nn.ModuleList()
        channels = cfg.in_channels
        for level_features in features[:-1]:
            self.down.append(ConvBlock(channels, level_features, padding, cfg.batch_norm))
            channels = level_features
        self.bottleneck = ConvBlock(channels, features[-1], padding, cfg.batch_norm)
        self.up = nn.ModuleList(
            UpBlock(features[level + 1], features[level], cfg)
            for level in reversed(range(cfg.depth))
        )
        self.head = nn.Conv2d(features[0], cfg.n_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = F.max_pool2d(x, 2)
        x = self.bottleneck(x)
        for block, skip in zip(self.up, reversed(skips)):
            x = block(x, skip)
        return self.head(x)

    # ---- metadata -------------------------------------------------------------
    @property
    def info(self) -> ModelMetadata:
        """``metadata``, typed: a frozen :class:`ModelMetadata`, read anew at each access.

        For reading (``model.info.class_names``); changes go to ``metadata``.
        """
        return ModelMetadata.of(self)

    # ---- geometry -------------------------------------------------------------
    @property
    def size_multiple(self) -> int:
        """Shift that leaves the network's output unchanged: ``2 ** depth``."""
        return 2**self.config.depth

    @property
    def halo(self) -> int:
        """Context per side, in input pixels, lost by a valid network.

        For a ``"same"`` network: the receptive-field radius of the equivalent
        valid network, rounded up to a multiple of ``2 ** depth``; tiles read
        this much context so that zero padding at tile borders barely reaches
        the kept centre.
        """
        valid_halo = _valid_halo(self.config.depth)
        if self.config.padding == "valid":
            return valid_halo
        multiple = self.size_multiple
        return -(-valid_halo // multiple) * multiple

    def output_size(self, input_size: int) -> int:
        """Output edge for an input edge; raises ``ValueError`` if the size is not valid."""
        self.check_input_size(input_size)
        if self.config.padding == "same":
            return input_size
        return input_size - 2 * self.halo

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """Output (Y, X) for an input (..., Y, X)."""
        return tuple(self.output_size(int(n)) for n in input_shape[-2:])

    def is_valid_input_size(self, size: int) -> bool:
        """True when every 2x2 max-pool sees an even size and every level keeps >= 1 pixel."""
        if self.config.padding == "same":
            return size > 0 and size % self.size_multiple == 0
        return _valid_output(size, self.config.depth) is not None

    def valid_input_sizes(self, minimum: int = 1, maximum: int = 2048) -> list[int]:
        """All valid input edges in ``[minimum, maximum]``.

        For a valid depth-4 network these are ``n = 188 + 16 k`` (the paper's 572 is one).
        """
        first = self.min_input_size
        step = self.size_multiple
        start = first + max(0, -(-(minimum - first) // step)) * step
        return list(range(start, maximum + 1, step))

    @property
    def min_input_size(self) -> int:
        """Smallest valid input edge."""
        if self.config.padding == "same":
            return self.size_multiple
        return _min_valid(self.config.depth)

    def nearest_valid_sizes(self, size: int) -> tuple[int | None, int]:
        """Largest valid size <= ``size`` (None if none) and smallest valid size >= ``size``."""
        sizes = self.valid_input_sizes(maximum=max(size, self.min_input_size) + self.size_multiple)
        index = bisect.bisect_right(sizes, size)
        below = sizes[index - 1] if index > 0 else None
        above = sizes[bisect.bisect_left(sizes, size)]
        return below, above

    def check_input_size(self, size: int) -> None:
        """Raise ``ValueError`` naming the nearest valid sizes when ``size`` is not valid."""
        if self.is_valid_input_size(size):
            return
        below, above = self.nearest_valid_sizes(size)
        nearest = f"{below} or {above}" if below is not None else f"{above}"
        rule = (
            f"a multiple of {self.size_multiple}"
            if self.config.padding == "same"
            else f"{self.min_input_size} + {self.size_multiple}*k "
            "so every 2x2 max-pool sees an even size"
        )
        raise ValueError(
            f"input size {size} is not valid for this U-Net (depth {self.config.depth}, "
            f"{self.config.padding} padding): it must be {rule}; nearest valid sizes: {nearest}"
        )

    def smallest_valid_input_covering(self, output_size: int) -> int:
        """Smallest valid input edge whose output edge is at least ``output_size``."""
        needed = output_size + (2 * self.halo if self.config.padding == "valid" else 0)
        return self.nearest_valid_sizes(max(needed, self.min_input_size))[1]

    def describe(self) -> str:
        """One line: architecture and parameter count."""
        cfg = self.config
        n_params = sum(p.numel() for p in self.parameters())
        return (
            f"U-Net depth {cfg.depth}, {cfg.base_features} base features, {cfg.padding} padding, "
            f"{cfg.upsampling}, batch norm {'on' if cfg.batch_norm else 'off'}, "
            f"{cfg.in_channels} input channel(s), {cfg.n_classes} classes, {n_params:,} parameters"
        )


def _valid_output(size: int, depth: int) -> int | None:
    """Output edge of a valid U-Net for an input edge, or None if the size is invalid."""
    for _ in range(depth):
        size -= 4
        if size < 2 or size % 2:
            return None
        size //= 2
    size -= 4
    if size < 1:
        return None
    for _ in range(depth):
        size = 2 * size - 4
        if size < 1:
            return None
    return size


@functools.cache
def _min_valid(depth: int) -> int:
    size = 1
    while _valid_output(size, depth) is None:
        size += 1
    return size


@functools.cache
def _valid_halo(depth: int) -> int:
    size = _min_valid(depth)
    output = _valid_output(size, depth)
    assert output is not None
    return (size - output) // 2

"""Offline check (issue 17): int8 static quantisation of every convolution of `em-membranes`.

Each ``Conv2d`` is wrapped in quantise / dequantise stubs, calibrated on three 572 crops of
ISBI slices 00-02 (PyTorch eager-mode post-training quantisation, x86 qconfig: per-channel
int8 weights, int8 activations), and compared with float32 on a crop of slice 03: the largest
and the mean difference of the class probabilities and the share of pixels whose class flips.
Then one 876 tile is timed (median of 5) against the same float32 module and against the
fused channels-last float32 forward pass Predict uses (``core.engine.forward``). Issue 17 accepts a
reduced-precision path only if it keeps the probabilities within 1e-3. Not a napari-unet
feature.

    python benchmarks/check_int8.py
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time
import warnings

import torch
import torch.ao.quantization as quantization

from napari_unet import load_model
from napari_unet.core.engine import DEFAULT_ENGINE, forward
from napari_unet.core.normalization import normalization_stats, normalize
from napari_unet.io.data import load_isbi

CROP = 572
TIMED_TILE = 876


class QuantisedConv(torch.nn.Module):
    """A convolution run in int8 between float32 neighbours."""

    def __init__(self, conv: torch.nn.Conv2d) -> None:
        super().__init__()
        self.quant = quantization.QuantStub()
        self.conv = conv
        self.dequant = quantization.DeQuantStub()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dequant(self.conv(self.quant(x)))


def wrap_convolutions(module: torch.nn.Module) -> None:
    for name, child in module.named_children():
        if isinstance(child, torch.nn.Conv2d):
            wrapped = QuantisedConv(child)
            wrapped.qconfig = quantization.get_default_qconfig("x86")
            setattr(module, name, wrapped)
        else:
            wrap_convolutions(child)


def crop(image) -> torch.Tensor:
    offset, scale = normalization_stats(image)
    return torch.from_numpy(normalize(image[None], offset, scale)[None, :, :CROP, :CROP].copy())


def median_seconds(model, inputs: torch.Tensor, repeats: int = 5) -> float:
    times = []
    with torch.no_grad():
        model(inputs)
        for _ in range(repeats):
            start = time.perf_counter()
            model(inputs)
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    warnings.filterwarnings("ignore")  # torch.ao.quantization's deprecation notices
    torch.set_num_threads(2)
    model = load_model("em-membranes").eval().float()
    images, _ = load_isbi(range(4))
    quantised = copy.deepcopy(model)
    wrap_convolutions(quantised)
    quantization.prepare(quantised, inplace=True)
    with torch.no_grad():
        for image in images[:3]:
            quantised(crop(image))
    quantization.convert(quantised, inplace=True)
    test = crop(images[3])
    with torch.no_grad():
        reference = torch.softmax(model(test), 1)
        result = torch.softmax(quantised(test), 1)
    difference = (reference - result).abs()
    tile = torch.rand(1, 1, TIMED_TILE, TIMED_TILE)
    float_s, int8_s = median_seconds(model, tile), median_seconds(quantised, tile)
    channels_last = tile.contiguous(memory_format=torch.channels_last)
    fused_s = median_seconds(lambda x: forward(model, x, DEFAULT_ENGINE), channels_last)
    report = {
        "max_abs_probability_difference": round(float(difference.max()), 4),
        "mean_abs_probability_difference": round(float(difference.mean()), 4),
        "class_flips": round(
            float(((reference[:, 0] > 0.5) != (result[:, 0] > 0.5)).float().mean()), 4
        ),
        f"float32_s_{TIMED_TILE}": round(float_s, 3),
        f"int8_s_{TIMED_TILE}": round(int8_s, 3),
        f"fused_float32_s_{TIMED_TILE}": round(fused_s, 3),
        "speed-up vs float32 module": round(float_s / int8_s, 2),
        "speed-up vs Predict's fused float32 path": round(fused_s / int8_s, 2),
    }
    print(json.dumps(report))


if __name__ == "__main__":
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args()  # --help only
    main()

"""Shared helpers of the inference benchmarks, and the inference implementations they compare.

* Helpers: progress :func:`log`, :func:`load_average`, :func:`get_model` (the bundled
  ``em-membranes`` or a random U-Net of the same architecture), :func:`test_image`,
  :func:`timed` and :func:`machine_lines` (machine and versions for a report).
* The compared implementations: :func:`napari_predict` (``napari_unet.predict`` with a given
  CPU layout and tiles per pass), :func:`naive_predict` (one forward pass per tile) and
  :func:`monai_predict` (MONAI's ``sliding_window_inference`` fitted to a valid U-Net).

``bench_inference.py`` re-exports the helpers; ``bench_training.py``, ``bench_bundled_speed.py``
and ``bench_inference_speed.py`` import them from there by name.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

# isort: off
import napari_unet  # noqa: F401  (first: asks PyTorch for huge pages before torch is imported)
import numpy as np
import torch

# isort: on
from torch.nn import functional as F

from napari_unet import ModelConfig, UNet, predict
from napari_unet.config import NormConfig
from napari_unet.core.checkpoint import bundled_models, load_model, new_model
from napari_unet.core.engine import DEFAULT_ENGINE, EngineOptions
from napari_unet.core.inference import (
    normalization_stats,
    normalize,
    tile_layout,
)
from napari_unet.core.tiling import read_mirrored

BUNDLED = "em-membranes"


# ---- helpers -------------------------------------------------------------------
def log(message: str) -> None:
    """Progress message on stderr (stdout is the markdown report)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def load_average() -> str:
    """The 1-, 5- and 15-minute load averages."""
    return " / ".join(f"{value:.2f}" for value in os.getloadavg())


def get_model() -> tuple[UNet, str]:
    """The bundled EM model if present, else a random one of the same architecture.

    Its checkpoint asks Predict for test-time augmentation (8 passes); these benchmarks time
    one pass, against MONAI's one pass, so the request is dropped here. The figures in
    BENCHMARKS.md up to 2026-12-01 were measured on the 16-feature model bundled then.
    """
    if BUNDLED in bundled_models():
        model = load_model(BUNDLED, device="cpu").eval()
        model.metadata.pop("test_time_augmentation", None)
        return model, f"bundled `{BUNDLED}` ({model.config.base_features} features), one pass"
    model = new_model(ModelConfig(depth=4, base_features=16)).eval()
    return model, "random weights, same architecture as `em-membranes` (not yet bundled)"


def test_image(size: int, seed: int = 0) -> np.ndarray:
    """A (size, size) uint8 image: smooth random blobs plus noise (content is irrelevant)."""
    rng = np.random.default_rng(seed)
    coarse = rng.random((size // 32 + 2, size // 32 + 2))
    smooth = np.kron(coarse, np.ones((32, 32)))[:size, :size]
    noise = rng.normal(0, 0.1, (size, size))
    return np.clip((smooth + noise) * 200, 0, 255).astype(np.uint8)


def timed(function: Callable[[], Any]) -> tuple[float, Any]:
    """Wall time of one call and its result."""
    start = time.perf_counter()
    result = function()
    return time.perf_counter() - start, result


def machine_lines(threads: int) -> list[str]:
    """Machine and version lines for the report."""
    cpu = platform.processor() or "unknown CPU"
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in lscpu.splitlines():
            if line.startswith("Model name:"):
                cpu = line.split(":", 1)[1].strip()
        flags = next((line for line in lscpu.splitlines() if line.startswith("Flags:")), "")
        simd = [f for f in ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16") if f in flags]
    except (OSError, subprocess.CalledProcessError, StopIteration):
        simd = []
    try:
        import monai

        monai_version = monai.__version__
    except ImportError:
        monai_version = "not installed"
    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return [
        f"- CPU: {cpu}, {os.cpu_count()} logical cores, {memory_gib:.0f} GiB RAM; "
        f"SIMD flags: {', '.join(simd) or 'n/a'}; torch CPU capability "
        f"{torch.backends.cpu.get_cpu_capability()}; "
        f"oneDNN bf16: {torch.ops.mkldnn._is_mkldnn_bf16_supported()}",
        f"- GPU: {'CUDA available' if torch.cuda.is_available() else 'none (CPU only)'}",
        f"- Python {platform.python_version()}, numpy {np.__version__}, torch {torch.__version__}, "
        f"MONAI {monai_version}; torch threads: {threads}",
    ]


# ---- the compared implementations -------------------------------------------------
def napari_predict(
    image: np.ndarray,
    model: UNet,
    tile: int,
    batch: int,
    channels_last: bool = True,
    per_pass: int = 1,
) -> np.ndarray:
    """napari_unet.predict with the CPU layout and tiles per pass asked for (the other
    :class:`~napari_unet.core.inference.EngineOptions` at their defaults).

    ``channels_last=False, per_pass=batch`` is the code before the changes.
    """
    engine = EngineOptions(channels_last=channels_last, cpu_tiles_per_pass=per_pass)
    return predict(image, model, tile_size=tile, batch_size=batch, device="cpu", engine=engine)


def naive_predict(image: np.ndarray, model: UNet, tile: int) -> np.ndarray:
    """One forward pass per tile, batch 1, NCHW; same tiles and normalisation as napari-unet."""
    offset, scale = normalization_stats(
        image, NormConfig.from_dict(model.metadata.get("normalization"))
    )
    tile_shape, tiles = tile_layout(model, image.shape[-2:], tile)
    out = np.empty((model.config.n_classes, *image.shape[-2:]), np.float32)
    with torch.inference_mode():
        for item in tiles:
            block = read_mirrored(image, item.y.read_start, item.x.read_start, tile_shape)
            inputs = torch.from_numpy(normalize(block[None], offset, scale))[None]
            probabilities = torch.softmax(model(inputs), dim=1)[0].numpy()
            out[(slice(None), *item.keep)] = probabilities[(slice(None), *item.crop())]
    return out


def monai_predict(
    image: np.ndarray,
    model: UNet,
    tile: int,
    batch: int,
    channels_last: bool = False,
    engine: EngineOptions = DEFAULT_ENGINE,
) -> np.ndarray:
    """MONAI ``sliding_window_inference`` fitted to a valid U-Net.

    MONAI assumes the predictor's output has the window's size. A valid U-Net
    returns only the centre (``tile - 2 * halo``). So:

    * the image is normalised like napari-unet's and mirror-padded by hand
      (``numpy.pad(mode="reflect")``, the same mirroring as napari-unet) by the
      halo before and enough after that windows of ``tile`` at a stride of
      napari-unet's stride (384 for 572: a multiple of ``2 ** depth``, so every
      window sees the same max-pool grid) cover it exactly;
    * the predictor returns ``softmax(model(x))`` zero-padded by the halo back to
      the window size;
    * ``roi_weight_map`` is 1 on the valid centre and 0 on the padded rim, so the
      rim never enters the blend; where the valid centres of neighbouring windows
      overlap (``388 - 384 = 4`` pixels) MONAI averages two identical
      predictions;
    * the centre ``size`` x ``size`` of MONAI's output is the prediction.

    This gives MONAI the same 121 windows of 572 px as napari-unet for 4096 x 4096.
    The stride is that of napari-unet's tile layout under ``engine`` (with
    ``shrink_tiles_to_image=False``: the stride of ``tile`` itself).
    """
    from monai.inferers import sliding_window_inference

    halo = model.halo
    offset, scale = normalization_stats(
        image, NormConfig.from_dict(model.metadata.get("normalization"))
    )
    _, tiles = tile_layout(model, image.shape, tile, engine)
    stride = tiles[1].x.keep_start if len(tiles) > 1 else image.shape[-1]
    windows = [-(-(n + 2 * halo - tile) // stride) for n in image.shape]
    padded_shape = [tile + stride * count for count in windows]
    pads = [(halo, padded - n - halo) for n, padded in zip(image.shape, padded_shape)]
    padded = np.pad(normalize(image[None], offset, scale)[0], pads, mode="reflect")
    inputs = torch.from_numpy(padded)[None, None]
    weight = torch.zeros(1, 1, tile, tile)
    weight[..., halo : tile - halo, halo : tile - halo] = 1.0
    overlap = (tile - stride - 0.5) / tile  # MONAI's interval: int(tile * (1 - overlap)) = stride

    def predictor(window: torch.Tensor) -> torch.Tensor:
        if channels_last:
            window = window.contiguous(memory_format=torch.channels_last)
        return F.pad(torch.softmax(model(window), dim=1), (halo,) * 4)

    with torch.inference_mode():
        result = sliding_window_inference(
            inputs, tile, batch, predictor, overlap=overlap, roi_weight_map=weight
        )
    size_y, size_x = image.shape
    return result[0, :, halo : halo + size_y, halo : halo + size_x].numpy()

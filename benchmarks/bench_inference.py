"""Benchmark overlap-tile inference: throughput, distance to the CPU's limit, memory at scale.

Sections (``--sections``, default all three):

``throughput``
    Megapixels/s of :func:`napari_unet.predict` on a ``--size`` square image
    (default 4096) against, in the same run and on the same input:

    * napari-unet's plain NCHW path (``EngineOptions(channels_last=False,
      cpu_tiles_per_pass=batch)``, i.e. the code before the channels-last change);
    * MONAI's ``sliding_window_inference`` with the same model, tile, batch and
      tile grid (see :func:`monai_predict` for how a *valid* network is fitted
      into MONAI's same-size-output convention); once with the plain model and
      once with a channels-last predictor;
    * a naive loop: one forward pass per tile, no batching, NCHW.

    Outputs are compared with napari-unet's (max |difference| of probabilities,
    share of mask pixels that differ).
``flops``
    FLOPs of one tile's forward pass (``torch.utils.flop_counter``), FLOPs per
    output pixel with and without the halo overhead of valid convolutions, the
    achieved GFLOP/s, and the GFLOP/s this CPU gives for a large convolution
    (3x3, 64 -> 64 channels, 1x64x512x512) and a large matrix product, plus one
    row per optimisation tried (memory layout, tile and batch size, threads,
    bfloat16 autocast, ``torch.compile``).
``memmap``
    A ``--large`` square uint8 image (default 16384) stored as ``.npy`` and
    opened as a memory map; probabilities (float32) written by ``predict`` into
    ``np.lib.format.open_memmap`` and the class mask (uint8) into another one,
    block by block. Runs in a subprocess that reports its peak RSS
    (``resource.getrusage(...).ru_maxrss``) and its time per pixel.

The model is the bundled ``em-membranes`` when it is installed, else a randomly
initialised U-Net of the same architecture (depth 4, 16 base features, valid
padding: the same FLOPs, so the same speed). Medians of ``--repeats`` runs;
methods are interleaved within each repeat so that load changes hit them alike.

Usage::

    python benchmarks/bench_inference.py [--quick] [--repeats N] [--threads T]
        [--sections throughput flops memmap] [--size 4096] [--large 16384]
        [--json benchmarks/results/inference.json]

Prints a markdown report on stdout (progress on stderr); ``--json PATH`` also writes
every section's numbers as JSON.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# isort: off
import napari_unet  # noqa: F401  (first: asks PyTorch for huge pages before torch is imported)
import numpy as np
import torch

# isort: on
from raw_results import add_json_option, utc_now, write_json
from torch.nn import functional as F
from torch.utils.flop_counter import FlopCounterMode

from napari_unet import ModelConfig, UNet, predict
from napari_unet.config import NormConfig
from napari_unet.core import inference
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


# ---- section 1: throughput ----------------------------------------------------------
def throughput_methods(
    image: np.ndarray, model: UNet, tile: int, batch: int, extra_tiles: list[int]
) -> dict[str, Callable[[], np.ndarray]]:
    """The compared methods by report name; napari-unet's ``predict`` first (the reference)."""
    methods: dict[str, Callable[[], np.ndarray]] = {
        f"napari-unet `predict` (tile {tile}, batch {batch}: channels-last, 1 tile per pass)": (
            lambda: napari_predict(image, model, tile, batch)
        ),
        f"napari-unet before the changes (NCHW, {batch} tiles per pass)": lambda: napari_predict(
            image, model, tile, batch, channels_last=False, per_pass=batch
        ),
        f"MONAI `sliding_window_inference`, plain model (tile {tile}, batch {batch})": lambda: (
            monai_predict(image, model, tile, batch)
        ),
        f"napari-unet channels-last, {batch} tiles per pass": lambda: napari_predict(
            image, model, tile, batch, per_pass=batch
        ),
        f"MONAI, plain model, sw_batch_size 1 (tile {tile})": lambda: monai_predict(
            image, model, tile, 1
        ),
        f"MONAI, channels-last predictor (tile {tile}, batch {batch})": (
            lambda: monai_predict(image, model, tile, batch, channels_last=True)
        ),
        f"naive loop: one forward per tile, batch 1, NCHW (tile {tile})": lambda: naive_predict(
            image, model, tile
        ),
    }
    for extra in extra_tiles:
        methods[f"napari-unet `predict` (tile {extra}, batch 1, channels-last)"] = (
            lambda extra=extra: napari_predict(image, model, extra, 1)
        )
    return methods


def run_throughput_rounds(
    methods: dict[str, Callable[[], np.ndarray]], repeats: int, secondary_repeats: int
) -> tuple[dict[str, list[float]], dict[str, np.ndarray]]:
    """Every method once per round, interleaved: each one's runs (s) and first output.

    napari-unet and MONAI (plain), the first and third methods, run ``repeats`` times; the
    others ``secondary_repeats`` times.
    """
    times: dict[str, list[float]] = {name: [] for name in methods}
    outputs: dict[str, np.ndarray] = {}
    key = list(methods)[::2][:2]  # napari-unet and MONAI (plain): all repeats
    for repeat in range(max(repeats, secondary_repeats)):
        for name, method in methods.items():
            if repeat >= (repeats if name in key else secondary_repeats):
                continue
            seconds, result = timed(method)
            times[name].append(seconds)
            log(f"throughput round {repeat + 1}: {seconds:7.2f} s  {name}")
            if repeat == 0:
                outputs[name] = result
    return times, outputs


def throughput_table(
    times: dict[str, list[float]],
    outputs: dict[str, np.ndarray],
    reference_name: str,
    size: int,
) -> tuple[list[str], dict[str, dict[str, Any]]]:
    """Table rows and numbers by method: speed, speed vs MONAI, difference from the reference.

    ``reference_name`` is napari-unet's ``predict``, whose output the others are compared with.
    """
    reference = outputs[reference_name]
    reference_mask = reference.argmax(0)
    medians = {name: statistics.median(values) for name, values in times.items()}
    monai_median = medians[next(name for name in times if "MONAI" in name)]
    megapixels = size * size / 1e6
    rows: list[str] = []
    numbers: dict[str, dict[str, Any]] = {}
    for name, median in medians.items():
        difference = float(np.nanmax(np.abs(outputs[name] - reference)))
        mask_differs = float(np.mean(outputs[name].argmax(0) != reference_mask))
        runs = ", ".join(f"{value:.1f}" for value in times[name])
        rows.append(
            f"| {name} | {median:.2f} | {runs} | {megapixels / median:.3f} | "
            f"{monai_median / median:.2f}x | {difference:.1e} | {mask_differs:.1e} |"
        )
        numbers[name] = {
            "median_s": median,
            "runs_s": times[name],
            "mpx_per_s": megapixels / median,
            "vs_monai": monai_median / median,
            "max_abs_diff": difference,
            "mask_pixels_differing": mask_differs,
        }
    return rows, numbers


def bench_throughput(
    model: UNet,
    size: int,
    tile: int,
    batch: int,
    repeats: int,
    secondary_repeats: int,
    extra_tiles: list[int],
) -> tuple[list[str], dict[str, Any]]:
    """Interleaved timings of all methods on one image; returns report lines and numbers.

    The numbers hold ``napari`` (the median seconds of ``predict``) and ``pixels`` (the
    image's), which the other sections compare with, and every method's runs.
    """
    image = test_image(size)
    methods = throughput_methods(image, model, tile, batch, extra_tiles)
    warm = test_image(min(size, 2 * tile), seed=1)
    napari_predict(warm, model, tile, batch)  # warm-up: oneDNN primitive caches, MONAI import
    monai_predict(warm, model, tile, batch)
    load_before = load_average()
    times, outputs = run_throughput_rounds(methods, repeats, secondary_repeats)
    load_after = load_average()
    reference_name = next(iter(methods))
    rows, method_numbers = throughput_table(times, outputs, reference_name, size)
    lines = [
        f"### Throughput, {size} x {size} uint8 image",
        "",
        f"Load average (1/5/15 min) before: {load_before}; after: {load_after}. "
        f"Medians of {repeats} runs (napari-unet, MONAI plain) and {secondary_repeats} runs "
        "(the other rows), interleaved in rounds.",
        "",
        "| method | median s | runs (s) | Mpx/s | vs MONAI | max abs diff vs napari-unet "
        "| mask pixels differing |",
        "|---|---:|---|---:|---:|---:|---:|",
        *rows,
        "",
    ]
    napari_median = method_numbers[reference_name]["median_s"]
    numbers: dict[str, Any] = {"napari": napari_median, "pixels": size * size}
    numbers |= {"tile": tile, "batch": batch, "load_before": load_before}
    numbers |= {"methods": method_numbers, "load_after": load_after}
    return lines, numbers


# ---- section 2: FLOPs and the machine's limit -----------------------------------------
def count_flops(model: UNet, inputs: torch.Tensor) -> int:
    """FLOPs (2 per multiply-add) of one forward pass."""
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        model(inputs)
    return counter.get_total_flops()


def median_time(function: Callable[[], Any], repeats: int, warmup: int = 1) -> float:
    """Median wall time of ``repeats`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        function()
    return statistics.median(timed(function)[0] for _ in range(repeats))


def forward_time(
    model: UNet,
    tile: int,
    batch: int,
    repeats: int,
    channels_last: bool = True,
    autocast: bool = False,
    warmup: int = 1,
) -> float:
    """Median seconds of one forward pass + softmax on a (batch, 1, tile, tile) input."""
    inputs = torch.randn(batch, model.config.in_channels, tile, tile)
    if channels_last:
        inputs = inputs.contiguous(memory_format=torch.channels_last)

    def run() -> None:
        with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16, enabled=autocast):
            torch.softmax(model(inputs).float(), dim=1)

    return median_time(run, repeats, warmup)


def reference_gflops(repeats: int, quick: bool) -> dict[str, float]:
    """GFLOP/s of a large 3x3 convolution (both layouts) and of a large matrix product."""
    edge = 128 if quick else 512
    conv = torch.nn.Conv2d(64, 64, 3, padding=1).eval()
    conv_cl = torch.nn.Conv2d(64, 64, 3, padding=1).eval().to(memory_format=torch.channels_last)
    results = {}
    with torch.inference_mode():
        for name, size in (("", edge), (" small", 128)):
            data = torch.randn(1, 64, size, size)
            data_cl = data.contiguous(memory_format=torch.channels_last)
            flops = 2 * 64 * 64 * 9 * size * size
            results[f"conv NCHW{name}"] = flops / median_time(lambda d=data: conv(d), repeats) / 1e9
            seconds = median_time(lambda d=data_cl: conv_cl(d), repeats)
            results[f"conv NHWC{name}"] = flops / seconds / 1e9
        n = 1024 if quick else 4096
        a, b = torch.randn(n, n), torch.randn(n, n)
        results["matmul"] = 2 * n**3 / median_time(lambda: a @ b, repeats) / 1e9
    return results


@dataclass
class TileFlops:
    """FLOP accounting of one tile's forward pass."""

    tile_flops: int  # FLOPs of one tile's forward pass (2 per multiply-add)
    out_edge: int  # edge of the tile's output
    stride: int  # edge of the output the tile keeps (the tile layout's stride)
    per_kept: float  # FLOPs per kept output pixel (halo overhead included)
    intrinsic: float  # FLOPs per output pixel of the same network with 'same' padding


def tile_flop_accounting(model: UNet, tile: int) -> TileFlops:
    """FLOPs of one ``tile`` forward pass, per kept output pixel and without the halo."""
    tile_flops = count_flops(model, torch.zeros(1, 1, tile, tile))
    out_edge = model.output_size(tile)
    _, tiles = tile_layout(model, (tile * 4, tile * 4), tile)
    stride = tiles[1].x.keep_start
    same = UNet(model.config.replace(padding="same")).eval()
    intrinsic = count_flops(same, torch.zeros(1, 1, 512, 512)) / 512**2
    return TileFlops(tile_flops, out_edge, stride, tile_flops / stride**2, intrinsic)


def flops_table_lines(
    model: UNet,
    tile: int,
    quick: bool,
    load_before: str,
    accounting: TileFlops,
    reference: dict[str, float],
) -> list[str]:
    """The section's title and its table of FLOPs and the reference GFLOP/s."""
    stride, per_kept = accounting.stride, accounting.per_kept
    return [
        "### FLOPs and distance to the machine's limit",
        "",
        f"Load average (1/5/15 min) at the start of this section: {load_before}.",
        "",
        "| quantity | value |",
        "|---|---:|",
        f"| FLOPs of one {tile} x {tile} tile forward (2 per multiply-add) | "
        f"{accounting.tile_flops / 1e9:.2f} G |",
        f"| output {accounting.out_edge} x {accounting.out_edge}, kept {stride} x {stride} "
        f"(stride, a multiple of {model.size_multiple}) | "
        f"{stride**2 / tile**2:.1%} of the input tile |",
        f"| FLOPs per kept output pixel, tile {tile} (halo overhead included) | "
        f"{per_kept / 1e3:.1f} k |",
        f"| FLOPs per output pixel without halo overhead (same network, 'same' padding) | "
        f"{accounting.intrinsic / 1e3:.1f} k |",
        f"| halo overhead at tile {tile} | {per_kept / accounting.intrinsic:.2f}x |",
        f"| reference: 3x3 conv 64->64 on 1x64x{128 if quick else 512}^2, NCHW | "
        f"{reference['conv NCHW']:.1f} GFLOP/s |",
        f"| reference: same conv, channels-last | {reference['conv NHWC']:.1f} GFLOP/s |",
        f"| for comparison: the same conv on 1x64x128^2 (4 MB, cache-resident), NCHW / NHWC | "
        f"{reference['conv NCHW small']:.1f} / {reference['conv NHWC small']:.1f} GFLOP/s |",
        f"| reference: fp32 matmul {1024 if quick else 4096}^3 | "
        f"{reference['matmul']:.1f} GFLOP/s |",
    ]


def whole_image_flops(
    throughput: dict[str, Any], accounting: TileFlops, best_reference: float
) -> tuple[list[str], dict[str, Any]]:
    """Table rows and numbers: FLOPs of the throughput section's image, GFLOP/s achieved."""
    n_tiles_image = math.ceil(math.sqrt(throughput["pixels"]) / accounting.stride) ** 2
    image_flops = accounting.tile_flops * n_tiles_image
    achieved = image_flops / throughput["napari"] / 1e9
    lines = [
        f"| FLOPs for the whole {int(np.sqrt(throughput['pixels']))}^2 image "
        f"({n_tiles_image} tiles) | {image_flops / 1e12:.2f} T |",
        f"| achieved by `predict` (end to end) | {achieved:.1f} GFLOP/s = "
        f"{achieved / best_reference:.0%} of the best reference conv |",
    ]
    return lines, {"image_flops": image_flops, "achieved_gflops": achieved}


def attempts_header_lines(repeats: int) -> list[str]:
    """The paragraph and header above the table of optimisation attempts."""
    return [
        "",
        f"Optimisation attempts: one forward pass + softmax, median of {repeats} runs "
        "(bf16 and compile: fewer, stated). GFLOP/s counts all FLOPs of the pass (halo "
        "included); kept Mpx/s counts only the output pixels a tile contributes.",
        "",
        "| attempt | tile | batch | threads | s / pass | GFLOP/s | % of ref conv | kept Mpx/s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]


def attempt_row(
    model: UNet,
    attempts: list[dict[str, Any]],
    best_reference: float,
    name: str,
    tile_edge: int,
    batch_size: int,
    seconds: float,
    n_threads: int,
) -> str:
    """One attempt's table row; its numbers are appended to ``attempts``."""
    flops = count_flops(model, torch.zeros(1, 1, tile_edge, tile_edge)) * batch_size
    kept_stride = tile_layout(model, (tile_edge * 4, tile_edge * 4), tile_edge)[1][1]
    kept = kept_stride.x.keep_start**2 * batch_size
    gflops = flops / seconds / 1e9
    attempt = {"attempt": name, "tile": tile_edge, "batch": batch_size, "threads": n_threads}
    attempts.append(attempt | {"seconds": seconds, "gflops": gflops})
    return (
        f"| {name} | {tile_edge} | {batch_size} | {n_threads} | {seconds:.3f} | {gflops:.1f} | "
        f"{gflops / best_reference:.0%} | {kept / seconds / 1e6:.3f} |"
    )


def layout_attempt_rows(
    model: UNet,
    tile: int,
    batch: int,
    repeats: int,
    threads: int,
    quick: bool,
    row: Callable[..., str],
) -> list[str]:
    """Rows for the memory layouts, the tiles per pass and two larger tiles."""
    attempts: list[tuple[str, int, int, dict[str, Any]]] = [
        (f"NCHW, {batch} tiles per pass (before)", tile, batch, {"channels_last": False}),
        ("NCHW, 1 tile per pass", tile, 1, {"channels_last": False}),
        (f"channels-last input, {batch} tiles per pass", tile, batch, {}),
        ("channels-last input, 1 tile per pass (adopted)", tile, 1, {}),
    ]
    for target in (tile + 96, tile + 192) if quick else (764, 1084):
        edge = model.nearest_valid_sizes(target)[1]
        attempts.append((f"channels-last, larger tile {edge}", edge, 1, {}))
    lines = []
    for name, edge, batch_size, options in attempts:
        seconds = forward_time(model, edge, batch_size, repeats, **options)
        lines.append(row(name, edge, batch_size, seconds, threads))
        log(f"attempt {name}: {seconds:.3f} s")
    return lines


def channels_last_weights_row(
    model: UNet, tile: int, repeats: int, threads: int, row: Callable[..., str]
) -> str:
    """Row for weights in channels-last too (model converted in place, then back)."""
    model.to(memory_format=torch.channels_last)
    try:
        seconds = forward_time(model, tile, 1, repeats)
    finally:
        model.to(memory_format=torch.contiguous_format)
    return row("channels-last input and weights, 1 tile per pass", tile, 1, seconds, threads)


def other_thread_count_rows(
    model: UNet, tile: int, repeats: int, threads: int, row: Callable[..., str]
) -> list[str]:
    """Row for the other thread count (1, or 2 when ``threads`` is 1); none if there is none."""
    other = 1 if threads != 1 else min(2, os.cpu_count() or 1)
    if other == threads:
        return []
    torch.set_num_threads(other)
    try:
        seconds = forward_time(model, tile, 1, repeats)
    finally:
        torch.set_num_threads(threads)
    return [row("channels-last, 1 tile per pass, other thread count", tile, 1, seconds, other)]


def bf16_row(model: UNet, tile: int, quick: bool, threads: int, row: Callable[..., str]) -> str:
    """Row for bfloat16 autocast: very slow without native bf16, so small and once."""
    bf16_tile = next(s for s in model.valid_input_sizes() if inference._stride(model, s) > 0)
    bf16_tile = bf16_tile if quick else tile
    seconds = forward_time(model, bf16_tile, 1, 1, autocast=True, warmup=1)
    line = row("bf16 autocast, channels-last (1 run)", bf16_tile, 1, seconds, threads)
    log(f"attempt bf16: {seconds:.3f} s")
    return line


def bench_flops(
    model: UNet,
    tile: int,
    batch: int,
    repeats: int,
    threads: int,
    quick: bool,
    throughput: dict[str, Any] | None,
    try_compile: bool,
) -> tuple[list[str], dict[str, Any]]:
    """FLOP accounting, the CPU's reference GFLOP/s and the optimisation attempts.

    Returns the report's lines and the numbers (each attempt's seconds per pass and GFLOP/s).
    """
    load_before = load_average()
    accounting = tile_flop_accounting(model, tile)
    reference = reference_gflops(repeats, quick)
    best_reference = max(reference["conv NCHW"], reference["conv NHWC"])
    numbers: dict[str, Any] = {
        "load_before": load_before,
        "tile_flops": accounting.tile_flops,
        "flops_per_kept_pixel": accounting.per_kept,
        "flops_per_pixel_without_halo": accounting.intrinsic,
        "reference_gflops": reference,
        "attempts": [],
    }
    lines = flops_table_lines(model, tile, quick, load_before, accounting, reference)
    if throughput is not None:
        image_lines, image_numbers = whole_image_flops(throughput, accounting, best_reference)
        numbers |= image_numbers
        lines += image_lines
    lines += attempts_header_lines(repeats)
    row = functools.partial(attempt_row, model, numbers["attempts"], best_reference)
    lines += layout_attempt_rows(model, tile, batch, repeats, threads, quick, row)
    lines.append(channels_last_weights_row(model, tile, repeats, threads, row))
    lines += other_thread_count_rows(model, tile, repeats, threads, row)
    lines.append(bf16_row(model, tile, quick, threads, row))
    if try_compile:
        lines.append(compile_row(model, tile, 1, repeats, row, threads))
    lines += ["", f"Load average at the end of this section: {load_average()}.", ""]
    return lines, numbers


def compile_row(
    model: UNet, tile: int, batch: int, repeats: int, row: Callable[..., str], threads: int
) -> str:
    """``torch.compile`` (inductor) of the model on a channels-last input, with eager fallback."""
    inputs = torch.randn(batch, 1, tile, tile).contiguous(memory_format=torch.channels_last)
    start = time.perf_counter()
    try:
        compiled = torch.compile(model, dynamic=False)
        with torch.inference_mode():
            compiled(inputs)
    except Exception as error:  # any compiler failure means "stay eager"
        return f"| torch.compile failed ({type(error).__name__}); eager fallback | {tile} | | | |"
    compile_seconds = time.perf_counter() - start
    log(f"torch.compile: {compile_seconds:.1f} s to compile")

    def run() -> None:
        with torch.inference_mode():
            torch.softmax(compiled(inputs), dim=1)

    seconds = median_time(run, repeats)
    torch._dynamo.reset()
    name = f"torch.compile (inductor), channels-last; compiling took {compile_seconds:.0f} s"
    return row(name, tile, batch, seconds, threads)


# ---- section 3: memory-mapped large image ---------------------------------------------
def write_large_image(path: Path, size: int) -> None:
    """A (size, size) uint8 .npy file written block by block (never whole in memory)."""
    image = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(size, size))
    block = 1024
    for y in range(0, size, block):
        for x in range(0, size, block):
            seed = (y // block) * (size // block + 1) + x // block
            tile = test_image(block, seed=seed)
            image[y : y + block, x : x + block] = tile[: size - y, : size - x]
        inference._release_rows(image[None], y, min(y + block, size))
    image.flush()
    del image


def peak_rss_mb() -> tuple[float, float]:
    """(``ru_maxrss``, ``VmHWM``) of this process in MB.

    ``ru_maxrss`` survives ``execve``: a child started by a large parent (Python's
    ``subprocess`` uses ``vfork``) starts with the parent's peak. ``VmHWM`` (Linux,
    ``/proc/self/status``) is the peak of this process's own address space.
    """
    import resource

    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    try:
        status = Path("/proc/self/status").read_text()
        hwm = next(line for line in status.splitlines() if line.startswith("VmHWM"))
        return maxrss, int(hwm.split()[1]) / 1024
    except (OSError, StopIteration, ValueError):
        return maxrss, float("nan")


def memmap_child(args: argparse.Namespace) -> None:
    """Run in a subprocess: predict a memory-mapped image into memory-mapped outputs."""
    torch.set_num_threads(args.threads)
    model, _ = get_model()
    folder = Path(args.workdir)
    image = np.load(folder / "image.npy", mmap_mode="r")
    shape = image.shape
    probabilities = np.lib.format.open_memmap(
        folder / "probabilities.npy", mode="w+", dtype=np.float32, shape=(2, *shape)
    )
    mask = np.lib.format.open_memmap(folder / "mask.npy", mode="w+", dtype=np.uint8, shape=shape)
    rss_start = peak_rss_mb()
    start = time.perf_counter()
    predict(
        image, model, tile_size=args.tile, batch_size=args.batch, device="cpu", out=probabilities
    )
    predicted = time.perf_counter()
    rss_predict = peak_rss_mb()
    block = 1024
    for y in range(0, shape[0], block):
        stop = min(y + block, shape[0])
        mask[y:stop] = probabilities[:, y:stop].argmax(0).astype(np.uint8) + 1
        inference._release_rows(probabilities, y, stop)
        inference._release_rows(mask[None], y, stop)
    probabilities.flush()
    mask.flush()
    finished = time.perf_counter()
    sample = np.asarray(probabilities[:, :: shape[0] // 64, :: shape[1] // 64])
    report = {
        "seconds_predict": predicted - start,
        "seconds_mask": finished - predicted,
        "rss_start_mb": rss_start,
        "rss_after_predict_mb": rss_predict,
        "rss_end_mb": peak_rss_mb(),
        "sample_sums_to_one": bool(np.allclose(sample.sum(0), 1, atol=1e-4)),
        "sample_has_nan": bool(np.isnan(sample).any()),
    }
    print(json.dumps(report))


def memmap_command(folder: Path, tile: int, batch: int, threads: int) -> list[str]:
    """The command line of the memmap child working in ``folder``."""
    return [
        sys.executable,
        __file__,
        "--memmap-child",
        "--workdir",
        str(folder),
        "--tile",
        str(tile),
        "--batch",
        str(batch),
        "--threads",
        str(threads),
    ]


def memmap_table_lines(
    size: int, tile: int, batch: int, load_before: str, load_after: str, report: dict[str, Any]
) -> list[str]:
    """The section's title and its table of the child's times, peak RSS and output check."""
    pixels = size * size
    return [
        f"### Memory-mapped {size} x {size} uint8 image (tile {tile}, batch {batch})",
        "",
        f"Load average before: {load_before}; after: {load_after}. One run (it is long). "
        "ru_maxrss includes the parent's peak when the parent is large (it survives exec); "
        "VmHWM is the child's own peak.",
        "",
        "| quantity | value |",
        "|---|---:|",
        f"| `predict` into an `open_memmap` float32 (2, {size}, {size}) | "
        f"{report['seconds_predict']:.1f} s = "
        f"{pixels / report['seconds_predict'] / 1e6:.3f} Mpx/s |",
        f"| class mask into an `open_memmap` uint8, blocks of 1024 rows | "
        f"{report['seconds_mask']:.1f} s |",
        "| peak RSS of the child, ru_maxrss / VmHWM: after imports and opening the maps | "
        f"{report['rss_start_mb'][0]:.0f} / {report['rss_start_mb'][1]:.0f} MB |",
        f"| ... after `predict` | {report['rss_after_predict_mb'][0]:.0f} / "
        f"{report['rss_after_predict_mb'][1]:.0f} MB |",
        f"| ... at the end (mask written) | {report['rss_end_mb'][0]:.0f} / "
        f"{report['rss_end_mb'][1]:.0f} MB |",
        f"| output check (64 x 64 sample: sums to 1, no NaN) | "
        f"{report['sample_sums_to_one'] and not report['sample_has_nan']} |",
    ]


def bench_memmap(
    size: int, tile: int, batch: int, threads: int, throughput: dict[str, Any] | None
) -> tuple[list[str], dict[str, Any]]:
    """Section 3: memory-mapped image in, memory-mapped probabilities and mask out.

    Returns the report's lines and the child's report (times, peak RSS as ru_maxrss and
    VmHWM in MB).
    """
    with tempfile.TemporaryDirectory(
        prefix="napari-unet-bench-", dir=os.environ.get("TMPDIR")
    ) as d:
        folder = Path(d)
        log(f"memmap: writing a {size}^2 uint8 image to {folder}")
        write_large_image(folder / "image.npy", size)
        load_before = load_average()
        command = memmap_command(folder, tile, batch, threads)
        log(f"memmap: running {' '.join(command[1:])}")
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            failed = f"child failed:\n```\n{result.stderr}\n```"
            return ["### Memory-mapped image", "", failed, ""], {"failed": result.stderr}
        report = json.loads(result.stdout.strip().splitlines()[-1])
        load_after = load_average()
    per_pixel = report["seconds_predict"] / (size * size)
    numbers = {"size": size, "tile": tile, "batch": batch, "load_before": load_before}
    numbers |= {"load_after": load_after, **report}
    lines = memmap_table_lines(size, tile, batch, load_before, load_after, report)
    if throughput is not None:
        in_memory = throughput["napari"] / throughput["pixels"]
        numbers["time_per_pixel_vs_in_memory"] = per_pixel / in_memory
        lines.append(
            f"| time per pixel vs the in-memory {int(np.sqrt(throughput['pixels']))}^2 run "
            f"of the throughput section | {per_pixel / in_memory:.3f}x |"
        )
    lines.append("")
    return lines, numbers


# ---- main ----------------------------------------------------------------------------------
def parse_arguments() -> argparse.Namespace:
    """The command line (``--memmap-child`` and ``--workdir`` are for the memmap child)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per measurement")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument(
        "--secondary-repeats",
        type=int,
        default=3,
        help="runs of the throughput rows other than napari-unet and MONAI (plain)",
    )
    parser.add_argument("--size", type=int, default=4096, help="edge of the throughput image")
    parser.add_argument("--large", type=int, default=16384, help="edge of the memmap image")
    parser.add_argument("--tile", type=int, default=572, help="input tile edge")
    parser.add_argument("--batch", type=int, default=4, help="tiles per forward pass")
    parser.add_argument(
        "--sections",
        nargs="+",
        default=["throughput", "flops", "memmap"],
        choices=["throughput", "flops", "memmap"],
    )
    parser.add_argument(
        "--extra-tiles",
        type=int,
        nargs="*",
        default=None,
        help="larger tiles also timed end to end (default 1084; quick: none)",
    )
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile attempt")
    parser.add_argument("--memmap-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    add_json_option(parser, "inference")
    return parser.parse_args()


def apply_quick(args: argparse.Namespace) -> None:
    """With ``--quick``, shrink the sizes, repeats, tile and batch and skip compiling."""
    if args.quick:
        args.size, args.large = min(args.size, 512), min(args.large, 1024)
        args.repeats, args.tile, args.batch = min(args.repeats, 2), 284, 2
        args.no_compile = True


def extra_tiles_of(args: argparse.Namespace) -> list[int]:
    """The larger tiles timed end to end: as given, else 1084 (none with ``--quick``)."""
    return args.extra_tiles if args.extra_tiles is not None else ([] if args.quick else [1084])


def header_lines(args: argparse.Namespace, model: UNet, model_name: str, started: str) -> list[str]:
    """The report's title, the command, the machine, the model and the load at the start."""
    return [
        "## Inference performance",
        "",
        f"Started {started}. Command: `python {' '.join(sys.argv)}`",
        "",
        *machine_lines(args.threads),
        f"- model: {model_name}; {model.describe()}; halo {model.halo}",
        f"- load average (1/5/15 min) at start: {load_average()}",
        "",
    ]


def run_sections(
    args: argparse.Namespace, model: UNet, extra_tiles: list[int], numbers: dict[str, Any]
) -> list[str]:
    """Run the sections asked for; returns their report lines and adds their numbers."""
    lines: list[str] = []
    throughput = None
    if "throughput" in args.sections:
        section, throughput = bench_throughput(
            model,
            args.size,
            args.tile,
            args.batch,
            args.repeats,
            min(args.repeats, args.secondary_repeats),
            extra_tiles,
        )
        lines += section
        numbers["throughput"] = throughput
    if "flops" in args.sections:
        section, numbers["flops"] = bench_flops(
            model,
            args.tile,
            args.batch,
            args.repeats,
            args.threads,
            args.quick,
            throughput,
            try_compile=not args.no_compile,
        )
        lines += section
    if "memmap" in args.sections:
        section, numbers["memmap"] = bench_memmap(
            args.large, args.tile, args.batch, args.threads, throughput
        )
        lines += section
    return lines


def main() -> None:
    """Run the sections asked for, print the markdown report and write the JSON if asked."""
    args = parse_arguments()
    if args.memmap_child:
        memmap_child(args)
        return
    torch.set_num_threads(args.threads)
    apply_quick(args)
    extra_tiles = extra_tiles_of(args)
    model, model_name = get_model()
    started = utc_now()
    lines = header_lines(args, model, model_name, started)
    numbers: dict[str, Any] = {"arguments": vars(args), "model": model_name}
    lines += run_sections(args, model, extra_tiles, numbers)
    print("\n".join(lines), flush=True)
    write_json(args.json, numbers, started=started)


if __name__ == "__main__":
    main()

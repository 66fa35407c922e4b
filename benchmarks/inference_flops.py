"""FLOP section of ``bench_inference.py``: FLOPs per tile and pixel, the CPU's limit, attempts.

:func:`bench_flops` counts the FLOPs of one tile's forward pass (with and without the halo
overhead of valid convolutions), measures this CPU's GFLOP/s on a large convolution and a
matrix product, and times one row per optimisation tried (memory layout, tile and batch size,
threads, bfloat16 autocast, ``torch.compile``).
"""

from __future__ import annotations

import functools
import math
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# isort: off
import napari_unet  # noqa: F401  (first: asks PyTorch for huge pages before torch is imported)
import numpy as np
import torch

# isort: on
from inference_common import load_average, log, timed
from torch.utils.flop_counter import FlopCounterMode

from napari_unet import UNet
from napari_unet.core import inference
from napari_unet.core.inference import tile_layout


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


@dataclass(frozen=True)
class FlopsSettings:
    """What the FLOP section measures: the model, its tile and batch, and how."""

    model: UNet
    tile: int  # edge of the input tile
    batch: int  # tiles per forward pass (the "before" layout)
    repeats: int  # timed passes per attempt (median)
    threads: int  # torch threads of the main attempts
    quick: bool  # smaller reference problems


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
    settings: FlopsSettings, load_before: str, accounting: TileFlops, reference: dict[str, float]
) -> list[str]:
    """The section's title and its table of FLOPs and the reference GFLOP/s."""
    model, tile, quick = settings.model, settings.tile, settings.quick
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


def layout_attempt_rows(settings: FlopsSettings, row: Callable[..., str]) -> list[str]:
    """Rows for the memory layouts, the tiles per pass and two larger tiles."""
    model, tile, batch = settings.model, settings.tile, settings.batch
    repeats, threads, quick = settings.repeats, settings.threads, settings.quick
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
    settings: FlopsSettings, throughput: dict[str, Any] | None, try_compile: bool
) -> tuple[list[str], dict[str, Any]]:
    """FLOP accounting, the CPU's reference GFLOP/s and the optimisation attempts.

    Returns the report's lines and the numbers (each attempt's seconds per pass and GFLOP/s).
    """
    model, tile, repeats = settings.model, settings.tile, settings.repeats
    threads, quick = settings.threads, settings.quick
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
    lines = flops_table_lines(settings, load_before, accounting, reference)
    if throughput is not None:
        image_lines, image_numbers = whole_image_flops(throughput, accounting, best_reference)
        numbers |= image_numbers
        lines += image_lines
    lines += attempts_header_lines(repeats)
    row = functools.partial(attempt_row, model, numbers["attempts"], best_reference)
    lines += layout_attempt_rows(settings, row)
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

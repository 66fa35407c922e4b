"""Throughput section of ``bench_inference.py``: napari-unet against MONAI and a naive loop.

:func:`bench_throughput` times every method of :func:`throughput_methods` on one test image,
interleaved in rounds (:func:`run_throughput_rounds`), and tabulates the medians, the speed
against MONAI and each output's difference from napari-unet's ``predict``
(:func:`throughput_table`).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any

# isort: off
import napari_unet  # noqa: F401  (first: asks PyTorch for huge pages before torch is imported)
import numpy as np

# isort: on
from inference_common import (
    load_average,
    log,
    monai_predict,
    naive_predict,
    napari_predict,
    test_image,
    timed,
)

from napari_unet import UNet


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

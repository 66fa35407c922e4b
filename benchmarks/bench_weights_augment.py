"""Benchmark the weight-map border term and the elastic deformation.

(a) ``border_term`` (per-object distance transforms in grown bounding boxes)
    against ``border_term_reference`` (one whole-image transform per object).
(b) Elastic deformation of one patch (image float32 + labels + weights) by
    napari-unet's torch implementation, a scipy ``map_coordinates``
    implementation and the ``elasticdeform`` library (if installed).

Prints a markdown report: medians of ``--repeats`` runs, ratios from the same run;
``--json PATH`` also writes the numbers as JSON (``benchmarks/results/weights_augment.json``).

Usage::

    PYTHONPATH=src python benchmarks/bench_weights_augment.py [--quick] [--repeats N] [--threads T]
        [--json benchmarks/results/weights_augment.json]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy
import torch
from raw_results import add_json_option, cpu_name, utc_now, write_json
from scipy import ndimage

from napari_unet.training.augment import elastic_deform
from napari_unet.training.weights import border_term, border_term_reference

Deform = Callable[[np.ndarray, np.ndarray, np.ndarray, float, np.random.Generator], tuple]


def median_seconds(function: Callable[[], object], repeats: int) -> tuple[float, object]:
    """Median wall time of ``repeats`` calls of ``function`` (after one warm-up call).

    Returns the median in seconds and the result of the warm-up call.
    """
    result = function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def random_discs(size: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """Instance image (size, size) of ``count`` discs of radius 4-12.

    Each disc only paints still-empty pixels, so overlapping draws become
    touching objects instead of hiding each other.
    """
    instances = np.zeros((size, size), np.int32)
    for object_id in range(1, count + 1):
        radius = int(rng.integers(4, 13))
        cy, cx = rng.integers(0, size, 2)
        y0, y1, x0, x1 = max(cy - radius, 0), cy + radius + 1, max(cx - radius, 0), cx + radius + 1
        rows, cols = np.ogrid[y0 : min(y1, size), x0 : min(x1, size)]
        disc = (rows - cy) ** 2 + (cols - cx) ** 2 <= radius**2
        window = instances[y0:y1, x0:x1]
        window[disc & (window == 0)] = object_id
    return instances


def count_touching(instances: np.ndarray) -> int:
    """Objects with a different object among their 8 neighbours."""
    largest = ndimage.maximum_filter(instances, size=3, mode="constant")
    others = np.where(instances > 0, instances, np.iinfo(instances.dtype).max)
    smallest = ndimage.minimum_filter(others, size=3, mode="constant", cval=others.max())
    touching = (instances > 0) & ((largest != instances) | (smallest != instances))
    return len(np.unique(instances[touching]))


def bench_border_term(size: int, count: int, repeats: int) -> tuple[list[str], dict]:
    """Section (a): fast vs reference border term; the report's lines and the numbers."""
    instances = random_discs(size, count, np.random.default_rng(0))
    n_objects = len(np.unique(instances)) - 1
    n_touching = count_touching(instances)
    fast, fast_term = median_seconds(lambda: border_term(instances, 10.0, 5.0), repeats)
    reference, reference_term = median_seconds(
        lambda: border_term_reference(instances, 10.0, 5.0), repeats
    )
    difference = np.abs(fast_term - reference_term).max()
    numbers = {
        "size": size,
        "objects": n_objects,
        "touching": n_touching,
        "median_s": {"border_term_reference": reference, "border_term": fast},
        "speed_up": reference / fast,
        "max_abs_difference": float(difference),
    }
    lines = [
        f"### (a) Border term, {size}x{size}, {n_objects} objects "
        f"({n_touching} touching another), w0=10, sigma=5",
        "",
        "| implementation | median time (s) | speed-up |",
        "|---|---:|---:|",
        f"| `border_term_reference` (EDT per object, whole image) | {reference:.3f} | 1.0x |",
        f"| `border_term` (EDT per object in box grown by R) | {fast:.4f} | "
        f"{reference / fast:.1f}x |",
        "",
        f"max abs difference fast vs reference: {difference:.2e} (tolerance 1e-5)",
        "",
    ]
    return lines, numbers


def deform_torch(mode: str) -> Deform:
    def deform(image, labels, weights, std, rng):
        return elastic_deform(image, labels, weights, rng=rng, std=std, grid=3, mode=mode)

    return deform


def deform_scipy(image, labels, weights, std, rng):
    """Same algorithm with scipy: zoom(order=3) field, map_coordinates (3 / 0 / 0), mirror."""
    height, width = image.shape
    coarse = rng.normal(0.0, std, size=(2, 3, 3))
    field = [ndimage.zoom(c, (height / 3, width / 3), order=3) for c in coarse]
    rows, cols = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    coords = np.stack([rows + field[0], cols + field[1]])
    return (
        ndimage.map_coordinates(image, coords, order=3, mode="mirror"),
        ndimage.map_coordinates(labels, coords, order=0, mode="mirror"),
        ndimage.map_coordinates(weights, coords, order=0, mode="mirror"),
    )


def deform_elasticdeform(image, labels, weights, std, rng):
    import elasticdeform

    # elasticdeform draws its displacements from numpy's legacy global state
    np.random.seed(int(rng.integers(2**31)))  # noqa: NPY002
    return tuple(
        elasticdeform.deform_random_grid(
            [image, labels, weights], sigma=std, points=3, order=[3, 0, 0], mode="mirror"
        )
    )


def check_deform(deform: Deform, image, labels, weights) -> dict[str, Any]:
    """Correctness: identity at std 0 and label values preserved at std 10."""
    out = deform(image, labels, weights, 0.0, np.random.default_rng(1))
    identity = np.abs(out[0] - image).max()
    labels_same = np.array_equal(out[1], labels) and np.array_equal(out[2], weights)
    out = deform(image, labels, weights, 10.0, np.random.default_rng(2))
    preserved = set(np.unique(out[1])) <= set(np.unique(labels)) and out[1].dtype == labels.dtype
    moved = not np.array_equal(out[1], labels)
    return {
        "identity_max_abs": float(identity),
        "labels_weights_identical_at_0": bool(labels_same),
        "label_values_preserved": bool(preserved),
        "moved": bool(moved),
    }


def check_cells(checks: dict[str, Any]) -> str:
    """The check columns of a row of section (b)."""
    marks = ["yes" if checks[key] else "NO" for key in list(checks)[1:]]
    return " | ".join([f"{checks['identity_max_abs']:.1e}", *marks])


def bench_elastic(size: int, repeats: int) -> tuple[list[str], dict]:
    """Section (b): elastic deformation of one patch; the report's lines and the numbers."""
    rng = np.random.default_rng(3)
    image = ndimage.gaussian_filter(rng.random((size, size)), 3).astype(np.float32)
    labels = (ndimage.gaussian_filter(rng.random((size, size)), 4) * 40 % 4).astype(np.uint8)
    weights = rng.random((size, size)).astype(np.float32)
    candidates: dict[str, Deform] = {
        "napari-unet torch, image bilinear": deform_torch("bilinear"),
        "napari-unet torch, image bicubic": deform_torch("bicubic"),
        "scipy `map_coordinates`, image order 3": deform_scipy,
    }
    try:
        import elasticdeform  # noqa: F401

        candidates["`elasticdeform` 0.5 `deform_random_grid`, order [3, 0, 0]"] = (
            deform_elasticdeform
        )
        missing = ""
    except ImportError as error:
        missing = f"`elasticdeform` not benchmarked: {error}"
    rows, numbers = [], {}
    baseline = None
    for name, deform in candidates.items():
        draw = np.random.default_rng(4)
        seconds, _ = median_seconds(
            lambda d=deform, r=draw: d(image, labels, weights, 10.0, r), repeats
        )
        baseline = baseline or seconds
        checks = check_deform(deform, image, labels, weights)
        numbers[name] = {"median_s": seconds, **checks}
        rows.append(
            f"| {name} | {seconds * 1e3:.1f} | {seconds / baseline:.2f} | {check_cells(checks)} |"
        )
    header = [
        f"### (b) Elastic deformation of one {size}x{size} patch "
        "(float32 image + uint8 labels + float32 weights), std 10 px, 3x3 grid",
        "",
        "Times include drawing the field. Checks: max abs image change at std 0; labels and "
        "weights unchanged at std 0; label values and dtype preserved at std 10; labels moved "
        "at std 10.",
        "",
        "| implementation | median time (ms) | time / torch bilinear | identity at std 0 "
        "(max abs) | labels, weights identical at std 0 | label values preserved | moved |",
        "|---|---:|---:|---:|---|---|---|",
    ]
    lines = [*header, *rows, "", *([missing, ""] if missing else [])]
    return lines, {"size": size, "implementations": numbers, "missing": missing or None}


def machine_lines() -> list[str]:
    """CPU model, cores and library versions."""
    model = cpu_name()
    try:
        from importlib.metadata import version

        elastic_version = version("elasticdeform")
    except Exception:
        elastic_version = "not installed"
    return [
        f"- CPU: {model}, {os.cpu_count()} logical cores, {torch.get_num_threads()} torch threads",
        f"- Python {platform.python_version()}, numpy {np.__version__}, scipy {scipy.__version__}, "
        f"torch {torch.__version__}, elasticdeform {elastic_version}",
        "",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per measurement")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    add_json_option(parser, "weights_augment")
    args = parser.parse_args()
    started = utc_now()
    torch.set_num_threads(args.threads)
    size, count, patch = (256, 60, 128) if args.quick else (1024, 500, 512)
    lines = machine_lines()
    load_before = os.getloadavg()[0]
    lines.append(f"- load average before: {load_before:.2f}")
    border_lines, border = bench_border_term(size, count, args.repeats)
    elastic_lines, elastic = bench_elastic(patch, args.repeats)
    lines += [f"- load average after: {os.getloadavg()[0]:.2f}", "", *border_lines]
    print("\n".join([*lines, *elastic_lines]))
    write_json(
        args.json,
        {
            "arguments": vars(args),
            "load_average_before": load_before,
            "border_term": border,
            "elastic_deformation": elastic,
        },
        started=started,
    )


if __name__ == "__main__":
    main()

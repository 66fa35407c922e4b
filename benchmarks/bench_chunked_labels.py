"""Chunked instance labelling: napari-unet's ``label_chunked`` against ``dask_image``.

Issue 16 asks whether ``dask_image.ndmeasure.label`` could replace the package's own
chunked labelling (:func:`napari_unet.io.chunked_labels.label_chunked`, which
``predict_to_zarr`` uses for masks too large for memory). For each ``--sizes`` edge a
synthetic class mask (1 = background, 2 = objects: smoothed noise thresholded into many
objects of all sizes, some with holes, plus one ring across many blocks) is written to a
zarr store in chunks of each ``--block`` edge. Each method then runs in a fresh subprocess,
so that its peak memory (``VmHWM``) is its own (``--methods`` chooses among all but
``scipy``, which always runs):

``scipy``
    The whole mask read into memory and labelled by ``scipy.ndimage.label``: the
    reference partition and numbering. (The reference of ``ours-full`` is
    :func:`~napari_unet.core.postprocess.instance_labels` on the whole mask, made by the
    parent process.)
``ours``
    ``label_chunked`` from the zarr mask into a zarr store, block by block, with
    ``min_size=0, fill_holes=False``: the labelling alone.
``ours-full``
    The same with the defaults (objects under 15 px dropped, holes filled per instance).
``dask-image``
    ``dask_image.ndmeasure.label(da.from_zarr(mask) == 2)`` stored into a zarr store with
    dask's threaded scheduler (one thread per core).
``dask-image-1-thread``
    The same with dask's synchronous scheduler (one thread, as ``label_chunked`` runs).

Checks against ``scipy``: the same partition of the pixels (the same objects, whatever
their numbers), and the same numbers. ``ours-full`` is compared with ``instance_labels``.

    python benchmarks/bench_chunked_labels.py [--sizes 4096 8192] [--block 512 [1024 ...]]
        [--methods ours dask-image ...] [--repeats 3]
        [--json benchmarks/results/chunked_labels.json]

Prints a markdown table (progress on stderr). Needs ``dask-image`` (the ``benchmarks`` extra).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from raw_results import add_json_option, load_averages, utc_now, vm_hwm_mb, write_json

METHODS = ("scipy", "ours", "ours-full", "dask-image", "dask-image-1-thread")


def synthetic_mask(size: int, seed: int = 0) -> np.ndarray:
    """A (size, size) uint8 class mask: about 1.5 objects per 1000 pixels, and one ring."""
    from scipy import ndimage

    noise = np.random.default_rng(seed).standard_normal((size, size), dtype=np.float32)
    smooth = ndimage.gaussian_filter(noise, 3.0)
    mask = np.where(smooth > 0.4 * smooth.std(), 2, 1).astype(np.uint8)
    rows, columns = np.ogrid[:size, :size]
    radius = np.hypot(rows - size / 2, columns - size / 2)
    mask[np.abs(radius - size / 3) < 20] = 2  # crosses many blocks, encloses background
    return mask


def run_method(method: str, folder: Path, block: int) -> dict[str, Any]:
    """In the child: label ``folder/mask.zarr`` with ``method``; time and peak memory."""
    import zarr

    mask = zarr.open_array(folder / "mask.zarr", mode="r")
    out = None
    if method != "scipy":
        out = zarr.open_array(
            folder / f"{method}.zarr",
            mode="w",
            shape=mask.shape,
            chunks=mask.chunks,
            dtype=np.uint32,
            fill_value=0,
        )
    labeller = _labeller(method, mask, out, block)
    base = vm_hwm_mb()
    start = time.perf_counter()
    count, labels = labeller()
    seconds = time.perf_counter() - start
    report = {"seconds": seconds, "objects": int(count), "peak_mb": vm_hwm_mb(), "base_mb": base}
    if labels is not None:  # the in-memory labels, kept for the checks once measured
        np.save(folder / f"{method}.npy", labels)
    return report


def _labeller(method: str, mask: Any, out: Any, block: int) -> Callable[[], tuple[int, Any]]:
    """A function that labels with ``method``: the object count, and labels held in memory."""
    if method == "scipy":
        from scipy import ndimage

        def in_memory() -> tuple[int, Any]:
            labels, count = ndimage.label(mask[...] == 2)
            return count, labels

        return in_memory
    if method.startswith("ours"):
        from napari_unet.io.chunked_labels import label_chunked

        options = {} if method == "ours-full" else {"min_size": 0, "fill_holes": False}
        return lambda: (label_chunked(mask, out, (block, block), **options), None)
    import dask
    import dask.array as da
    from dask_image.ndmeasure import label

    scheduler = "synchronous" if method.endswith("1-thread") else "threads"

    def with_dask() -> tuple[int, Any]:
        labels, count = label(da.from_zarr(mask) == 2)
        stored = da.store(labels.astype(np.uint32), out, lock=False, compute=False)
        _, count = dask.compute(stored, count, scheduler=scheduler)
        return int(count), None

    return with_dask


def same_partition(first: np.ndarray, second: np.ndarray) -> bool:
    """Whether two label images hold the same objects (numbers aside)."""
    foreground = first > 0
    if not np.array_equal(foreground, second > 0):
        return False
    a, b = first[foreground].astype(np.uint64), second[foreground].astype(np.uint64)
    pairs = np.unique(a * np.uint64(2**32) + b)
    return len(pairs) == len(np.unique(a)) == len(np.unique(b))


def compare(folder: Path, methods: tuple[str, ...]) -> dict[str, dict[str, bool]]:
    """Each chunked labelling against the in-memory one: partition and numbers."""
    import zarr

    from napari_unet.core.postprocess import instance_labels

    reference = np.load(folder / "scipy.npy")
    checks = {}
    for method in methods[1:]:
        labels = zarr.open_array(folder / f"{method}.zarr", mode="r")[...]
        target = reference
        if method == "ours-full":
            target = instance_labels(zarr.open_array(folder / "mask.zarr", mode="r")[...])
        checks[method] = {
            "same_partition": same_partition(labels, target),
            "same_numbers": bool(np.array_equal(labels, target)),
        }
    return checks


def child(method: str, folder: Path, block: int) -> dict[str, Any]:
    """Run one method in a fresh process; its report."""
    command = [sys.executable, __file__, "--child", method, "--workdir", str(folder)]
    result = subprocess.run(
        [*command, "--block", str(block)], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"{method} failed:\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def bench_size(
    size: int, block: int, repeats: int, seed: int, methods: tuple[str, ...]
) -> dict[str, Any]:
    """Every method on one mask stored in ``block`` chunks: runs, medians and checks."""
    import zarr

    with tempfile.TemporaryDirectory(prefix="bench-chunked-labels-") as temporary:
        folder = Path(temporary)
        mask = synthetic_mask(size, seed)
        stored = zarr.open_array(
            folder / "mask.zarr", mode="w", shape=mask.shape, chunks=(block, block), dtype="u1"
        )
        stored[...] = mask
        foreground = float(np.mean(mask == 2))
        del mask
        runs: dict[str, list[dict[str, Any]]] = {method: [] for method in methods}
        for repeat in range(repeats):
            for method in methods:  # interleaved, so load changes hit every method alike
                runs[method].append(child(method, folder, block))
                report = runs[method][-1]
                print(
                    f"[bench_chunked_labels] {size}², block {block}, {method} run {repeat + 1}: "
                    f"{report['seconds']:.2f} s, peak {report['peak_mb']:.0f} MB",
                    file=sys.stderr,
                    flush=True,
                )
        checks = compare(folder, methods)
    return {
        "size": size,
        "block": block,
        "foreground": foreground,
        "runs": runs,
        "median_s": {m: statistics.median(r["seconds"] for r in runs[m]) for m in methods},
        "peak_mb": {m: max(r["peak_mb"] for r in runs[m]) for m in methods},
        "peak_over_base_mb": {
            m: max(r["peak_mb"] - r["base_mb"] for r in runs[m]) for m in methods
        },
        "objects": {m: runs[m][0]["objects"] for m in methods},
        "checks": checks,
    }


def table(results: list[dict[str, Any]], repeats: int) -> list[str]:
    """The markdown report."""
    lines = [
        f"Medians of {repeats} run(s), each in a fresh process; peak = VmHWM of that process "
        "(after imports: base).",
        "",
        "| mask | block | method | objects | seconds | peak (MB) | peak - base (MB) "
        "| same partition as scipy | same numbers |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    for result in results:
        for method in result["median_s"]:
            check = result["checks"].get(method, {"same_partition": "-", "same_numbers": "-"})
            lines.append(
                f"| {result['size']}² | {result['block']} | {method} | {result['objects'][method]} "
                f"| {result['median_s'][method]:.2f} | {result['peak_mb'][method]:.0f} "
                f"| {result['peak_over_base_mb'][method]:.0f} | {check['same_partition']} "
                f"| {check['same_numbers']} |"
            )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[4096, 8192])
    parser.add_argument(
        "--block", type=int, nargs="+", default=[512], help="zarr chunk and block edges"
    )
    parser.add_argument("--methods", nargs="+", choices=METHODS[1:], default=list(METHODS[1:]))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--child", choices=METHODS, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    add_json_option(parser, "chunked_labels")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_method(args.child, args.workdir, args.block[0])))
        return
    started, load_before = utc_now(), load_averages()
    methods = ("scipy", *(m for m in METHODS[1:] if m in args.methods))
    results = [
        bench_size(size, block, args.repeats, args.seed, methods)
        for size in args.sizes
        for block in args.block
    ]
    print("\n".join(table(results, args.repeats)))
    numbers = {"arguments": vars(args), "load_averages_before": load_before, "results": results}
    write_json(args.json, numbers, started=started)


if __name__ == "__main__":
    main()

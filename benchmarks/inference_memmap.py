"""Memory-mapped section of ``bench_inference.py``: a large image predicted at bounded memory.

:func:`bench_memmap` writes a large uint8 ``.npy`` image and runs ``bench_inference.py
--memmap-child`` in a subprocess (:func:`memmap_command`); the child (:func:`memmap_child`)
predicts the memory-mapped image into memory-mapped probabilities and a class mask and reports
its times and peak RSS as JSON on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# isort: off
import napari_unet  # noqa: F401  (first: asks PyTorch for huge pages before torch is imported)
import numpy as np
import torch

# isort: on
from inference_common import get_model, load_average, log, test_image

from napari_unet import predict
from napari_unet.core import inference

ENTRY_POINT = Path(__file__).with_name("bench_inference.py")


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
        status = Path("/proc/self/status").read_text(encoding="utf-8")
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
        str(ENTRY_POINT),
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

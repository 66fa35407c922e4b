"""Benchmark batch prediction: images per second in one process and on dask.distributed.

Writes ``--images`` synthetic nuclei images (``--size`` x ``--size``, uint16 TIFF)
and a small fresh U-Net checkpoint to a temporary folder, then times
:func:`napari_unet.io.batch.run_batch` on them:

* in this process, with 1 torch thread and with ``--threads`` threads;
* on a local dask.distributed cluster of 1 and 2 single-threaded worker
  processes, "cold" (cluster start, worker imports and model load included, as
  ``napari-unet predict --workers N`` pays them) and "warm" (cluster running and
  model loaded: the steady state of a long batch).

Every run writes its outputs to a fresh folder; the cluster outputs are checked
to be identical (``numpy.array_equal``) to the single-process 1-thread outputs.
Prints a markdown table.

Warm and in-process times are medians of ``--repeats`` runs; cold runs happen once.
``--json PATH`` also writes the rows as JSON (``benchmarks/results/batch.json``).

Usage::

    python benchmarks/bench_batch.py [--images 8] [--size 512] [--features 8] [--depth 3]
        [--repeats 3] [--json benchmarks/results/batch.json]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile
import torch
from raw_results import add_json_option, utc_now, write_json

from napari_unet import ModelConfig, save_model
from napari_unet.core.checkpoint import new_model
from napari_unet.io.batch import PredictOptions, local_cluster, predict_file, run_batch
from napari_unet.io.synthetic import synthetic_nuclei


def make_inputs(folder: Path, count: int, size: int) -> list[Path]:
    """``count`` synthetic nuclei images as uint16 TIFFs in ``folder``."""
    paths = []
    for index in range(count):
        image, _ = synthetic_nuclei((size, size), n_nuclei=size // 8, rng=index)
        path = folder / f"nuclei{index:02d}.tif"
        tifffile.imwrite(path, (image * 4000).clip(0, 65535).astype(np.uint16))
        paths.append(path)
    return paths


def timed(label: str, function, repeats: int = 1) -> tuple[str, float]:
    """Median wall time of ``repeats`` calls of a batch ``function``; checks every file is done."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        results = function()
        times.append(time.perf_counter() - start)
        failed = [result for result in results if result.status != "done"]
        if failed:
            raise RuntimeError(f"{label}: {failed[0]}")
    return label, statistics.median(times)


def same_outputs(first: Path, second: Path) -> bool:
    names = sorted(path.name for path in first.glob("*.tif"))
    return bool(names) and all(
        np.array_equal(tifffile.imread(first / name), tifffile.imread(second / name))
        for name in names
    )


def warm_up(path: str, checkpoint: str, folder: str, options: PredictOptions) -> None:
    """Load the model and predict one image in this process (run on every worker)."""
    target = Path(folder) / str(os.getpid())
    target.mkdir(parents=True, exist_ok=True)
    predict_file(path, checkpoint, target, options)


def cluster_rows(inputs, checkpoint, root, options, workers, reference, repeats) -> list[tuple]:
    """Cold and warm timings on a local cluster of ``workers`` single-threaded processes."""
    from distributed import Client

    rows = []
    label, seconds = timed(
        f"local cluster, {workers} worker(s), cold",
        lambda: run_batch(inputs, checkpoint, root / f"cold{workers}", options, workers=workers),
    )
    rows.append((label, seconds, same_outputs(reference, root / f"cold{workers}")))
    with local_cluster(workers) as cluster, Client(cluster) as client:
        address = cluster.scheduler_address
        client.run(warm_up, str(inputs[0]), str(checkpoint), str(root / "warmup"), options)
        label, seconds = timed(
            f"local cluster, {workers} worker(s), warm",
            lambda: run_batch(
                inputs, checkpoint, root / f"warm{workers}", options, scheduler=address
            ),
            repeats,
        )
    rows.append((label, seconds, same_outputs(reference, root / f"warm{workers}")))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--features", type=int, default=8)
    parser.add_argument("--depth", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--repeats", type=int, default=3, help="median of this many (warm runs)")
    add_json_option(parser, "batch")
    args = parser.parse_args()
    started = utc_now()
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as temporary:
        root = Path(temporary)
        (root / "in").mkdir()
        inputs = make_inputs(root / "in", args.images, args.size)
        config = ModelConfig(base_features=args.features, depth=args.depth)
        checkpoint = save_model(new_model(config, seed=0), root / "model.safetensors")
        options = PredictOptions(device="cpu", threads=1, overwrite=True)
        rows = []
        run_batch(inputs[:1], checkpoint, root / "warmup", options)  # imports, first load
        label, seconds = timed(
            "this process, 1 thread",
            lambda: run_batch(inputs, checkpoint, root / "one", options),
            args.repeats,
        )
        rows.append((label, seconds, True))
        many = PredictOptions(device="cpu", threads=args.threads, overwrite=True)
        label, seconds = timed(
            f"this process, {args.threads} threads",
            lambda: run_batch(inputs, checkpoint, root / "many", many),
            args.repeats,
        )
        rows.append((label, seconds, same_outputs(root / "one", root / "many")))
        for workers in (1, 2):
            rows += cluster_rows(
                inputs, checkpoint, root, options, workers, root / "one", args.repeats
            )
    print_table(rows, args)
    runs = [
        {"run": label, "seconds": seconds, "images_per_s": args.images / seconds, "identical": same}
        for label, seconds, same in rows
    ]
    write_json(args.json, {"arguments": vars(args), "runs": runs}, started=started)


def print_table(rows: list[tuple], args: argparse.Namespace) -> None:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"{args.images} images of {args.size}x{args.size}, U-Net depth {args.depth}, "
        f"{args.features} base features; {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, torch {torch.__version__}, load average {load:.1f}\n"
    )
    print("| run | seconds | images/s | outputs identical to 1-thread run |")
    print("| --- | ---: | ---: | --- |")
    for label, seconds, identical in rows:
        print(f"| {label} | {seconds:.1f} | {args.images / seconds:.2f} | {identical} |")


if __name__ == "__main__":
    main()

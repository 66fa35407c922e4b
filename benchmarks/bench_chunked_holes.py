"""Hole filling in ``label_chunked``: this checkout against an earlier revision's.

``label_chunked(..., fill_holes=True)`` fills each object's holes after the chunked
labelling. This script times it on ``bench_chunked_labels.py``'s synthetic mask (zarr,
chunks of ``--block``) with this checkout's :mod:`napari_unet.io.chunked_labels` and with
the same file at ``--baseline`` (read with ``git show``), interleaved in one process on one
thread, plus this checkout without hole filling (the labelling alone). Every output must
equal :func:`~napari_unet.core.postprocess.instance_labels` on the whole mask.

    python benchmarks/bench_chunked_holes.py [--size 4096] [--block 512] [--repeats 3]
        [--baseline 525dfdd] [--json benchmarks/results/chunked_holes.json]
"""

from __future__ import annotations

import os

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import argparse  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import types  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import TYPE_CHECKING, Any  # noqa: E402

import numpy as np  # noqa: E402
from bench_chunked_labels import synthetic_mask  # noqa: E402
from raw_results import add_json_option, load_averages, utc_now, write_json  # noqa: E402

if TYPE_CHECKING:
    import zarr

MODULE = "src/napari_unet/io/chunked_labels.py"


def baseline_module(revision: str) -> types.ModuleType:
    """``chunked_labels`` as it was at ``revision``, importable beside this checkout's."""
    root = Path(__file__).resolve().parent.parent
    source = subprocess.run(
        ["git", "show", f"{revision}:{MODULE}"], cwd=root, capture_output=True, text=True
    )
    if source.returncode != 0:
        raise SystemExit(f"git show {revision}:{MODULE} failed: {source.stderr.strip()}")
    module = types.ModuleType("napari_unet.io._chunked_labels_baseline")
    module.__package__ = "napari_unet.io"
    exec(compile(source.stdout, f"{revision}:{MODULE}", "exec"), module.__dict__)
    return module


def parse_arguments() -> argparse.Namespace:
    """The command line as parsed arguments."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--block", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--baseline", default="525dfdd", help="git revision to compare with")
    add_json_option(parser, "chunked_holes")
    return parser.parse_args()


def labelling_variants(baseline: str) -> dict[str, tuple[Any, bool]]:
    """Name -> (``label_chunked`` function, ``fill_holes``) of each timed variant."""
    from napari_unet.io import chunked_labels

    return {
        f"{baseline}, fill_holes": (baseline_module(baseline).label_chunked, True),
        "this checkout, fill_holes": (chunked_labels.label_chunked, True),
        "this checkout, no fill": (chunked_labels.label_chunked, False),
    }


def label_once(
    label_chunked: Any,
    fill_holes: bool,
    stored: zarr.Array,
    out_path: str,
    block: tuple[int, int],
) -> tuple[float, int, zarr.Array]:
    """Label ``stored`` into a new zarr array at ``out_path``: (seconds, count, that array)."""
    import zarr

    out = zarr.open_array(
        out_path, mode="w", shape=stored.shape, chunks=block, dtype=np.uint32, fill_value=0,
    )  # fmt: skip
    start = time.perf_counter()
    count = label_chunked(stored, out, block, fill_holes=fill_holes)
    return time.perf_counter() - start, count, out


def time_variants(
    variants: dict[str, tuple[Any, bool]],
    mask: np.ndarray,
    expected: dict[bool, np.ndarray],
    block_size: int,
    repeats: int,
) -> tuple[dict[str, list[float]], dict[str, bool]]:
    """Time every variant ``repeats`` times, interleaved, on ``mask`` stored as zarr;
    the seconds of each run and whether every output equalled ``expected[fill_holes]``."""
    import zarr

    runs: dict[str, list[float]] = {name: [] for name in variants}
    equal: dict[str, bool] = {}
    with tempfile.TemporaryDirectory(prefix="bench-chunked-holes-") as folder:
        block = (block_size, block_size)
        stored = zarr.open_array(
            f"{folder}/mask.zarr", mode="w", shape=mask.shape, chunks=block, dtype="u1"
        )
        stored[...] = mask
        for repeat in range(repeats):
            for name, (label_chunked, fill_holes) in variants.items():  # interleaved
                seconds, count, out = label_once(
                    label_chunked, fill_holes, stored, f"{folder}/out.zarr", block
                )
                runs[name].append(seconds)
                equal[name] = equal.get(name, True) and bool(
                    count == expected[fill_holes].max()
                    and np.array_equal(out[...], expected[fill_holes])
                )
                print(
                    f"[bench_chunked_holes] run {repeat + 1}, {name}: {runs[name][-1]:.2f} s, "
                    f"load {load_averages()[0]}",
                    file=sys.stderr,
                    flush=True,
                )
    return runs, equal


def print_table(
    args: argparse.Namespace,
    objects: int,
    runs: dict[str, list[float]],
    medians: dict[str, float],
    equal: dict[str, bool],
) -> None:
    """The markdown report: one row per variant, its median, its runs and its check."""
    print(f"{args.size}², blocks of {args.block}, {objects} objects")
    print("| variant | median (s) | runs (s) | equals instance_labels |")
    print("| --- | ---: | --- | --- |")
    for name in runs:
        spread = ", ".join(f"{seconds:.2f}" for seconds in runs[name])
        print(f"| {name} | {medians[name]:.2f} | {spread} | {equal[name]} |")


def main() -> None:
    """Time the variants, check them against ``instance_labels``, report and write JSON."""
    from napari_unet.core.postprocess import instance_labels

    args = parse_arguments()
    started, load_before = utc_now(), load_averages()
    variants = labelling_variants(args.baseline)
    mask = synthetic_mask(args.size, args.seed)
    expected = {True: instance_labels(mask), False: instance_labels(mask, fill_holes=False)}
    runs, equal = time_variants(variants, mask, expected, args.block, args.repeats)
    medians = {name: statistics.median(seconds) for name, seconds in runs.items()}
    objects = int(expected[True].max())
    print_table(args, objects, runs, medians, equal)
    numbers = {
        "arguments": vars(args),
        "load_averages_before": load_before,
        "objects": objects,
        "runs_s": runs,
        "median_s": medians,
        "equals_instance_labels": equal,
    }
    write_json(args.json, numbers, started=started)


if __name__ == "__main__":
    main()

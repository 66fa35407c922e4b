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

The sections live in ``inference_throughput.py``, ``inference_flops.py`` and
``inference_memmap.py``; the shared helpers and the compared implementations in
``inference_common.py``. The helpers other scripts import from this module, and
``napari_predict`` and ``monai_predict``, are re-exported here.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

# isort: off
import napari_unet  # noqa: F401  (first: asks PyTorch for huge pages before torch is imported)
import torch

# isort: on
# bench_training, bench_bundled_speed and bench_inference_speed import the shared helpers
# from this module (docs/experiments/performance.md: napari_predict too); those not used here
# are re-exported ("x as x")
from inference_common import get_model, load_average, machine_lines
from inference_common import log as log
from inference_common import monai_predict as monai_predict
from inference_common import napari_predict as napari_predict
from inference_common import test_image as test_image
from inference_common import timed as timed
from inference_flops import FlopsSettings, bench_flops
from inference_memmap import bench_memmap, memmap_child
from inference_throughput import bench_throughput
from raw_results import add_json_option, utc_now, write_json

from napari_unet import UNet


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
        settings = FlopsSettings(
            model, args.tile, args.batch, args.repeats, args.threads, args.quick
        )
        section, numbers["flops"] = bench_flops(
            settings, throughput, try_compile=not args.no_compile
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

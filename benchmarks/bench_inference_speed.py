"""CPU inference speed of the bundled ``em-membranes``: before and after issue 17, side by side.

Compares, on one ``--size`` square uint8 image and in one run, methods interleaved in
rounds (median of ``--repeats`` runs each):

* **before**: the code at the start of issue 17, i.e. ``default_tile_size`` = 572, the tile
  used as given, one convolution and one ReLU after another
  (``EngineOptions(shrink_tiles_to_image=False, fused_conv_relu=False)``), and PyTorch's
  default allocator: it runs in a child process started with ``THP_MEM_ALLOC_ENABLE=0``
  (``--child-before``), once per round, interleaved with the others; this process asks for
  huge pages, as importing ``napari_unet`` does (``napari_unet._huge_pages``);
* the before engine in this process (huge pages only);
* **after**: ``default_tile_size(model)`` (the automatic tile: the largest usable tile up to
  1024 that fits the memory budget), tiles shrunk to the image, each 3x3 convolution fused
  with its ReLU;
* the two changes alone (572 with the new code paths; the new tile with the old paths);
* one pass over the whole mirrored image (``tile_size=None``), the untiled reference;
* MONAI ``sliding_window_inference`` with the same model (``bench_inference.monai_predict``:
  same windows, identical outputs) at tile 572 and at the new tile, one window per pass
  (its fastest setting on this CPU, benchmarks/results_performance.md);
* the network's forward pass (+ softmax) alone on one large tile (``--forward-tile``, 1052 by
  default: the issue's figure), in input megapixels/s, with and without the fused path.

Outputs are compared with the untiled pass (max |difference| of probabilities). A cProfile
of one ``predict`` call before and after says where the time goes.

Usage::

    python benchmarks/bench_inference_speed.py [--size 2048] [--repeats 3] [--threads 2]
        [--json benchmarks/results/inference_speed.json]

Prints a markdown report on stdout (progress on stderr).

The rounds' dataclasses, their summary, the markdown tables and the JSON record live in
``inference_speed_report.py``.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# isort: off
import napari_unet  # noqa: F401  (first: asks PyTorch for huge pages before torch is imported)
import numpy as np
import torch

# isort: on

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_inference import (
    get_model,
    load_average,
    log,
    monai_predict,
    test_image,
    timed,
)
from inference_speed_report import (
    OLD_TILE,
    ComparedTiles,
    Measured,
    Rounds,
    report_lines,
    summarise,
    write_record,
)

from napari_unet import UNet, predict
from napari_unet.core.engine import EngineOptions, forward
from napari_unet.core.inference import default_tile_size, tile_layout


def child_before(image: np.ndarray, tile: int) -> tuple[float, np.ndarray]:
    """One timed ``predict`` of the before code in a fresh process with the default allocator.

    The child loads the model, warms up on a smaller image (not timed), times one call and
    sends back the seconds and the probabilities (through a temporary .npy file).
    """
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        np.save(Path(folder) / "image.npy", image)
        environment = {**os.environ, "THP_MEM_ALLOC_ENABLE": "0"}
        command = [sys.executable, __file__, "--child-before", folder, "--tile", str(tile)]
        command += ["--threads", str(torch.get_num_threads())]
        done = subprocess.run(command, env=environment, capture_output=True, text=True, check=True)
        seconds = json.loads(done.stdout.strip().splitlines()[-1])["seconds"]
        return seconds, np.load(Path(folder) / "probabilities.npy")


def run_child(folder: Path, tile: int) -> None:
    """``--child-before``: time the before code on ``folder/image.npy``; print JSON."""
    if os.environ.get("THP_MEM_ALLOC_ENABLE") != "0":
        raise SystemExit("--child-before runs with THP_MEM_ALLOC_ENABLE=0 (the default allocator)")
    model, _ = get_model()
    image = np.load(folder / "image.npy")
    run_predict(test_image(min(image.shape[0], 1200), seed=1), model, tile, False, False)
    seconds, probabilities = timed(lambda: run_predict(image, model, tile, False, False))
    np.save(folder / "probabilities.npy", probabilities)
    print(json.dumps({"seconds": seconds}))


def engine_for(shrink: bool, fused: bool) -> EngineOptions:
    """The engine with tiles shrunk to the image and fused convolution + ReLU as asked."""
    return EngineOptions(shrink_tiles_to_image=shrink, fused_conv_relu=fused)


def run_predict(
    image: np.ndarray, model: UNet, tile: int | None, shrink: bool, fused: bool
) -> np.ndarray:
    engine = engine_for(shrink, fused)
    return predict(image, model, tile_size=tile, batch_size=4, device="cpu", engine=engine)


def run_monai(image: np.ndarray, model: UNet, tile: int) -> np.ndarray:
    # MONAI's windows at the tile's own stride
    return monai_predict(image, model, tile, 1, engine=engine_for(False, False))


def forward_seconds(model: UNet, tile: int, fused: bool) -> float:
    """One forward pass + softmax of a channels-last ``tile`` x ``tile`` input."""
    inputs = torch.rand(1, 1, tile, tile).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        start = time.perf_counter()
        torch.softmax(forward(model, inputs, engine_for(True, fused)), dim=1)
        return time.perf_counter() - start


# ---- profile ------------------------------------------------------------------------------
PROFILE_GROUPS = {
    "3x3 convolutions + ReLU (fused)": ("torch._ops.mkldnn", "torch/_ops.py:__call__"),
    "3x3 and 1x1 convolutions": ("torch.conv2d",),
    "ReLU": ("torch.relu_",),
    "up-convolutions (2x2 transposed)": ("torch.conv_transpose2d",),
    "concatenation of skips": ("torch.cat",),
    "max-pooling": ("torch.max_pool2d",),
    "softmax": ("torch.softmax",),
}


def profile_predict(image: np.ndarray, model: UNet, tile: int, shrink: bool, fused: bool) -> dict:
    """Seconds per part of one ``predict`` call (cProfile; its own overhead is small here)."""
    profiler = cProfile.Profile()
    engine = engine_for(shrink, fused)
    profiler.enable()
    start = time.perf_counter()
    predict(image, model, tile_size=tile, batch_size=4, device="cpu", engine=engine)
    total = time.perf_counter() - start
    profiler.disable()
    stats = pstats.Stats(profiler).stats  # {(file, line, name): (cc, nc, tt, ct, callers)}
    parts: dict[str, float] = {name: 0.0 for name in PROFILE_GROUPS}

    def cumulative(function: str, file_part: str) -> float:
        return sum(
            entry[3]
            for (file, _, name), entry in stats.items()
            if name == function and file_part in file
        )

    for (file, _, name), (_, _, tottime, _, _) in stats.items():
        label = f"{file}:{name}" if file != "~" else name
        for group, needles in PROFILE_GROUPS.items():
            if any(needle in label for needle in needles):
                parts[group] += tottime
                break
    forward = cumulative("tile_probabilities", "engine.py")
    parts["Python around the network (module calls, cropping, to numpy)"] = forward - sum(
        parts.values()
    )
    parts["normalisation (statistics once, then per tile)"] = cumulative(
        "normalization_stats", "normalization.py"
    ) + cumulative("normalize", "normalization.py")
    parts["tile reading (mirrored windows)"] = cumulative("_read_tile", "inference.py")
    parts["stitching and the rest of predict"] = total - sum(parts.values())
    _, tiles = tile_layout(model, image.shape, tile, engine)
    return {"total_s": total, "tiles": len(tiles), "parts_s": parts}


# ---- main ------------------------------------------------------------------------------------
def parse_arguments() -> argparse.Namespace:
    """The command line (``--child-before`` and ``--tile`` are for the child process)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--forward-tile", type=int, default=1052)
    parser.add_argument("--no-monai", action="store_true")
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--child-before", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--tile", type=int, default=OLD_TILE, help=argparse.SUPPRESS)
    return parser.parse_args()


def compared_tiles(model: UNet, image_shape: tuple[int, ...]) -> ComparedTiles:
    """The automatic tile, both tiles shrunk to the image and their tile counts."""
    new_tile = default_tile_size(model)
    after, before = engine_for(True, True), engine_for(False, False)
    return ComparedTiles(
        new=new_tile,
        new_shrunk=tile_layout(model, image_shape, new_tile, after)[0][0],
        old_shrunk=tile_layout(model, image_shape, OLD_TILE, after)[0][0],
        old_count=len(tile_layout(model, image_shape, OLD_TILE, before)[1]),
        new_count=len(tile_layout(model, image_shape, new_tile, before)[1]),
    )


def build_methods(
    image: np.ndarray, model: UNet, tiles: ComparedTiles, with_monai: bool
) -> dict[str, Callable[[], Any]]:
    """The timed methods by report name, in the order the report and the ratios rely on.

    Before (the child process) first, after second, the untiled pass fifth, the before
    engine in this process sixth, then MONAI at the two tiles if asked.
    """
    methods: dict[str, Callable[[], Any]] = {
        f"before: tile {OLD_TILE} as given, conv then ReLU, default allocator (child process)": (
            lambda: child_before(image, OLD_TILE)
        ),
        f"after: default tile {tiles.new} (auto) shrunk to {tiles.new_shrunk}, fused conv+ReLU": (
            lambda: run_predict(image, model, tiles.new, True, True)
        ),
        f"tile {OLD_TILE} shrunk to {tiles.old_shrunk}, fused conv+ReLU": lambda: run_predict(
            image, model, OLD_TILE, True, True
        ),
        f"tile {tiles.new} as given, conv then ReLU": lambda: run_predict(
            image, model, tiles.new, False, False
        ),
        "one pass over the whole mirrored image (tile_size=None), fused": lambda: run_predict(
            image, model, None, True, True
        ),
        f"tile {OLD_TILE} as given, conv then ReLU (the before engine, huge pages)": lambda: (
            run_predict(image, model, OLD_TILE, False, False)
        ),
    }
    if with_monai:
        methods[f"MONAI sliding_window_inference, tile {OLD_TILE}, sw_batch_size 1"] = lambda: (
            run_monai(image, model, OLD_TILE)
        )
        methods[f"MONAI sliding_window_inference, tile {tiles.new}, sw_batch_size 1"] = lambda: (
            run_monai(image, model, tiles.new)
        )
    return methods


def forward_rows(forward_tile: int) -> dict[str, bool]:
    """The forward-pass-alone rows by report name, each with whether it takes the fused path."""
    return {
        f"forward pass + softmax, one {forward_tile} tile, fused": True,
        f"forward pass + softmax, one {forward_tile} tile, conv then ReLU": False,
    }


def warm_up(
    model: UNet,
    size: int,
    new_tile: int,
    forward_fused: dict[str, bool],
    forward_tile: int,
    with_monai: bool,
) -> None:
    """Untimed calls of every code path on a smaller image (oneDNN primitive caches)."""
    warm = test_image(min(size, 1200), seed=1)
    for tile in (OLD_TILE, new_tile):
        for fused in (False, True):
            run_predict(warm, model, tile, True, fused)
    if with_monai:
        run_monai(warm, model, OLD_TILE)
    for fused in forward_fused.values():
        forward_seconds(model, forward_tile, fused)


def run_rounds(
    methods: dict[str, Callable[[], Any]],
    forward_fused: dict[str, bool],
    model: UNet,
    forward_tile: int,
    repeats: int,
) -> Rounds:
    """``repeats`` rounds, each running every method then every forward row once."""
    before_name = next(iter(methods))
    times: dict[str, list[float]] = {name: [] for name in [*methods, *forward_fused]}
    outputs: dict[str, np.ndarray] = {}
    loads = [load_average()]
    started = time.strftime("%H:%M UTC", time.gmtime())
    for repeat in range(repeats):
        for name, method in methods.items():
            seconds, result = timed(method)
            if name == before_name:  # the child's own time, without its start and warm-up
                seconds, result = result
            times[name].append(seconds)
            outputs.setdefault(name, result)
            log(f"round {repeat + 1}: {seconds:7.2f} s  {name}")
        for name, fused in forward_fused.items():
            times[name].append(forward_seconds(model, forward_tile, fused))
            log(f"round {repeat + 1}: {times[name][-1]:7.2f} s  {name}")
        loads.append(load_average())
    ended = time.strftime("%H:%M UTC", time.gmtime())
    return Rounds(list(methods), list(forward_fused), times, outputs, loads, started, ended)


def profile_before_and_after(image: np.ndarray, model: UNet, new_tile: int) -> dict[str, dict]:
    """cProfile of one ``predict`` with the before code and one with the after code."""
    log("profiles")
    return {
        "before": profile_predict(image, model, OLD_TILE, False, False),
        "after": profile_predict(image, model, new_tile, True, True),
    }


def main() -> None:
    """Time the methods in interleaved rounds, print the report, write the JSON if asked."""
    args = parse_arguments()
    torch.set_num_threads(args.threads)
    if args.child_before is not None:
        run_child(args.child_before, args.tile)
        return
    with_monai = not args.no_monai
    model, model_name = get_model()
    image = test_image(args.size)
    tiles = compared_tiles(model, image.shape)
    methods = build_methods(image, model, tiles, with_monai)
    forward_fused = forward_rows(args.forward_tile)
    log(f"model {model_name}; new default tile {tiles.new}; warm-up")
    warm_up(model, args.size, tiles.new, forward_fused, args.forward_tile, with_monai)
    rounds = run_rounds(methods, forward_fused, model, args.forward_tile, args.repeats)
    profiles: dict[str, dict] = {}
    if not args.no_profile:
        profiles = profile_before_and_after(image, model, tiles.new)
        rounds.loads.append(load_average())
    summary = summarise(rounds, args.size, args.forward_tile, with_monai)
    run = Measured(args, model_name, tiles, rounds, summary, profiles)
    print("\n".join(report_lines(run)))
    if args.json is not None:
        write_record(args.json, run)


if __name__ == "__main__":
    main()

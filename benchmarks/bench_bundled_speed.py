"""What a user waits for: the bundled ``em-membranes`` as Predict runs it, against another one.

Times ``predict`` of a 2048 x 2048 uint8 image with the current bundled model as Predict
runs it by default (its checkpoint asks for test-time augmentation over the 4 rotations:
4 passes), the same model over all 8 rotations and flips (its default until 2026-12-02),
the same model in one pass (``--no-tta``), and a previous checkpoint in one pass,
interleaved in each round, medians of ``--repeats`` rounds::

    git show ee15fb2:src/napari_unet/models/em-membranes.safetensors > /tmp/em16.safetensors
    python benchmarks/bench_bundled_speed.py --previous /tmp/em16.safetensors --threads 2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

# isort: off
import napari_unet as nu  # first: it sets PyTorch's allocator options before torch loads
import torch

# isort: on
from bench_inference import machine_lines, test_image


def timed(call) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--previous", required=True, help="checkpoint to compare with")
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    image = test_image(args.size)
    current, previous = nu.load_model("em-membranes"), nu.load_model(args.previous)
    all_eight = nu.load_model("em-membranes")
    all_eight.metadata["test_time_transforms"] = "dihedral"
    methods = {
        f"bundled, as Predict runs it ({current.info.test_time_transforms})": lambda: nu.predict(
            image, current, device="cpu"
        ),
        "bundled, all 8 rotations and flips": lambda: nu.predict(
            image, all_eight, device="cpu", test_time_augmentation=True
        ),
        "bundled, one pass (--no-tta)": lambda: nu.predict(
            image, current, device="cpu", test_time_augmentation=False
        ),
        "previous, one pass": lambda: nu.predict(
            image, previous, device="cpu", test_time_augmentation=False
        ),
    }
    for call in methods.values():
        call()  # warm-up
    runs: dict[str, list[float]] = {name: [] for name in methods}
    load = [os.getloadavg()[0]]
    for _ in range(args.repeats):
        for name, call in methods.items():
            runs[name].append(round(timed(call), 3))
        load.append(os.getloadavg()[0])
    medians = {name: statistics.median(values) for name, values in runs.items()}
    reference = medians["previous, one pass"]
    result = {
        "image": [args.size, args.size],
        "features": {
            "bundled": current.config.base_features,
            "previous": previous.config.base_features,
        },
        "runs_s": runs,
        "median_s": medians,
        "mpx_per_s": {name: round(args.size**2 / 1e6 / m, 3) for name, m in medians.items()},
        "time_vs_previous": {name: round(m / reference, 2) for name, m in medians.items()},
        "load_1min": [round(x, 2) for x in load],
        "threads": args.threads,
        "machine": machine_lines(args.threads),
    }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()

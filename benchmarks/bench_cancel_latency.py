"""How long Cancel takes to end Predict's mask of a large image (the post-processing step).

The Predict section checks its stop flag between post-processing steps, and since
2026-12-05 also inside the mask (:mod:`napari_unet.core.cancellation`: between the
closing's distance transform, seeds, watershed and lines, the growth and the filling).
This script makes `em-membranes`' probabilities of a mosaic of ISBI slices once, then
runs :func:`~napari_unet.core.postprocess.prediction_mask` with Predict's steps inside
``stopping(flag)`` while another thread sets the flag after a delay, and records how long
the mask went on after it: the wait a user sees after pressing Cancel. ``--delays`` are
fractions of the whole mask's time; ``whole`` is that time, the wait before (a Cancel
pressed at the mask's start waited for all of it).

    python benchmarks/bench_cancel_latency.py --size 2048 --repeats 3 \\
        --json benchmarks/results/cancel_latency.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from pathlib import Path

import numpy as np

from napari_unet.config import PredictConfig
from napari_unet.core.cancellation import Cancelled, stopping
from napari_unet.core.checkpoint import load_model
from napari_unet.core.inference import predict
from napari_unet.core.postprocess import mask_steps, prediction_mask
from napari_unet.io.data import load_isbi


def mosaic(size: int) -> np.ndarray:
    """A ``size`` square of ISBI slices 0-19 side by side (512 px each)."""
    images, _ = load_isbi()
    per_side = -(-size // 512)
    rows = [np.hstack(images[i * per_side : (i + 1) * per_side]) for i in range(per_side)]
    return np.vstack(rows)[:size, :size]


def wait_after(probabilities: np.ndarray, steps: dict, delay: float) -> float:
    """Seconds the mask went on after its flag was set ``delay`` seconds in."""
    flag = threading.Event()
    set_at: list[float] = []

    def set_flag() -> None:
        time.sleep(delay)
        set_at.append(time.perf_counter())
        flag.set()

    setter = threading.Thread(target=set_flag)
    setter.start()
    try:
        with stopping(flag):
            prediction_mask(probabilities, **steps)
    except Cancelled:
        pass
    ended = time.perf_counter()
    setter.join()
    return ended - set_at[0] if set_at and set_at[0] < ended else 0.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--delays", type=float, nargs="+", default=[0.05, 0.25, 0.5, 0.75])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    model = load_model("em-membranes")
    per_side = -(-args.size // 512)
    if per_side * per_side > 20:
        raise SystemExit("--size above 2048 needs more slices than ISBI's 20")
    probabilities = predict(mosaic(args.size), model, config=PredictConfig())
    steps = mask_steps(model, PredictConfig())._asdict()
    wholes = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        prediction_mask(probabilities, **steps)
        wholes.append(time.perf_counter() - start)
    whole = statistics.median(wholes)
    rows = []
    print(f"| delay (share of the mask) | wait after Cancel, s (median of {args.repeats}) |")
    print("|---|---:|")
    for share in args.delays:
        waits = [wait_after(probabilities, steps, share * whole) for _ in range(args.repeats)]
        rows.append({"share": share, "waits": waits, "median": statistics.median(waits)})
        print(f"| {share:.2f} | {statistics.median(waits):.2f} |")
    print(f"\nthe whole mask (the longest wait before): {whole:.2f} s; {args.size}²")
    if args.json:
        record = {
            "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
            "size": args.size,
            "whole_seconds": wholes,
            "delays": rows,
        }
        args.json.write_text(json.dumps(record, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

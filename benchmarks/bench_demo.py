"""``napari-unet demo`` on several synthetic images: does its loop help beyond its own image?

The demo (``napari_unet.cli.demo``) runs 3 rounds of simulated corrective strokes on the
left half of a synthetic nuclei image, fine-tunes the bundled ``nuclei`` model and scores
the right half, never painted. Its own image is seed 2015; this runs the same demo on
other seeds and prints, per image, F1 at IoU 0.5 and the mean matched IoU of the right
half (and of the whole image) before and after, then the medians of the paired changes.

    python benchmarks/bench_demo.py --seeds 2015 2016 2017 2018 2019 2020 2021 2022 2023 \\
        --threads 1 --out benchmarks/results/demo_seeds.jsonl
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import tempfile
from pathlib import Path

import numpy as np
import torch

from napari_unet.cli import build_parser
from napari_unet.cli.demo import DEMO_ROUNDS, run_demo
from napari_unet.config import FINETUNE_ITERATIONS


def demo_scores(seed: int, rounds: int, iterations: int) -> dict:
    """The demo's summary for one image, run quietly in a temporary folder."""
    with tempfile.TemporaryDirectory() as folder:
        output = str(Path(folder) / "demo")
        options = ["--seed", str(seed), "--rounds", str(rounds), "--iterations", str(iterations)]
        # the command's own defaults for everything else
        args = build_parser().parse_args(["demo", "--output", output, *options, "--device", "cpu"])
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            return run_demo(args)


def _line(seed: int, summary: dict) -> str:
    first, last = summary["rounds"][0], summary["rounds"][-1]
    cells = []
    for part in ("held_out", "whole_image"):
        for key in ("f1", "mean_matched_iou"):
            cells.append(f"{first[part][key]:.3f} → {last[part][key]:.3f}")
    return f"| {seed} | " + " | ".join(cells) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(2015, 2024)))
    parser.add_argument("--rounds", type=int, default=DEMO_ROUNDS)
    parser.add_argument("--iterations", type=int, default=FINETUNE_ITERATIONS)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=None, help="append one JSON line per image")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print("| image seed | F1, right half | IoU, right half | F1, whole | IoU, whole |")
    print("|---|---|---|---|---|")
    gains = []
    for seed in args.seeds:
        summary = demo_scores(seed, args.rounds, args.iterations)
        print(_line(seed, summary), flush=True)
        before, after = summary["before"], summary["after"]
        gains.append([after[k] - before[k] for k in ("f1", "mean_matched_iou")])
        if args.out:
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            with open(args.out, "a") as handle:
                handle.write(json.dumps({"seed": seed, "summary": summary}) + "\n")
    f1, iou = np.median(np.array(gains), axis=0)
    print(f"\nmedian change on the right half: F1 {f1:+.3f}, mean matched IoU {iou:+.3f}")


if __name__ == "__main__":
    main()

"""Fine-tuning the bundled ``nuclei`` model on scribbles: F1 and IoU before and after.

For each seed, a synthetic nuclei image like the demo's (384 x 384, 67 nuclei,
radii 10-16 px, 60 photons) gets scribbles as ``napari-unet demo`` painted them until
2026-12-03 (1 % of the pixels, 2 px strokes, background painted in the gaps between
touching nuclei).
The bundled model predicts it, is fine-tuned for 30 s at each learning rate (a
fresh copy each time) and predicts it again; instances are scored against the
truth (F1 at IoU 0.5, mean IoU of the matched pairs). Prints a JSON line per run,
with the iteration whose weights finetune kept; ``--log PATH`` also appends each line there.

    python benchmarks/bench_finetune_bundled.py [--seeds 11 12 13] [--rates 1e-3 3e-4]
        [--log benchmarks/results/finetune_bundled.jsonl]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from napari_unet.cli.demo import _scores, _segment
from napari_unet.config import TrainConfig
from napari_unet.core.checkpoint import load_model
from napari_unet.io.data import simulate_scribbles, synthetic_nuclei
from napari_unet.training.loop import finetune
from napari_unet.training.weights import annotation_from_instances, separate_touching


def sample(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Image, true instances and scribbles, as ``demo_sample`` made them until 2026-12-03."""
    image, truth = synthetic_nuclei(
        shape=(384, 384), n_nuclei=67, rng=seed, radius_range=(10.0, 16.0), photons=60.0
    )
    scribbles = simulate_scribbles(
        annotation_from_instances(truth), np.random.default_rng(seed), fraction=0.01,
        stroke_width=2,
    )  # fmt: skip
    scribbles[(truth > 0) & (separate_touching(truth) == 0)] = 1
    return image, truth, scribbles


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[11, 12, 13])
    parser.add_argument("--rates", type=float, nargs="+", default=[1e-3, 3e-4])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--log", type=Path, default=None, help="append a JSON line per run here")
    args = parser.parse_args()
    torch.set_num_threads(2)
    for seed in args.seeds:
        image, truth, scribbles = sample(seed)
        before = _scores(_segment(image, load_model("nuclei"), "cpu", "before")["instances"], truth)
        for rate in args.rates:
            model = load_model("nuclei")
            config = TrainConfig(
                seconds=args.seconds,
                finetune_iterations=None,  # a time budget alone, as when this was measured
                device="cpu",
                learning_rate=rate,
                seed=0,
            )
            for _step in finetune(model, [image], [scribbles], config):
                pass
            history = model.metadata["training_history"][-1]
            after = _scores(_segment(image, model, "cpu", "after")["instances"], truth)
            row = {"seed": seed, "learning_rate": rate, "iterations": history["iterations"]}
            row["kept_weights_iteration"] = history["kept_weights_iteration"]
            line = json.dumps({**row, "before": before, "after": after})
            print(line, flush=True)
            if args.log is not None:
                with args.log.open("a") as log:
                    log.write(line + "\n")


if __name__ == "__main__":
    main()

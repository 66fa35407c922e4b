"""Which network width gives `em-membranes` the best accuracy per CPU second? (issue 17)

Trains a fresh depth-4 valid U-Net of ``--features`` base features on ISBI 2012 slices
00-14 (dense labels) for a fixed wall-clock budget, with the bundled recipe's first
phase (patch 380, batch 2, class balance, learning rate 1e-3) but a cosine decay over
the budget so every width ends its schedule. Then scores the mask Predict shows (gaps
closed, cells grown to a background threshold) on the validation slices 15-16 at the
thresholds 0.5-0.9, picks the threshold there (lowest pixel error with a Rand error no
worse than at 0.5 by more than 0.005, the rule of ``scripts/calibrate_bundled.py``),
and scores the never-used slices 17-19 once at that threshold.

Run the widths side by side, one thread each, so that they share the machine's load::

    python benchmarks/bench_width.py --features 16 --out benchmarks/results/width.jsonl &
    python benchmarks/bench_width.py --features 32 --out benchmarks/results/width.jsonl &

``--score CHECKPOINT`` skips the training and scores a saved network (``--save``) the same
way; with ``--tta`` its probabilities are averaged over the 8 rotations and flips, and the
threshold is chosen on the validation slices for those probabilities.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

# isort: off
import napari_unet as nu  # first: it sets PyTorch's allocator options before torch loads
import numpy as np
import torch

# isort: on
from napari_unet.core.postprocess import prediction_mask
from napari_unet.evaluation.metrics import evaluate
from napari_unet.evaluation.thresholds import guarded_threshold
from napari_unet.io.data import load_isbi
from napari_unet.training.weights import annotation_from_binary

THRESHOLDS = [0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9]
RAND_GUARD = 0.005


def train(features: int, minutes: float, seed: int) -> tuple[nu.UNet, dict]:
    images, labels = load_isbi(range(15))
    annotations = [annotation_from_binary(label) for label in labels]
    architecture = nu.ModelConfig(depth=4, base_features=features, padding="valid")
    model = nu.new_model(architecture, seed=seed)
    config = nu.TrainConfig(
        seconds=minutes * 60, patch_size=380, batch_size=2, learning_rate=1e-3,
        lr_schedule="cosine", seed=seed, device="cpu",
    )  # fmt: skip
    for _ in nu.finetune(
        model, list(images), annotations, config,
        weights=nu.WeightConfig(class_balance=True), report_every=50,
    ):  # fmt: skip
        pass
    return model, model.metadata["training_history"][-1]


def evaluation(model: nu.UNet, tta: bool) -> dict:
    """Threshold chosen on slices 15-16, then slices 17-19 scored once at it."""
    images, labels = load_isbi(range(15, 20))
    probabilities = [
        nu.predict(image, model, tile_size=572, device="cpu", test_time_augmentation=tta)
        for image in images
    ]
    validation = {t: scores(probabilities[:2], labels[:2], t) for t in THRESHOLDS}
    threshold = guarded_threshold(validation, "pixel_error", "rand_error", RAND_GUARD)
    return {
        "test_time_augmentation": tta,
        "validation_15_16": {str(t): v for t, v in validation.items()},
        "threshold": threshold,
        "test_17_19_at_threshold": scores(probabilities[2:], labels[2:], threshold),
        "test_17_19_at_0.5": scores(probabilities[2:], labels[2:], 0.5),
    }


def scores(probabilities, labels, threshold: float) -> dict[str, float]:
    rows = [
        evaluate(prediction_mask(p, background_threshold=threshold), label, kind="membranes")
        for p, label in zip(probabilities, labels)
    ]
    return {key: float(np.mean([r[key] for r in rows])) for key in ("pixel_error", "rand_error")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--features", type=int, default=None, help="train a new network")
    parser.add_argument("--score", default=None, help="score this checkpoint instead")
    parser.add_argument("--tta", action="store_true", help="test-time augmentation")
    parser.add_argument("--minutes", type=float, default=40.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=None, help="append one JSON line")
    parser.add_argument("--save", default=None, help="write the trained checkpoint here")
    args = parser.parse_args()
    if (args.features is None) == (args.score is None):
        parser.error("give --features (train) or --score (a saved checkpoint)")
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    if args.score:
        model = nu.load_model(args.score)
        record = {"checkpoint": args.score, "features": model.config.base_features}
    else:
        model, history = train(args.features, args.minutes, args.seed)
        if args.save:
            nu.save_model(model, args.save)
        record = {
            "features": args.features,
            "parameters": sum(p.numel() for p in model.parameters()),
            "minutes": args.minutes,
            "seed": args.seed,
            "iterations": history["iterations"],
            "s_per_iteration": round(history["seconds"] / max(history["iterations"], 1), 3),
        }
    record.update(threads=args.threads, **evaluation(model, args.tta), started=started)
    record["load_before"] = [round(x, 2) for x in load_before]
    record["load_after"] = [round(x, 2) for x in os.getloadavg()]
    line = json.dumps(record)
    print(line, flush=True)
    if args.out:
        with Path(args.out).open("a") as handle:
            handle.write(line + "\n")


if __name__ == "__main__":
    main()

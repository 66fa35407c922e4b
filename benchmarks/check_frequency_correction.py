"""Offline check: does a class-frequency (prior) correction lower the ISBI pixel error?

Not a napari-unet feature (it was tried and not adopted; see
``results_isbi_scribbles.md``, session 2, finding 8). For checkpoints saved by
``bench_isbi_scribbles.py --save PREFIX``, it estimates the membrane frequency by
EM (Saerens, Latinne & Decaestecker, Neural Computation 14, 2002) from the
network's posteriors, assuming it was trained under equal class frequencies
(balanced scribbles, no class balance), moves the posteriors to the estimate with
Bayes' rule, and scores the held-out slices 15-19:

* ``train``: frequency estimated on training slices 0, 3, 6, 9, 12;
* ``per_image``: estimated on each held-out slice itself.

    python benchmarks/check_frequency_correction.py PREFIX_60s.safetensors ...
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from napari_unet import load_model, predict
from napari_unet.core.inference import default_tile_size
from napari_unet.io.data import load_isbi


def em_frequency(membrane: np.ndarray, training: float = 0.5, iterations: int = 200) -> float:
    """Membrane frequency of the pixels behind the posteriors ``membrane`` (EM)."""
    estimate = training
    for _ in range(iterations):
        adjusted = move_posteriors(membrane, training, estimate)
        updated = float(adjusted.mean())
        if abs(updated - estimate) < 1e-6:
            break
        estimate = updated
    return estimate


def move_posteriors(membrane: np.ndarray, training: float, target: float) -> np.ndarray:
    """Membrane posteriors moved from frequency ``training`` to ``target`` (Bayes' rule)."""
    yes = membrane * target / training
    no = (1 - membrane) * (1 - target) / (1 - training)
    return yes / (yes + no)


def check(path: str) -> dict:
    model = load_model(path)
    tile = default_tile_size(model, 572)
    train_images, _ = load_isbi(range(0, 15, 3))
    images, labels = load_isbi(range(15, 20))
    train_membrane = np.stack([predict(i, model, tile_size=tile)[0] for i in train_images])
    membrane = np.stack([predict(i, model, tile_size=tile)[0] for i in images])
    truth = labels == 0
    from_training = em_frequency(train_membrane)
    per_image = [em_frequency(m) for m in membrane]
    moved = [move_posteriors(m, 0.5, f) for m, f in zip(membrane, per_image)]
    return {
        "model": path,
        "pixel_error": float(np.mean((membrane > 0.5) != truth)),
        "train_estimate": round(from_training, 4),
        "train_pixel_error": float(
            np.mean((move_posteriors(membrane, 0.5, from_training) > 0.5) != truth)
        ),
        "per_image_estimates": [round(f, 4) for f in per_image],
        "per_image_pixel_error": float(np.mean([(m > 0.5) != t for m, t in zip(moved, truth)])),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for path in args.checkpoints:
        print(json.dumps(check(path)), flush=True)


if __name__ == "__main__":
    main()

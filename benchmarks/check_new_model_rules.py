"""Check on slices not used to choose them: a new model's gaps left open, cells filled.

The two rules Predict applies to a new ISBI model (``model.info.close_gaps`` false once its
strokes gave it a threshold; ``core.boundaries.fill_enclosed``) were found by looking at the
scored slices 15-19 of ``bench_scratch_vs_forest.py``. Here new models and the forest train on
scribbles of slices 0-9 only (the same scribble simulation, 2 % of the pixels) and are scored
on slices 10-14, which played no part in choosing the rules. One JSON line per seed: pixel and
Rand error of Predict's mask and of the variants on the same probabilities, and of the forest.

    python benchmarks/check_new_model_rules.py --seeds 0 1 2 3 --out FILE.jsonl
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from bench_scratch_vs_forest import _train, forest_features

from napari_unet import predict
from napari_unet.core.inference import default_tile_size
from napari_unet.core.postprocess import prediction_mask
from napari_unet.evaluation.metrics import evaluate
from napari_unet.io.data import load_isbi, simulate_scribbles
from napari_unet.training.weights import annotation_from_binary

TRAIN_SLICES, TEST_SLICES = range(10), range(10, 15)


def _score(masks: list[np.ndarray], labels) -> list[float]:
    results = [evaluate(mask, label, kind="membranes") for mask, label in zip(masks, labels)]
    return [
        round(float(np.mean([r[key] for r in results])), 4) for key in ("pixel_error", "rand_error")
    ]


def _forest_masks(seed: int, images, scribbles, test_images) -> list[np.ndarray]:
    from sklearn.ensemble import RandomForestClassifier

    features, targets = [], []
    for image, scribble in zip(images, scribbles):
        stack = forest_features(image)
        features.append(stack[scribble > 0])
        targets.append(scribble[scribble > 0])
    forest = RandomForestClassifier(n_estimators=100, n_jobs=2, random_state=seed)
    forest.fit(np.concatenate(features), np.concatenate(targets))
    masks = []
    for image in test_images:
        stack = forest_features(image)
        proba = forest.predict_proba(stack.reshape(-1, stack.shape[-1]))
        membrane = proba[:, list(forest.classes_).index(1)].reshape(image.shape)
        masks.append(np.where(membrane >= 0.5, 1, 2).astype(np.uint8))
    return masks


def run(seed: int) -> dict:
    images, labels = load_isbi(TRAIN_SLICES)
    rng = np.random.default_rng(seed)
    scribbles = [
        simulate_scribbles(annotation_from_binary(label), rng, fraction=0.02, stroke_width=1)
        for label in labels
    ]
    test_images, test_labels = load_isbi(TEST_SLICES)
    start = time.perf_counter()
    model, _, _ = _train("new", seed, 750, list(images), scribbles)
    train_s = time.perf_counter() - start
    info = model.info
    tile = default_tile_size(model, 572)
    membrane = [predict(image, model, tile_size=tile)[0] for image in test_images]

    def masks(closing: bool, filling: bool) -> list[np.ndarray]:
        return [
            prediction_mask(
                np.stack([p, 1 - p]),
                close_boundaries=closing,
                background_threshold=info.background_threshold,
                fill_holes=filling,
            )
            for p in membrane
        ]

    plain = [np.where(p >= 0.5, 1, 2).astype(np.uint8) for p in membrane]
    return {
        "seed": seed,
        "train_s": round(train_s, 1),
        "background_threshold": round(info.background_threshold, 4),
        "close_gaps": info.close_gaps,
        "plain": _score(plain, test_labels),
        "predict": _score(masks(info.close_gaps, True), test_labels),
        "unfilled": _score(masks(info.close_gaps, False), test_labels),
        "closed_filled": _score(masks(True, True), test_labels),
        "closed_unfilled": _score(masks(True, False), test_labels),
        "forest": _score(_forest_masks(seed, images, scribbles, test_images), test_labels),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=None, help="append one JSON line per seed")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for seed in args.seeds:
        row = run(seed)
        print(json.dumps(row), flush=True)
        if args.out:
            with open(args.out, "a") as out:
                out.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()

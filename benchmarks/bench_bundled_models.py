"""Accuracy of the bundled models on data they were not trained on.

- ``em-membranes``: ISBI 2012 slices 15-19 (trained on 00-14): pixel error, Rand error and
  information error (ISBI 2012 definitions, :func:`napari_unet.evaluation.metrics.evaluate`).
- ``nuclei``: the right half (x >= 256) of the DSB 2018 image (trained on the left half plus
  synthetic images): F1 at IoU 0.5 (one-to-one matching), instances by distance watershed.

    python benchmarks/bench_bundled_models.py
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from napari_unet import class_mask, instance_labels, load_model, predict
from napari_unet.core.inference import default_tile_size
from napari_unet.evaluation.matching import match_instances
from napari_unet.evaluation.metrics import evaluate
from napari_unet.io.data import load_dsb2018, load_isbi


def em_scores() -> dict[str, float]:
    model = load_model("em-membranes")
    images, labels = load_isbi(range(15, 20))
    rows = []
    for image, label in zip(images, labels):
        mask = class_mask(predict(image, model, tile_size=default_tile_size(model)))
        rows.append(evaluate(mask, label, kind="membranes"))
    keys = ("pixel_error", "rand_error", "info_error")
    return {
        key: round(float(np.mean([row[key] for row in rows])), 4) for key in keys if key in rows[0]
    }


def nuclei_scores() -> dict[str, float]:
    model = load_model("nuclei")
    image, truth = load_dsb2018()
    held_out = slice(256, None)
    probabilities = predict(image, model, tile_size=default_tile_size(model, 300))
    mask = class_mask(probabilities)
    results = {}
    for method in ("components", "watershed"):
        instances = instance_labels(mask, method=method)[:, held_out]
        scores = match_instances(instances, truth[:, held_out], threshold=0.5)
        results[f"f1_{method}"] = round(float(scores["f1"]), 4)
        results[f"mean_iou_{method}"] = round(float(scores["mean_matched_iou"]), 4)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(json.dumps({"em-membranes": em_scores(), "nuclei": nuclei_scores()}, indent=2))


if __name__ == "__main__":
    main()

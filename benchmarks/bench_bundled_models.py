"""Accuracy of the bundled models on data they were not trained on, part by part.

- ``em-membranes`` (trained on ISBI 2012 slices 00-14): pixel error, Rand error and
  information error (ISBI 2012 definitions, :func:`napari_unet.evaluation.metrics.evaluate`),
  means over slices 15-16 (the validation part ``scripts/train_validated.py`` selects
  weights on), 17-19 (never used) and 15-19 (the figure quoted before selection existed).
- ``nuclei`` (trained on the DSB 2018 left half plus synthetic images): F1 at IoU 0.5
  (one-to-one matching) and mean matched IoU on the top right quarter (validation), the
  bottom right quarter (never used) and the whole right half; instances as Predict makes
  them (connected components, objects under 15 px dropped) and by distance watershed.

Each with and without test-time augmentation (the 8 rotations and flips), and with the
mask Predict shows (rows without a suffix: gaps in boundaries closed,
``PredictConfig.close_boundaries``, and objects grown up to the model's background
threshold, ``model.info.background_threshold``: 0.8 for ``em-membranes``, chosen by
``scripts/calibrate_bundled.py`` on slices 00-16), the same at threshold 0.5 (rows marked
``threshold 0.5``) and the plain most-probable class (rows marked ``gaps kept``).

    python benchmarks/bench_bundled_models.py --threads 1 \\
        --out benchmarks/results/bundled_models.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from napari_unet import class_mask, instance_labels, load_model, predict
from napari_unet.core.postprocess import prediction_mask
from napari_unet.evaluation.matching import match_instances
from napari_unet.evaluation.metrics import evaluate
from napari_unet.io.data import load_dsb2018, load_isbi

EM_PARTS = {"15-16 (validation)": range(15, 17), "17-19 (never used)": range(17, 20)}
NUCLEI_PARTS = {
    "top right (validation)": slice(0, 128),
    "bottom right (never used)": slice(128, None),
    "right half": slice(None),
}


#: How the class mask is made from the probabilities, by row suffix.
VARIANTS = {"": "predict", ", threshold 0.5": "closed", ", gaps kept": "plain"}


def _mask(probabilities: np.ndarray, variant: str, threshold: float) -> np.ndarray:
    if variant == "plain":
        return class_mask(probabilities)
    grow = threshold if variant == "predict" else 0.5
    return prediction_mask(probabilities, background_threshold=grow)


def em_scores(tta: bool) -> dict[str, dict[str, dict[str, float]]]:
    model = load_model("em-membranes")
    images, labels = load_isbi(range(15, 20))
    probabilities = [predict(image, model, test_time_augmentation=tta) for image in images]
    parts = {**EM_PARTS, "15-19": range(15, 20)}
    keys = ("pixel_error", "rand_error", "info_error")
    results = {}
    for suffix, variant in VARIANTS.items():
        threshold = model.info.background_threshold
        rows = [
            evaluate(_mask(p, variant, threshold), label, "membranes")
            for p, label in zip(probabilities, labels)
        ]
        results[suffix] = {
            name: {key: round(float(np.mean([rows[i - 15][key] for i in part])), 4) for key in keys}
            for name, part in parts.items()
        }
    return results


def nuclei_scores(tta: bool) -> dict[str, dict[str, dict[str, float]]]:
    model = load_model("nuclei")
    image, truth = load_dsb2018()
    probabilities = predict(image, model, test_time_augmentation=tta)
    results: dict[str, dict[str, dict[str, float]]] = {}
    for suffix, variant in VARIANTS.items():
        mask = _mask(probabilities, variant, model.info.background_threshold)
        results[suffix] = {}
        for name, rows in NUCLEI_PARTS.items():
            part = {}
            for method in ("components", "watershed"):
                instances = instance_labels(mask, method=method)[rows, 256:]
                scores = match_instances(instances, truth[rows, 256:], threshold=0.5)
                part[f"f1_{method}"] = round(float(scores["f1"]), 4)
                part[f"mean_iou_{method}"] = round(float(scores["mean_matched_iou"]), 4)
            results[suffix][name] = part
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=None, help="write the JSON here too")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    result = {}
    for name, score in (("em-membranes", em_scores), ("nuclei", nuclei_scores)):
        for tta in (False, True):
            for suffix, scores in score(tta).items():
                result[f"{name}{' + tta' if tta else ''}{suffix}"] = scores
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()

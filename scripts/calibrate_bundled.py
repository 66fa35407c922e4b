"""Choose a bundled model's background threshold on data that is not its test part.

Usage::

    python scripts/calibrate_bundled.py em-membranes --write
    python scripts/calibrate_bundled.py nuclei

Predict calls a pixel background only where its probability exceeds the model's
``background_threshold`` and grows the objects into the rest without joining them
(``napari_unet.core.boundaries.grow_objects``). The threshold is chosen here, once,
on every annotated part of ``../shared/data`` except the model's test part:

- ``em-membranes``: ISBI slices 00-16 (its training slices 00-14 and validation slices
  15-16); lowest mean pixel error, the Rand error no worse than at 0.5 by more than
  0.005. Test part (scored once, for the report): slices 17-19.
- ``nuclei``: the DSB 2018 image without its test quarter (the left half and the top
  right quarter); highest mean matched IoU, F1 at IoU 0.5 no worse than at 0.5.
  Test part: the bottom right quarter.

The candidates run from 0.5 (the most probable class) to 0.9 in steps of 0.05. The
table and the chosen value are printed as JSON; ``--write`` stores the value in the
bundled checkpoint (weights unchanged) when it is not 0.5.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from napari_unet import instance_labels, load_model, predict, prediction_mask, save_model
from napari_unet.core.inference import default_tile_size
from napari_unet.evaluation.matching import match_instances
from napari_unet.evaluation.metrics import evaluate
from napari_unet.evaluation.thresholds import guarded_threshold
from napari_unet.io.data import load_dsb2018, load_isbi

MODELS = Path(__file__).resolve().parents[1] / "src" / "napari_unet" / "models"
CANDIDATES = [round(0.5 + 0.05 * step, 2) for step in range(9)]
GUARD_TOLERANCE = {"em-membranes": 0.005, "nuclei": 0.0}
CHOSEN_ON = {
    "em-membranes": "ISBI slices 00-16 (scripts/calibrate_bundled.py); test: 17-19",
    "nuclei": "DSB 2018 left half and top right quarter; test: bottom right quarter",
}


def em_parts(model) -> dict[str, tuple[list[np.ndarray], list[np.ndarray]]]:
    """Probabilities and labels of the calibration and test slices."""
    images, labels = load_isbi(range(20))
    tile = default_tile_size(model, 572)
    probabilities = [predict(image, model, tile_size=tile) for image in images]
    return {
        "calibration": (probabilities[:17], list(labels[:17])),
        "test": (probabilities[17:], list(labels[17:])),
    }


def em_score(probabilities: list[np.ndarray], labels: list[np.ndarray], threshold: float) -> dict:
    rows = [
        evaluate(prediction_mask(p, background_threshold=threshold), label, kind="membranes")
        for p, label in zip(probabilities, labels)
    ]
    return {
        key: float(np.mean([row[key] for row in rows])) for key in ("pixel_error", "rand_error")
    }


#: (rows, columns) of the DSB image in each part; the calibration part has two pieces.
NUCLEI_PARTS = {
    "calibration": [(slice(None), slice(0, 256)), (slice(0, 128), slice(256, None))],
    "test": [(slice(128, None), slice(256, None))],
}


def nuclei_score(probabilities: np.ndarray, truth: np.ndarray, part: str, threshold: float) -> dict:
    mask = prediction_mask(probabilities, background_threshold=threshold)
    rows = []
    for window in NUCLEI_PARTS[part]:
        scores = match_instances(instance_labels(mask[window]), truth[window], threshold=0.5)
        rows.append((scores["f1"], scores["mean_matched_iou"]))
    f1, iou = np.mean(rows, axis=0)
    return {"f1_error": 1 - float(f1), "iou_error": 1 - float(iou)}


def calibrate(name: str) -> dict:
    """The threshold table on the calibration part, the choice, and the test scores."""
    model = load_model(name)
    if name == "em-membranes":
        parts = em_parts(model)

        def score(part: str, threshold: float) -> dict:
            return em_score(*parts[part], threshold)

        objective, guard = "pixel_error", "rand_error"
    else:
        image, truth = load_dsb2018()
        probabilities = predict(image, model, tile_size=default_tile_size(model, 572))

        def score(part: str, threshold: float) -> dict:
            return nuclei_score(probabilities, truth, part, threshold)

        objective, guard = "iou_error", "f1_error"
    table = [{"threshold": t, **score("calibration", t)} for t in CANDIDATES]
    by_threshold = {row["threshold"]: row for row in table}
    chosen = guarded_threshold(by_threshold, objective, guard, GUARD_TOLERANCE[name])
    test = {str(t): score("test", t) for t in sorted({0.5, chosen})}
    return {"model": name, "table": table, "chosen": chosen, "test": test}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", choices=sorted(CHOSEN_ON))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--write", action="store_true", help="store the choice in the model")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    result = calibrate(args.model)
    print(json.dumps(result, indent=1))
    if args.write and result["chosen"] != 0.5:
        model = load_model(args.model)
        model.metadata.pop("source", None)
        model.metadata["background_threshold"] = result["chosen"]
        model.metadata["background_threshold_chosen_on"] = CHOSEN_ON[args.model]
        output = save_model(model, MODELS / f"{args.model}.safetensors", half=True)
        print(f"wrote {output}")


if __name__ == "__main__":
    main()

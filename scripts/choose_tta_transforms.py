"""Choose which test-time transforms a bundled model asks Predict for, on validation data.

Usage::

    python scripts/choose_tta_transforms.py em-membranes --write
    python scripts/calibrate_bundled.py em-membranes --write   # the threshold, afterwards

A model whose checkpoint asks for test-time augmentation (``test_time_augmentation``)
averages its probabilities over the 8 rotations and flips ("dihedral"), or over the 4
rotations ("rotations") when the checkpoint says ``test_time_transforms: rotations``:
half the passes, so half the time. The rule, fixed before it is applied: on the model's
validation slices (ISBI 15-16 for ``em-membranes``, never trained on), at the model's own
background threshold, keep the set with the fewest passes whose pixel error is no worse
than that of all 8 by more than 0.001 and whose Rand error is no worse by more than 0.005
(the tolerance ``calibrate_bundled.py`` allows the Rand error). The test slices (17-19)
are scored for the report only. ``--write`` stores the choice in the bundled checkpoint
(weights unchanged).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from napari_unet import load_model, predict, prediction_mask, save_model
from napari_unet.core.engine import TEST_TIME_TRANSFORMS
from napari_unet.core.inference import default_tile_size
from napari_unet.evaluation.metrics import evaluate
from napari_unet.evaluation.thresholds import cheapest_within
from napari_unet.io.data import load_isbi

MODELS = Path(__file__).resolve().parents[1] / "src" / "napari_unet" / "models"
PARTS = {"em-membranes": {"validation": range(15, 17), "test": range(17, 20)}}
TOLERANCE = {"pixel_error": 0.001, "rand_error": 0.005}


def scores(model, slices: range) -> dict[str, float]:
    """Mean pixel and Rand error over ISBI ``slices``, predicting as Predict does."""
    images, labels = load_isbi(slices)
    tile = default_tile_size(model, 572)
    threshold = model.info.background_threshold
    rows = []
    for image, label in zip(images, labels):
        probabilities = predict(image, model, tile_size=tile, test_time_augmentation=True)
        mask = prediction_mask(probabilities, background_threshold=threshold)
        rows.append(evaluate(mask, label, kind="membranes"))
    return {key: float(np.mean([row[key] for row in rows])) for key in TOLERANCE}


def choose(name: str) -> dict:
    """The validation and test scores of each transform set, and the set chosen."""
    model = load_model(name)
    table = {}
    for transforms, passes in TEST_TIME_TRANSFORMS.items():
        model.metadata["test_time_transforms"] = transforms
        start = time.perf_counter()
        validation = scores(model, PARTS[name]["validation"])
        seconds = time.perf_counter() - start
        table[transforms] = {
            "passes": len(passes),
            "validation": validation,
            "validation_seconds": round(seconds, 1),
            "test": scores(model, PARTS[name]["test"]),
        }
    chosen = cheapest_within(
        {transforms: row["validation"] for transforms, row in table.items()},
        {transforms: row["passes"] for transforms, row in table.items()},
        reference="dihedral",
        tolerance=TOLERANCE,
    )
    return {"model": name, "table": table, "chosen": chosen}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", choices=sorted(PARTS))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--write", action="store_true", help="store the choice in the model")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    result = choose(args.model)
    print(json.dumps(result, indent=1))
    if args.write:
        model = load_model(args.model)
        model.metadata.pop("source", None)
        model.metadata["test_time_transforms"] = result["chosen"]
        print(f"wrote {save_model(model, MODELS / f'{args.model}.safetensors', half=True)}")


if __name__ == "__main__":
    main()

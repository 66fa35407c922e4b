"""What closing the gaps in boundaries (and growing objects) costs next to the prediction.

For each bundled model, a 1024² image (tiled from the ISBI 2012 slice 15 or the DSB 2018
image) is predicted with ``napari_unet.predict`` and its mask made with
``core.postprocess.prediction_mask`` (gaps closed), alternately, three times; the medians
and their ratio are reported (the same process and load for both). For a model with a
background threshold (``em-membranes``: 0.8) the mask Predict shows also grows the objects
(``core.boundaries.grow_objects``): timed as ``closing_and_growing_s``. After a fine-tune,
Predict also keeps the separations of the image's last mask (``previous=``,
``core.continuity``): timed as ``with_last_mask_s``, with the plain mask as the last one.

    python benchmarks/bench_closing_cost.py --threads 1 --json benchmarks/results/closing_cost.json
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

import napari_unet as nu
from napari_unet.core.postprocess import prediction_mask
from napari_unet.io.data import load_dsb2018, load_isbi


def _images() -> dict[str, np.ndarray]:
    return {
        "em-membranes": np.tile(load_isbi([15])[0][0], (2, 2)),
        "nuclei": np.tile(load_dsb2018()[0], (4, 2)),
    }


def measure(repeats: int) -> dict[str, dict]:
    rows = {}
    for name, image in _images().items():
        model = nu.load_model(name)
        predict_s, closing_s, growing_s, memory_s = [], [], [], []
        threshold = model.info.background_threshold
        for _ in range(repeats):
            start = time.perf_counter()
            probabilities = nu.predict(image, model, device="cpu")
            predict_s.append(time.perf_counter() - start)
            start = time.perf_counter()
            last_mask = prediction_mask(probabilities)
            closing_s.append(time.perf_counter() - start)
            start = time.perf_counter()
            prediction_mask(probabilities, background_threshold=threshold)
            growing_s.append(time.perf_counter() - start)
            start = time.perf_counter()
            prediction_mask(probabilities, background_threshold=threshold, previous=last_mask)
            memory_s.append(time.perf_counter() - start)
        rows[name] = {
            "shape": list(image.shape),
            "predict_s": round(float(np.median(predict_s)), 2),
            "closing_s": round(float(np.median(closing_s)), 2),
            "closing_to_predict": round(float(np.median(closing_s) / np.median(predict_s)), 3),
            "background_threshold": threshold,
            "closing_and_growing_s": round(float(np.median(growing_s)), 2),
            "predict_mask_to_predict": round(float(np.median(growing_s) / np.median(predict_s)), 3),
            "with_last_mask_s": round(float(np.median(memory_s)), 2),
        }
        print(name, rows[name], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", default=None, help="write the results here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    load = "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    result = {"threads": args.threads, "load_before": load, "models": measure(args.repeats)}
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()

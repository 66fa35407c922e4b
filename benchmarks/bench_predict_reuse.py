"""What the Predict section saves when only the post-processing changed.

The Predict section keeps the last run's probabilities and, when the image, the model,
the tile size, the device and the test-time augmentation are unchanged, runs only the
post-processing (``napari_unet._widgets._predict_reuse``). For each bundled model a
2048² image (tiled from ISBI 2012 slice 15 or the DSB 2018 image) goes through the
section's own job (``_predict_job.predict_job``, the weight map on, as the section's
default) twice per repeat: afresh, then with the first run's probabilities and another
smallest instance; both times include the job's digests of the image and the model. The
medians of the repeats and their ratio are reported (the same process and load for both).
The first repeat also checks that the reused run's outputs equal a fresh run's with the
same settings (untimed).

    python benchmarks/bench_predict_reuse.py --repeats 5 --threads 2 \
        --json benchmarks/results/predict_reuse.json
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
from pathlib import Path

import numpy as np
import torch

import napari_unet as nu
from napari_unet._widgets._geometry import ImageGeometry
from napari_unet._widgets._predict_job import PredictionRequest, PredictionResult, predict_job
from napari_unet._widgets._predict_reuse import KnownProbabilities
from napari_unet.config import PredictConfig
from napari_unet.io.data import load_dsb2018, load_isbi


def _images() -> dict[str, np.ndarray]:
    return {
        "em-membranes": np.tile(load_isbi([15])[0][0], (4, 4)),
        "nuclei": np.tile(load_dsb2018()[0], (8, 4)),
    }


def _finish(request: PredictionRequest) -> tuple[float, PredictionResult]:
    """Seconds the job took (digesting the image and the model included), and its result."""
    start, job = time.perf_counter(), predict_job(request, threading.Event())
    while True:
        try:
            next(job)
        except StopIteration as stop:
            return time.perf_counter() - start, stop.value


def _check_equal(reused: PredictionResult, fresh: PredictionResult) -> None:
    """The reused run's outputs are a fresh run's, to the bit."""
    assert not fresh.reused
    for output in ("probabilities", "mask", "instances", "weights"):
        np.testing.assert_array_equal(getattr(reused, output), getattr(fresh, output), output)


def measure(repeats: int) -> dict[str, dict]:
    rows = {}
    for name, image in _images().items():
        model = nu.load_model(name)
        geometry = ImageGeometry(image.shape, None, False)
        fresh_s, reused_s = [], []
        for _ in range(repeats):
            config = PredictConfig(device="cpu")
            request = PredictionRequest(model, image, geometry, config)
            seconds, first = _finish(request)
            fresh_s.append(seconds)
            changed = config.replace(min_instance_size=config.min_instance_size + 10)
            known = KnownProbabilities(first.probabilities, first.contents, first.contrast_note)
            request = PredictionRequest(model, image, geometry, changed, known=known)
            seconds, reused = _finish(request)
            reused_s.append(seconds)
            assert reused.reused
            if len(reused_s) == 1:
                _check_equal(reused, _finish(PredictionRequest(model, image, geometry, changed))[1])
        rows[name] = {
            "shape": list(image.shape),
            "fresh_s": round(float(np.median(fresh_s)), 2),
            "post_processing_only_s": round(float(np.median(reused_s)), 2),
            "ratio": round(float(np.median(fresh_s) / np.median(reused_s)), 1),
            "repeats": repeats,
        }
        print(name, rows[name], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = measure(args.repeats)
    result = {
        "benchmark": "predict_reuse",
        "threads": args.threads,
        "cpu": os.uname().machine,
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "rows": rows,
    }
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()

"""The CUDA path on a GPU: agreement with the CPU, inference and training speed.

Issue 6's open row (512² inference and fine-tuning throughput on a GPU) and the mission's
"seconds on a GPU". Run on a machine with CUDA, from the repository root, the real data
in ``NAPARI_UNET_DATA`` (or ``../shared/data``)::

    python benchmarks/bench_gpu.py --out benchmarks/results/gpu.json

Sections (each written to ``--out`` as soon as it is done, so a run cut short keeps
what it measured):

* ``environment``: torch, the GPU, what ``devices.resolve_device("auto")`` picks.
* ``agreement``: each bundled model predicts a real image (DSB for ``nuclei``, ISBI slice
  15 for ``em-membranes``) on the CPU and on CUDA: the largest and mean difference of the
  probabilities, the share of pixels whose class differs and the object counts of
  Predict's mask on each.
* ``inference``: seconds per image of ``predict`` on CUDA (the model's own tile and
  batch), images of 512² and 2048² tiled from the real image; median of ``--repeats``
  after one warm-up call.
* ``finetune``: wall seconds of a fine-tune with the defaults (``TrainConfig(device=
  "cuda")``: 100 iterations for a trained model) of each bundled model on simulated
  scribbles of its own image; median of ``--repeats`` (seeds 0, 1, ...).
* ``new_model``: a new model (``config.NEW_MODEL_CONFIG``) trained for each of
  ``--new-seconds`` on the ISBI scribbles of ``bench_scratch_vs_forest.py`` (seed 0):
  iterations done, and the held-out pixel and Rand error of slices 15-19 of the most
  probable class (``bench_isbi_scribbles.held_out_scores``; on the CPU, seed 0 after 750
  iterations, about 60 s: 0.228 / 0.151).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

import napari_unet as nu
from napari_unet.config import NEW_MODEL_CONFIG
from napari_unet.core.checkpoint import bundled_models
from napari_unet.core.devices import resolve_device
from napari_unet.core.postprocess import class_mask, instance_labels, prediction_mask
from napari_unet.io.data import load_dsb2018, load_isbi, simulate_scribbles
from napari_unet.training.weights import annotation_from_binary, annotation_from_instances

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_isbi_scribbles import held_out_scores, scribbled_training_set


def real_image(name: str) -> tuple[np.ndarray, np.ndarray]:
    """A real image for bundled model ``name`` and its annotation (0 unlabelled,
    1 background, 2 object), both (Y, X)."""
    if name == "nuclei":
        image, instances = load_dsb2018()
        return image, annotation_from_instances(instances)
    images, labels = load_isbi([15])
    return images[0], annotation_from_binary(labels[0])


def environment() -> dict:
    """Versions, the GPU and the device the package picks by itself."""
    cuda = torch.cuda.is_available()
    return {
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "gpu": torch.cuda.get_device_name(0) if cuda else None,
        "gpu_memory_gib": round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1)
        if cuda
        else None,
        "auto_device": str(resolve_device("auto")),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
    }


def agreement(name: str, device: str) -> dict:
    """CPU against ``device`` on the same image and model."""
    model = nu.load_model(name)
    image, _ = real_image(name)
    on_cpu = nu.predict(image, model, device="cpu")
    on_device = nu.predict(image, model, device=device)
    difference = np.abs(on_cpu - on_device)

    def objects(probabilities: np.ndarray) -> int:
        mask = prediction_mask(probabilities, background_threshold=model.info.background_threshold)
        return int(instance_labels(mask, method="components").max())

    return {
        "model": name,
        "image_shape": list(image.shape),
        "max_abs_difference": float(difference.max()),
        "mean_abs_difference": float(difference.mean()),
        "class_differs_share": float((class_mask(on_cpu) != class_mask(on_device)).mean()),
        "objects_cpu": objects(on_cpu),
        "objects_device": objects(on_device),
    }


def _timed(function, repeats: int) -> list[float]:
    function()  # warm-up: kernels, allocator, cuDNN's choice of algorithms
    seconds = []
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        start = time.perf_counter()
        function()
        seconds.append(time.perf_counter() - start)
    return seconds


def inference_speed(name: str, device: str, sizes: list[int], repeats: int) -> list[dict]:
    """Seconds per image of ``predict`` on ``device`` at each size."""
    model = nu.load_model(name)
    image, _ = real_image(name)
    rows = []
    for size in sizes:
        reps = (-(-size // image.shape[0]), -(-size // image.shape[1]))
        tiled = np.tile(image, reps)[:size, :size].copy()
        seconds = _timed(lambda tiled=tiled: nu.predict(tiled, model, device=device), repeats)
        median = float(np.median(seconds))
        rows.append({
            "model": name, "size": size, "median_s": round(median, 4),
            "runs_s": [round(s, 4) for s in seconds],
            "megapixels_per_s": round(size * size / 1e6 / median, 2),
        })  # fmt: skip
    return rows


def finetune_speed(name: str, device: str, repeats: int) -> dict:
    """Wall seconds of a default fine-tune of bundled model ``name`` on scribbles."""
    image, annotation = real_image(name)
    seconds, iterations = [], []
    for seed in range(repeats + 1):  # the first run warms up and is not counted
        model = nu.load_model(name)
        scribbles = simulate_scribbles(annotation, np.random.default_rng(seed), fraction=0.02)
        start = time.perf_counter()
        nu.train(model, [image], [scribbles], nu.TrainConfig(device=device, seed=seed))
        if seed:
            seconds.append(time.perf_counter() - start)
            iterations.append(model.metadata["training_history"][-1]["iterations"])
    median = float(np.median(seconds))
    return {
        "model": name, "iterations": iterations, "runs_s": [round(s, 2) for s in seconds],
        "median_s": round(median, 2),
        "iterations_per_s": round(float(np.median(iterations)) / median, 1),
    }  # fmt: skip


def new_model_run(seconds: float, device: str, seed: int = 0) -> dict:
    """A new model trained ``seconds`` on the ISBI scribbles, scored on slices 15-19."""
    images, scribbles, _ = scribbled_training_set(seed)
    model = nu.new_model(NEW_MODEL_CONFIG, seed=seed)
    config = nu.TrainConfig(seconds=seconds, seed=seed, device=device)
    start = time.perf_counter()
    nu.train(model, images, scribbles, config, augment=nu.AugmentConfig(elastic=True))
    wall = time.perf_counter() - start
    entry = model.metadata["training_history"][-1]
    scores = held_out_scores(model)
    return {
        "seconds_budget": seconds, "seed": seed, "iterations": entry["iterations"],
        "wall_s": round(wall, 1), "pixel_error": round(scores["pixel_error"], 4),
        "rand_error": round(scores["rand_error"], 4),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 2048])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--new-seconds", type=float, nargs="*", default=[10.0, 30.0])
    parser.add_argument(
        "--sections", nargs="+", default=["agreement", "inference", "finetune", "new_model"]
    )
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    names = list(bundled_models())
    record: dict = {"command": " ".join(sys.argv), "environment": environment()}

    def save(section: str, value) -> None:
        record[section] = value
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(record, indent=1) + "\n")
        print(section, json.dumps(value), flush=True)

    save("environment", record["environment"])
    sections = {
        "agreement": lambda: [agreement(name, args.device) for name in names],
        "inference": lambda: [
            row
            for name in names
            for row in inference_speed(name, args.device, args.sizes, args.repeats)
        ],
        "finetune": lambda: [
            finetune_speed(name, args.device, min(args.repeats, 3)) for name in names
        ],
        "new_model": lambda: [new_model_run(s, args.device) for s in args.new_seconds],
    }
    for section in args.sections:
        start = time.perf_counter()
        try:
            save(section, sections[section]())
        except Exception as error:  # keep the other sections' figures
            save(section, {"error": f"{type(error).__name__}: {error}"})
        print(f"# {section}: {time.perf_counter() - start:.1f} s", flush=True)


if __name__ == "__main__":
    main()

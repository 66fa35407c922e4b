"""Does an out-of-core prediction interrupted on one device and resumed on another equal
an uninterrupted run? (GPU machines only: the resume record does not name the device.)

Runs ``predict_to_zarr`` on a mosaic of ISBI slices with the bundled ``em-membranes``:
once uninterrupted on CUDA, then stopped half-way on CUDA and resumed on CUDA, then stopped
half-way on CUDA and resumed on the CPU, and writes how many values of each output differ
from the uninterrupted run.

    python benchmarks/check_resume_devices.py --out resume_devices.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch

from napari_unet import load_model, predict_to_zarr
from napari_unet.core.inference import Cancelled
from napari_unet.io import _resume
from napari_unet.io.data import load_isbi
from napari_unet.io.outofcore import Notice, open_outputs

PROVENANCE = {"package_version": "check", "model_sha256": "em-membranes", "options": {}}


def mosaic(side: int) -> np.ndarray:
    """A (side, side) float32 image tiled from ISBI slices (512 x 512 each)."""
    slices = load_isbi()[0]
    rows = []
    for row in range(side // 512):
        rows.append(
            np.concatenate(
                [slices[(row * 7 + col) % len(slices)] for col in range(side // 512)], axis=1
            )
        )
    return np.concatenate(rows, axis=0).astype(np.float32)


def run(image, model, store, device, stop_half_way=False):
    """Predict into ``store`` on ``device``; stop once half its tiles are done. Returns the
    seconds taken and what the run said (its :class:`Notice` lines)."""
    stop, said = threading.Event(), []

    def progress(step):
        if isinstance(step, Notice):
            said.append(step.text)
        tiles = getattr(step, "stage", "") == "tiles"
        if stop_half_way and tiles and step.done >= step.total // 2:
            stop.set()

    model.to(device)
    started = time.perf_counter()
    try:
        predict_to_zarr(
            image, model, store, device=device, progress=progress, stop=stop, provenance=PROVENANCE
        )
    except Cancelled:
        pass
    return time.perf_counter() - started, said


def differences(store, reference) -> dict:
    outputs = open_outputs(store)
    return {
        name: int(np.count_nonzero(outputs[name][:] != expected))
        for name, expected in reference.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=4096)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--device", default="cuda", help="the first device (cpu to try it here)")
    args = parser.parse_args()
    image = mosaic(args.side)
    model = load_model("em-membranes")
    results: dict = {"side": args.side, "torch": torch.__version__}
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        results["seconds_uninterrupted_first"] = run(image, model, root / "ref.zarr", args.device)[
            0
        ]
        reference = {name: array[:] for name, array in open_outputs(root / "ref.zarr").items()}
        results["pixels"] = int(reference["mask"].size) if "mask" in reference else None
        for resumed_on in (args.device, "cpu"):
            store = root / f"resumed_{resumed_on}.zarr"
            run(image, model, store, args.device, stop_half_way=True)
            record = json.loads((_resume.partial_path(store) / _resume.RECORD_NAME).read_text())
            results[f"tiles_kept_for_{resumed_on}"] = record["done"]
            seconds, said = run(image, model, store, resumed_on)
            results[f"seconds_resumed_on_{resumed_on}"], results[f"said_on_{resumed_on}"] = (
                seconds,
                said,
            )
            results[f"differing_values_resumed_on_{resumed_on}"] = differences(store, reference)
        store = root / "cpu.zarr"
        results["seconds_uninterrupted_cpu"] = run(image, model, store, "cpu")[0]
        results["differing_values_cpu_uninterrupted"] = differences(store, reference)
    print(json.dumps(results, indent=1))
    args.out.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()

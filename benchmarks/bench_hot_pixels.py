"""Hot and saturated pixels against the normalisation's clip (``NormConfig.clip``).

A walkthrough (2026-12-05) found that 30 hot pixels (65535 in a dim 16-bit camera image)
took the bundled ``nuclei`` model's F1 on the DSB image from 0.882 to 0.459: the
percentile normalisation maps them to about 200, and the network's answer to such a
value spreads tens of pixels around it. This predicts the DSB image (``../shared/data``)
and damaged copies of it with ``nuclei``, with the normalised values clipped to
[-c, c] for each ``--clips`` value (``none``: not clipped), and prints F1 at IoU 0.5 and
the mean matched IoU of Predict's mask against the truth (whole image), and the largest
normalised value of each image. The real images of ``../shared/data`` are also
normalised to show how far they reach.

    python benchmarks/bench_hot_pixels.py [--clips none 10 5 3 2] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

import napari_unet as nu
from napari_unet.config import NormConfig
from napari_unet.core.normalization import normalization_stats, normalize
from napari_unet.evaluation.metrics import evaluate
from napari_unet.io.data import load_dsb2018, load_isbi


def damaged_images(image: np.ndarray, seed: int = 0) -> dict[str, np.ndarray]:
    """The DSB image as it is and with hot pixels, saturation and float outliers."""
    rng = np.random.default_rng(seed)
    spots = rng.integers(0, image.shape[0], 30), rng.integers(0, image.shape[1], 30)
    dim = image.astype(np.int64) + 100  # a camera's offset
    images = {"clean": image, "dim (offset 100)": dim.astype(np.uint16)}
    for count, value in ((1, 65535), (30, 4095), (30, 65535)):
        hot = dim.copy()
        hot[spots[0][:count], spots[1][:count]] = value
        images[f"{count} hot at {value}"] = hot.astype(np.uint16)
    scaled = image.astype(np.float32) / float(image.max()) * 0.01
    outliers = scaled.copy()
    outliers[spots[0][:10], spots[1][:10]] = 1e6
    images["float32 0-0.01"] = scaled
    images["float32, 10 at 1e6"] = outliers
    return images


def scores(model: nu.UNet, image: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """F1 at IoU 0.5 and mean matched IoU of Predict's instances of ``image``."""
    probabilities = nu.predict(image, model)
    mask = nu.prediction_mask(probabilities, **nu.mask_steps(model)._asdict())
    rows = evaluate(nu.instance_labels(mask), truth, kind="instances")["instances"]
    row = next(row for row in rows if abs(row["threshold"] - 0.5) < 1e-9)
    return round(float(row["f1"]), 4), round(float(row["mean_matched_iou"]), 4)


def reach(image: np.ndarray, norm: NormConfig) -> tuple[float, float]:
    """The smallest and largest normalised value of ``image`` (unclipped)."""
    normalised = normalize(image[None], *normalization_stats(image[None], norm))
    return round(float(normalised.min()), 3), round(float(normalised.max()), 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", nargs="+", default=["none", "10", "5", "3", "2"])
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    image, truth = load_dsb2018()
    model = nu.load_model("nuclei")
    isbi, _ = load_isbi()
    norm = NormConfig()
    ranges = {"dsb": reach(image, norm)}
    ranges["isbi (slices 00-19)"] = (
        min(reach(plane, norm)[0] for plane in isbi),
        max(reach(plane, norm)[1] for plane in isbi),
    )
    print("normalised range of the real images:", ranges)
    results = {"real_ranges": ranges, "rows": []}
    for name, picture in damaged_images(image).items():
        row = {"image": name, "reach": reach(picture, norm)}
        for clip in args.clips:
            value = None if clip == "none" else float(clip)
            model.metadata["normalization"] = NormConfig(clip=value).to_dict()
            row[f"clip {clip}"] = scores(model, picture, truth)
        print(row, flush=True)
        results["rows"].append(row)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()

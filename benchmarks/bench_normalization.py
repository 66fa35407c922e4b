"""Cost of the per-image normalisation statistics: NumPy's percentile against the histogram.

Issue 17 asks where a prediction's time goes besides the network. Since 2026-12-02 the
statistics of an 8- or 16-bit image come from a histogram
(:func:`napari_unet.core.normalization.histogram_percentiles`), bit for bit NumPy's
percentiles. This times, interleaved in rounds (median of ``--repeats``):

* **before**: the float64 copy of the (subsampled) image, the finiteness check and
  ``numpy.percentile``, i.e. ``normalization_stats`` until 2026-12-02;
* **after**: ``normalization_stats`` now;

on ``--size`` square uint8 and uint16 images, and checks that both give the same numbers.

    python benchmarks/bench_normalization.py [--size 2048] [--repeats 9] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from napari_unet.core.normalization import normalization_stats


def before(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``normalization_stats`` as it was: float64 sample, finiteness check, np.percentile."""
    step = max(1, int(np.sqrt(image.size / 4e6)))
    sample = np.asarray(image[::step, ::step], dtype=np.float64)[None]
    if not np.isfinite(sample).all():
        raise ValueError("non-finite")
    low, high = np.percentile(sample.reshape(1, -1), [1.0, 99.8], axis=1)
    scale = high - low
    return low, np.where(scale > 0, scale, np.maximum(np.abs(high), 1.0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    images = {
        "uint8": rng.integers(0, 256, (args.size, args.size)).astype(np.uint8),
        "uint16": rng.normal(2000, 300, (args.size, args.size)).clip(0, 65535).astype(np.uint16),
    }
    rows = {}
    for name, image in images.items():
        for a, b in zip(before(image), normalization_stats(image)):
            assert np.array_equal(a, b), f"{name}: the two paths differ"
        times: dict[str, list[float]] = {"before": [], "after": []}
        for _ in range(args.repeats):
            for label, function in (("before", before), ("after", normalization_stats)):
                start = time.perf_counter()
                function(image)
                times[label].append(time.perf_counter() - start)
        medians = {label: statistics.median(values) for label, values in times.items()}
        rows[name] = {
            "before_ms": round(1000 * medians["before"], 1),
            "after_ms": round(1000 * medians["after"], 1),
            "speed-up": round(medians["before"] / medians["after"], 1),
            "identical": True,
        }
    report = {
        "size": args.size,
        "repeats": args.repeats,
        "torch_threads": torch.get_num_threads(),
        "time": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "rows": rows,
    }
    print(json.dumps(report, indent=1))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()

"""Peak memory of a prediction's forward passes, per input pixel and base feature map.

Backs ``napari_unet._widgets._memory.ACTIVATION_BYTES``, the figure the Predict
section uses to refuse predictions that would not fit in memory. Each case runs
in a fresh process: a fresh U-Net (depth 3) predicts a random image, whole
(``tile_size=None``: one pass over the mirrored image) or tiled, and the growth of
the process's peak RSS over a 64 x 64 warm-up is divided by the window the
network saw at once (whole: the mirrored image; tiled: one tile, as the CPU takes
the tiles of a batch one after the other) and by the base feature maps. The outputs
(2 x 4 B per pixel) are subtracted first. ``--json PATH`` also writes the rows as JSON.

    python benchmarks/bench_forward_memory.py [--json benchmarks/results/forward_memory.json]
"""

from __future__ import annotations

import argparse
import subprocess
import sys

from raw_results import add_json_option, utc_now, write_json

CASES = [  # base features, image edge, tile size (0 = whole image), padding
    (8, 2048, 0, "same"),
    (16, 2048, 0, "same"),
    (16, 2048, 0, "valid"),
    (8, 2048, 256, "same"),
    (16, 4096, 572, "valid"),
    (16, 4096, 916, "valid"),
]

CHILD = """
import resource, sys, numpy as np, torch
from napari_unet import ModelConfig, predict
from napari_unet.core.checkpoint import new_model
features, size, tile = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]) or None
padding = sys.argv[4]
torch.set_num_threads(2)
model = new_model(ModelConfig(base_features=features, depth=3, padding=padding), seed=0)
image = np.random.default_rng(0).random((size, size)).astype(np.float32)
predict(image[:64, :64], model, tile_size=None)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
predict(image, model, tile_size=tile)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
window = (size + 2 * model.halo) ** 2 if tile is None else tile * tile
print((peak - base - size * size * 8) / window / features)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_json_option(parser, "forward_memory")
    args = parser.parse_args()
    started, rows = utc_now(), []
    print("| base features | image | tile | padding | bytes per window pixel and feature map |")
    print("|---|---|---|---|---|")
    for features, size, tile, padding in CASES:
        command = [sys.executable, "-c", CHILD, str(features), str(size), str(tile), padding]
        measured = float(subprocess.run(command, capture_output=True, text=True, check=True).stdout)
        where = f"{tile} px tiles" if tile else "whole image"
        print(f"| {features} | {size}² | {where} | {padding} | {measured:.1f} |")
        rows.append(
            {
                "base_features": features,
                "image": size,
                "tile": tile or None,
                "padding": padding,
                "bytes_per_window_pixel_and_feature_map": measured,
            }
        )
    write_json(args.json, {"cases": rows}, started=started)


if __name__ == "__main__":
    main()

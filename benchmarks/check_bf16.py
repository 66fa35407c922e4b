"""Screen a bfloat16 forward pass against float32 (issue 17): speed ratio and probability error.

    python benchmarks/check_bf16.py

One 572 x 572 tile through the bundled ``em-membranes`` model, 1 thread, median of 5 runs each,
alternating; the issue accepts a reduced-precision path only if probabilities stay within
1e-3 of float32.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from napari_unet import load_model


def forward(model, tile: torch.Tensor, dtype: torch.dtype | None, repeats: int = 5):
    """Median seconds of ``repeats`` forward passes and the softmax of the last one."""
    seconds = []
    with torch.inference_mode():
        for _ in range(repeats):
            start = time.perf_counter()
            if dtype is None:
                logits = model(tile)
            else:
                with torch.autocast("cpu", dtype=dtype):
                    logits = model(tile)
            seconds.append(time.perf_counter() - start)
    return float(np.median(seconds)), torch.softmax(logits.float(), 1)


def main() -> None:
    torch.set_num_threads(1)
    model = load_model("em-membranes").eval()
    tile = torch.randn(1, 1, 572, 572, generator=torch.Generator().manual_seed(0))
    forward(model, tile, None, 1), forward(model, tile, torch.bfloat16, 1)  # warm-up
    for _ in range(2):
        float32_seconds, float32 = forward(model, tile, None)
        bfloat16_seconds, bfloat16 = forward(model, tile, torch.bfloat16)
        difference = float((float32 - bfloat16).abs().max())
        print(
            f"float32 {float32_seconds:.3f} s, bfloat16 {bfloat16_seconds:.3f} s, "
            f"ratio {float32_seconds / bfloat16_seconds:.2f}, max |dp| {difference:.4f}"
        )


if __name__ == "__main__":
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args()  # --help only
    main()

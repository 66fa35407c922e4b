"""Screen a bfloat16 forward pass against float32 (issue 17): speed ratio and probability error.

    python benchmarks/check_bf16.py

One 572 x 572 tile through the bundled ``em-membranes`` model, 1 thread, median of 5 runs each,
alternating; the issue accepts a reduced-precision path only if probabilities stay within
1e-3 of float32.
"""

import time

import numpy as np
import torch

torch.set_num_threads(1)
from napari_unet import load_model

m = load_model("em-membranes").eval()
x = torch.randn(1, 1, 572, 572)


def run(dtype, n=5):
    ts = []
    with torch.inference_mode():
        for _ in range(n):
            t = time.perf_counter()
            if dtype is None:
                y = m(x)
            else:
                with torch.autocast("cpu", dtype=dtype):
                    y = m(x)
            ts.append(time.perf_counter() - t)
    return np.median(ts), torch.softmax(y.float(), 1)


run(None, 1)
run(torch.bfloat16, 1)
for r in range(2):
    t32, p32 = run(None)
    t16, p16 = run(torch.bfloat16)
    print(
        "fp32 %.3fs bf16 %.3fs ratio %.2f maxdiff %.4f"
        % (t32, t16, t32 / t16, (p32 - p16).abs().max())
    )

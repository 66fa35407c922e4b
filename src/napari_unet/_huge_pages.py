"""Ask PyTorch for transparent huge pages before it is imported (Linux).

On the CPU, PyTorch takes every tensor from the operating system's allocator. A
forward pass over a large tile makes activations of 40-70 MB (a 1020 px tile, 16
feature maps); glibc serves blocks above its mmap threshold (at most 32 MB) with a
fresh ``mmap`` each time, so every such tensor is page-faulted in, 4 KiB at a time,
and zeroed by the kernel: 175,786 page faults in three ``predict`` calls on a 1024²
image at tile 572, a fifth of their time (docs/experiments/inference_speed.md). With
``THP_MEM_ALLOC_ENABLE=1``, a PyTorch option, allocations of 2 MB or more are aligned
to 2 MB and marked for transparent huge pages (``madvise``): 437 faults there. The
price is some memory (2 MB alignment, whole huge pages); PyTorch leaves it off by
default for that reason.

PyTorch reads the variable once, at its first allocation, so it must be set before
``import torch``: :mod:`napari_unet` imports this module first. A value the user
has set is kept (``THP_MEM_ALLOC_ENABLE=0`` switches it off); where ``torch`` was
imported before ``napari_unet``, setting it has no effect. Elsewhere than Linux, or
where the kernel's transparent huge pages are ``never``, PyTorch ignores it.
"""

from __future__ import annotations

import os

#: The PyTorch environment variable (``c10/core/alloc_cpu.cpp``).
VARIABLE = "THP_MEM_ALLOC_ENABLE"

os.environ.setdefault(VARIABLE, "1")

"""Re-estimating a U-Net's batch-norm statistics for its final weights.

With batch norm and a high learning rate the running statistics (momentum 0.1
over small batches) lag the weights; :func:`recalibrate_batch_norm` replaces
them by a plain average over fresh, un-augmented batches
(``TrainConfig.bn_recalibration``; BENCHMARKS.md, ISBI scribbles, session 1).
"""

from __future__ import annotations

import copy
import dataclasses

import torch

from ..config import TrainConfig
from ..core.inference import StopFlag, is_stopped
from ..core.model import UNet
from .sampling import PatchSampler


def recalibration_passes(model: UNet, config: TrainConfig) -> int:
    """Batch-norm recalibration passes ``config`` asks for (0 for a model without batch norm)."""
    has_batch_norm = any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    return config.bn_recalibration if has_batch_norm else 0


@torch.no_grad()
def recalibrate_batch_norm(
    model: UNet, sampler: PatchSampler, batch_size: int, passes: int, stop: StopFlag = None
) -> int:
    """Re-estimate the batch-norm running statistics of ``model`` for its current weights.

    The statistics are reset and replaced by the plain average over ``passes``
    forward passes (train mode, no gradient, no weight change) of batches from
    ``sampler``, whose patches are drawn without elastic deformation or intensity
    changes, so they match the images the model will see at prediction time.
    ``stop`` is checked before every pass. If no pass completes (stopped at once,
    or an error), the previous statistics are put back.

    Returns
    -------
    int
        The number of forward passes the new statistics average over (0: unchanged).
    """
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    device = next(model.parameters()).device
    plain = dataclasses.replace(sampler.augment, elastic=False, intensity=0.0)
    patches = PatchSampler(
        sampler.data, sampler.input_size, sampler.output_size, plain, sampler.rng
    )
    saved = [(norm.momentum, copy.deepcopy(norm.state_dict())) for norm in norms]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative average
    model.train()
    done = 0
    try:
        while done < passes and not is_stopped(stop):
            model(torch.from_numpy(patches.batch(batch_size)[0]).to(device))
            done += 1
    finally:
        for norm, (momentum, state) in zip(norms, saved):
            norm.momentum = momentum
            if done == 0:
                norm.load_state_dict(state)
        model.eval()
    return done

"""Research variants of ``bench_isbi_scribbles.py``: test doubles patched into training.

:func:`research_patches` patches the variants asked for on the command line (uniform
sampling, a membrane loss weight, EMA weights, learning-rate warm-up, entropy and pairwise
losses) into the private training functions that
:func:`~napari_unet.training.loop.finetune` looks up at call time, and always keeps the
last weights and the best iteration in :data:`_LAST` for the scoring.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
from unittest import mock

import numpy as np
import torch
from torch.nn import functional as F

from napari_unet.training import loop, run_state, sampling
from napari_unet.training.sampling import PatchSampler

#: What the patches keep for the scoring: the last weights ("state"), the iteration of the
#: restored best weights ("best_iteration") and the EMA model ("ema", "ema_of").
_LAST: dict = {}


def _uniform_pick_centre(self):
    """Patch centre on a labelled pixel drawn uniformly over all labelled pixels."""
    counts = np.array([sum(c.shape[0] for c in item.labelled) for item in self.data], float)
    item = self.data[self.rng.choice(len(self.data), p=counts / counts.sum())]
    coordinates = np.concatenate(item.labelled)
    y, x = coordinates[self.rng.integers(coordinates.shape[0])]
    return item, int(y), int(x)


def _scaled_weight_map(factor: float):
    """The paper's weight map with the membrane (label 1) weights multiplied by ``factor``."""
    original = sampling.weight_map

    def weight_map(labels, config=None, **kwargs):
        weights = original(labels, config, **kwargs)
        weights[np.asarray(labels) == 1] *= factor
        return weights

    return weight_map


def _warmup_schedule(warmup: float):
    """The configured schedule, preceded by a linear warm-up over the first ``warmup`` share."""
    original = loop.learning_rate_at

    def learning_rate_at(config, fraction):
        if fraction < warmup:
            return config.learning_rate * max(fraction / warmup, 0.01)
        return original(config, (fraction - warmup) / (1.0 - warmup))

    return learning_rate_at


def _entropy_regularised_loss(weight: float, start: int, ramp: int):
    """Weighted loss plus ``weight`` x mean prediction entropy on the unlabelled pixels.

    Entropy minimisation (Grandvalet & Bengio, NeurIPS 2004): the unlabelled pixels of
    each patch, already computed, pull the decision boundary into low-density regions.
    Off for the first ``start`` iterations, then ramped up linearly over ``ramp``.
    """
    original = loop.weighted_loss
    calls = {"n": 0}

    def loss(logits, labels, weights):
        calls["n"] += 1
        supervised = original(logits, labels, weights)
        scale = weight * min(max((calls["n"] - start) / max(ramp, 1), 0.0), 1.0)
        if scale == 0.0:
            return supervised
        log_p = F.log_softmax(logits.float(), dim=1)
        entropy = -(log_p.exp() * log_p).sum(dim=1)
        unlabelled = (labels == 0).float()
        return supervised + scale * (entropy * unlabelled).sum() / unlabelled.sum().clamp(min=1)

    return loss


def _pairwise_regularised_forward(weight: float, sigma: float, radius: int):
    """``loop._forward_loss`` plus ``weight`` x a gated Potts penalty (see module doc).

    The original computes the loss as usual (the weighted loss and, for a trained
    model, distillation); a forward hook keeps the batch and the logits it saw, and the
    penalty is added on them. Calls pass straight through, whatever the arguments.
    """
    original = loop._forward_loss
    offsets = [
        (dy, dx)
        for dy in range(0, radius + 1)
        for dx in range(-radius, radius + 1)
        if (dy, dx) > (0, 0) and dy * dy + dx * dx <= radius * radius
    ]
    ramp = torch.exp(-(torch.arange(-2.0, 3.0) ** 2) / 2)
    blur = (torch.outer(ramp, ramp) / torch.outer(ramp, ramp).sum())[None, None]

    def forward_loss(model, *args, **kwargs):
        seen: dict = {}

        def keep(module, inputs, output):
            seen["inputs"], seen["logits"] = inputs[0], output

        handle = model.register_forward_hook(keep)
        try:
            supervised = original(model, *args, **kwargs)
        finally:
            handle.remove()
        logits = seen["logits"]
        if logits.shape[-2:] != seen["inputs"].shape[-2:]:
            raise ValueError("--pairwise compares input and output pixels: use --padding same")
        probs = F.softmax(logits.float(), dim=1)
        inputs = F.conv2d(seen["inputs"][:, :1], blur, padding=2)  # gate on a smoothed image
        penalty, total = 0.0, 0.0
        height, width = probs.shape[-2:]
        for dy, dx in offsets:
            x0, x1 = max(0, -dx), width - max(0, dx)
            here = probs[..., : height - dy, x0:x1]
            there = probs[..., dy:, x0 + dx : x1 + dx]
            difference = inputs[:, :1, : height - dy, x0:x1] - inputs[:, :1, dy:, x0 + dx : x1 + dx]
            gate = torch.exp(-(difference**2) / (2 * sigma**2) - (dy * dy + dx * dx) / 8.0)
            disagreement = 1.0 - (here * there).sum(dim=1, keepdim=True)
            penalty = penalty + (gate * disagreement).mean()
            total += 1.0
        return supervised + weight * penalty / total

    return forward_loss


def _track_ema(decay: float):
    """``loop._apply_update`` that also keeps an exponential moving average of the weights."""
    original = loop._apply_update

    def apply_update(model, *args, **kwargs):
        applied = original(model, *args, **kwargs)
        average = _LAST.get("ema")
        if average is None or _LAST.get("ema_of") is not model:
            multi_avg = torch.optim.swa_utils.get_ema_multi_avg_fn(decay)
            average = torch.optim.swa_utils.AveragedModel(
                model, multi_avg_fn=multi_avg, use_buffers=True
            )
            _LAST["ema"], _LAST["ema_of"] = average, model
        average.update_parameters(model)
        return applied

    return apply_update


def _remember_last_weights():
    """``run_state.BestWeights.restore`` that first keeps a copy of the last weights."""
    restore = run_state.BestWeights.restore

    def remembering_restore(self) -> None:
        _LAST["state"] = copy.deepcopy(self.model.state_dict())
        _LAST["best_iteration"] = self.iteration
        restore(self)

    return remembering_restore


def research_patches(args: argparse.Namespace) -> contextlib.ExitStack:
    """The experiment variants asked for in ``args``, patched into the training code
    until the returned context exits (and the last-weights bookkeeping, always).

    Why patches and not hooks on :func:`~napari_unet.training.loop.finetune`: these
    are research variants that were measured and not adopted
    (docs/experiments/isbi_scribbles.md); a ``loss_fn``/``schedule``/``on_step``/sampling
    hook for each would be public surface that only this script uses, and the loop
    simpler without it. So they stay test doubles confined to this benchmark, applied
    with :func:`unittest.mock.patch.object` (undone on exit, never a bare
    assignment) to the private names finetune looks up at call time. Their
    wrappers pass arguments through; tests/test_research_patches.py runs finetune
    under each, so a change to those private functions fails a test rather than this
    script. Training itself is unchanged without them.
    """
    stack = contextlib.ExitStack()

    def patch(target, name: str, new) -> None:
        stack.enter_context(mock.patch.object(target, name, new))

    patch(run_state.BestWeights, "restore", _remember_last_weights())
    if args.sampling == "uniform":
        patch(PatchSampler, "_pick_centre", _uniform_pick_centre)
    if args.ema:
        patch(loop, "_apply_update", _track_ema(args.ema))
    if args.warmup:
        patch(loop, "learning_rate_at", _warmup_schedule(args.warmup))
    if args.entropy_weight:
        weight, start, ramp = args.entropy_weight
        patch(loop, "weighted_loss", _entropy_regularised_loss(weight, int(start), int(ramp)))
    if args.pairwise:
        weight, sigma, radius = args.pairwise
        patch(loop, "_forward_loss", _pairwise_regularised_forward(weight, sigma, int(radius)))
    if args.membrane_weight != 1.0:
        patch(sampling, "weight_map", _scaled_weight_map(args.membrane_weight))
    return stack

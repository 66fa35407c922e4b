"""Fine-tuning a U-Net from sparse annotations with the paper's weighted loss.

:func:`finetune` is a generator: it yields :class:`TrainProgress` records while it
trains and honours a stop flag within one iteration, so the same loop drives the
napari widget (in a worker thread), the CLI (with a progress bar) and scripts.
However it ends (budget reached, stop flag, generator closed, error), the model
is left holding the best weights seen (lowest smoothed training loss), never
half-updated ones.
"""

from __future__ import annotations

import copy
import datetime
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from .config import AugmentConfig, TrainConfig, WeightConfig
from .devices import resolve_device
from .inference import StopFlag, is_stopped, predict
from .model import UNet
from .sampling import PatchSampler, annotated_pixels, default_patch_size, prepare_training_data


class TrainingError(RuntimeError):
    """Training could not go on; the model holds the last good weights."""


@dataclass
class TrainProgress:
    """One report from :func:`finetune`.

    Attributes
    ----------
    iteration : int
        Iterations done.
    loss, smoothed_loss : float
        Last batch's loss and its exponential moving average.
    elapsed : float
        Seconds since training started.
    fraction : float
        Share of the budget (time or iterations) used, in [0, 1].
    preview : numpy.ndarray or None
        (n_classes, Y, X) probabilities of the preview image, when one was due.
    """

    iteration: int
    loss: float
    smoothed_loss: float
    elapsed: float
    fraction: float
    preview: np.ndarray | None = None
    history: list[tuple[int, float]] = field(default_factory=list)


def weighted_loss(
    logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor
) -> torch.Tensor:
    """The paper's weighted cross-entropy over labelled pixels.

    Parameters
    ----------
    logits : (N, C, Y, X) float tensor
    labels : (N, Y, X) int tensor, label convention (0 = unlabelled, 1.. = class + 1)
    weights : (N, Y, X) float tensor, 0 where unlabelled

    Returns
    -------
    torch.Tensor
        ``sum(w * CE) / sum(w)``; unlabelled pixels contribute nothing, not even
        through their target.
    """
    target = (labels - 1).clamp(min=0)
    weights = weights * (labels > 0)
    per_pixel = F.cross_entropy(logits.float(), target, reduction="none")
    return (weights * per_pixel).sum() / weights.sum().clamp(min=1e-8)


class _BestWeights:
    """Keeps a copy of the weights with the lowest smoothed loss."""

    def __init__(self, model: UNet) -> None:
        self.model = model
        self.state = copy.deepcopy(model.state_dict())
        self.loss = math.inf

    def offer(self, smoothed_loss: float) -> None:
        if smoothed_loss < self.loss:
            self.loss = smoothed_loss
            self.state = copy.deepcopy(self.model.state_dict())

    def restore(self) -> None:
        self.model.load_state_dict(self.state)


def finetune(
    model: UNet,
    images: Sequence[np.ndarray],
    annotations: Sequence[np.ndarray],
    config: TrainConfig | None = None,
    *,
    augment: AugmentConfig | None = None,
    weights: WeightConfig | None = None,
    stop: StopFlag = None,
    preview: Callable[[], np.ndarray | None] | np.ndarray | None = None,
    preview_every: float = 3.0,
    report_every: int = 1,
) -> Iterator[TrainProgress]:
    """Train ``model`` in place on images with sparse annotations; a generator.

    Parameters
    ----------
    model : UNet
        From :func:`~napari_unet.load_model` or :func:`~napari_unet.checkpoint.new_model`.
    images : sequence of (Y, X) or (C, Y, X) arrays
        Any numeric dtype; normalised with the model's stored normalisation.
    annotations : sequence of (Y, X) int arrays
        0 = unlabelled, 1 = background, 2..K = foreground classes. Images with
        an empty annotation are skipped.
    config : TrainConfig
        Budget (seconds and/or iterations), patch and batch size, learning rate,
        seed, device.
    augment, weights : AugmentConfig, WeightConfig
    stop : callable or threading.Event
        Checked every iteration; training then ends with the best weights.
    preview : array (Y, X) / (C, Y, X) or a callable returning one (or None)
        Predicted every ``preview_every`` seconds and attached to the progress.
    report_every : int
        Yield a progress record every this many iterations.

    Yields
    ------
    TrainProgress

    Raises
    ------
    AnnotationError
        Unusable annotations (before any training).
    TrainingError
        A non-finite loss; the last good weights are restored first.
    """
    config = config or TrainConfig()
    augment = augment or AugmentConfig()
    weights = weights or WeightConfig()
    if config.seconds is None and config.iterations is None:
        raise ValueError("give a time budget (seconds) or an iteration count")
    data = prepare_training_data(images, annotations, model, weights)
    device = resolve_device(config.device)
    patch_size = config.patch_size or default_patch_size(model)
    output_size = model.output_size(patch_size)
    rng = np.random.default_rng(config.seed)
    torch.manual_seed(config.seed)
    sampler = PatchSampler(data, patch_size, output_size, augment, rng)
    model.to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    best = _BestWeights(model)
    state = _LoopState(time.perf_counter())
    try:
        while not _budget_spent(state, config) and not is_stopped(stop):
            loss = _train_step(model, optimizer, sampler, config, device)
            if not math.isfinite(loss):
                best.restore()
                raise TrainingError(
                    f"the loss became {loss} at iteration {state.iteration + 1}; the last good "
                    "weights were restored. Lower the learning rate and try again."
                )
            state.update(loss)
            best.offer(state.smoothed)
            if state.iteration % report_every == 0 or _budget_spent(state, config):
                image = _preview_due(state, preview, preview_every)
                yield _report(state, config, _predict_preview(model, image, device))
    finally:
        best.restore()
        model.eval()
        _record_history(model, data, state, config, augment, weights)


@dataclass
class _LoopState:
    start: float
    iteration: int = 0
    smoothed: float = math.nan
    last_loss: float = math.nan
    last_preview: float = -math.inf
    history: list[tuple[int, float]] = field(default_factory=list)

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def update(self, loss: float) -> None:
        self.iteration += 1
        self.last_loss = loss
        self.smoothed = loss if math.isnan(self.smoothed) else 0.9 * self.smoothed + 0.1 * loss
        self.history.append((self.iteration, loss))


def _budget_spent(state: _LoopState, config: TrainConfig) -> bool:
    if config.iterations is not None and state.iteration >= config.iterations:
        return True
    return config.seconds is not None and state.elapsed >= config.seconds


def _train_step(model, optimizer, sampler: PatchSampler, config: TrainConfig, device) -> float:
    images, labels, weights = sampler.batch(config.batch_size)
    inputs = torch.from_numpy(images).to(device)
    autocast = torch.autocast("cuda", enabled=config.amp and device.type == "cuda")
    with autocast:
        logits = model(inputs)
    loss = weighted_loss(
        logits, torch.from_numpy(labels).to(device), torch.from_numpy(weights).to(device)
    )
    value = float(loss.detach())
    if math.isfinite(value):
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return value


def _preview_due(state: _LoopState, preview: Any, every: float) -> np.ndarray | None:
    if preview is None or state.elapsed - state.last_preview < every:
        return None
    state.last_preview = state.elapsed
    return preview() if callable(preview) else preview


def _predict_preview(model: UNet, image: np.ndarray | None, device) -> np.ndarray | None:
    if image is None:
        return None
    model.eval()
    try:
        return predict(image, model, tile_size=None, device=device)
    finally:
        model.train()


def _report(state: _LoopState, config: TrainConfig, preview: np.ndarray | None) -> TrainProgress:
    fractions = []
    if config.seconds:
        fractions.append(state.elapsed / config.seconds)
    if config.iterations:
        fractions.append(state.iteration / config.iterations)
    return TrainProgress(
        iteration=state.iteration,
        loss=state.last_loss,
        smoothed_loss=state.smoothed,
        elapsed=state.elapsed,
        fraction=min(1.0, max(fractions)),
        preview=preview,
        history=list(state.history),
    )


def _record_history(model, data, state: _LoopState, config, augment, weights) -> None:
    if state.iteration == 0:
        return
    entry = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "iterations": state.iteration,
        "seconds": round(state.elapsed, 2),
        "final_smoothed_loss": round(state.smoothed, 5),
        "annotated_pixels": {str(k): v for k, v in annotated_pixels(data).items()},
        "images": [list(item.image.shape) for item in data],
        "train_config": config.to_dict(),
        "augment_config": augment.to_dict(),
        "weight_config": weights.to_dict(),
    }
    metadata = model.metadata
    if metadata.get("source"):
        metadata["parent"] = metadata.pop("source")
    metadata["training_history"] = [*metadata.get("training_history", []), entry]


def train(model: UNet, images, annotations, config: TrainConfig | None = None, **options) -> UNet:
    """Run :func:`finetune` to the end and return the model (for scripts)."""
    for _ in finetune(model, images, annotations, config, **options):
        pass
    return model

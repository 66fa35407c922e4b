"""Fine-tuning a U-Net from sparse annotations with the paper's weighted loss.

:func:`finetune` is a generator: it yields :class:`TrainProgress` records while it
trains and honours a stop flag within one iteration, so the same loop drives the
napari widget (in a worker thread), the CLI (with a progress bar) and scripts.
However it ends (budget reached, stop flag, generator closed, error), the model
is left holding the best weights seen (lowest smoothed training loss once that has
averaged :data:`SETTLING_BATCHES` batches, the latest finite weights before; the copy
is taken before the update a loss leads to, so it holds the weights that loss was
measured on), never half-updated ones.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from ..config import AugmentConfig, TrainConfig, WeightConfig
from ..core.devices import resolve_device, to_layout, training_layout
from ..core.inference import Cancelled, StopFlag, default_tile_size, is_stopped, predict
from ..core.model import UNet
from .batchnorm import recalibrate_batch_norm, recalibration_passes
from .calibration import carried_threshold
from .distillation import (
    Teacher,
    distillation_loss,
    distillation_mask,
    has_been_trained,
    sharpened,
    teacher_border_weights,
)
from .history import TrainProgress, record_run
from .sampling import PatchSampler, default_patch_size, prepare_training_data
from .schedule import initial_learning_rate, learning_rate_at, set_learning_rate, with_learning_rate
from .weights import resolved_weight_config

#: Smoothing of the training loss (exponential moving average, bias-corrected as in
#: Adam): about the last 50 batches. The best weights are chosen by this smoothed
#: loss, so it must average over enough patches that a few easy batches cannot make
#: early weights look best. With 0.9 (10 batches), 5 of 13 ISBI runs of 400-500
#: iterations (same seed, so the same patches) kept the weights of iteration 309,
#: and where both were scored these were worse than the last ones (pixel error
#: 0.193 vs 0.152); with 0.98 they were within 25 iterations of the end
#: (BENCHMARKS.md, ISBI scribbles).
LOSS_SMOOTHING: float = 0.98

#: Batches the smoothed loss needs before it can choose the best weights. Earlier
#: values average only a few batches: from a pretrained checkpoint the loss of the
#: very first batch (0.090) beat the final smoothed loss (0.104, batches ranging
#: 0.04-0.37) and a whole 177-iteration fine-tune was thrown away. Until then the
#: latest (finite) weights are kept.
SETTLING_BATCHES: int = round(1 / (1 - LOSS_SMOOTHING))


class TrainingError(RuntimeError):
    """Training could not go on (non-finite loss or gradient); the best weights are restored."""


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
    """Keeps a copy of the weights with the lowest smoothed loss, once it has settled.

    :meth:`offer` is called after a batch's loss is computed and before the
    update it leads to, so the copy holds the weights that loss was measured on
    (``iteration`` counts the updates they had received: 0 = the starting weights).
    During the first :data:`SETTLING_BATCHES` batches every offer is taken (the
    latest weights); after that only a lower smoothed loss replaces a settled copy.
    """

    def __init__(self, model: UNet) -> None:
        self.model = model
        self.state = copy.deepcopy(model.state_dict())
        self.loss = math.inf
        self.iteration = 0
        self.settled = False

    def offer(self, smoothed_loss: float, iteration: int) -> None:
        settled = iteration + 1 >= SETTLING_BATCHES  # batches averaged into smoothed_loss
        if settled and self.settled and smoothed_loss >= self.loss:
            return
        self.loss, self.iteration, self.settled = smoothed_loss, iteration, settled
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
) -> Generator[TrainProgress, None, None]:
    """Train ``model`` in place on images with sparse annotations; a generator.

    Parameters
    ----------
    model : UNet
        From :func:`~napari_unet.load_model` or :func:`~napari_unet.core.checkpoint.new_model`.
    images : sequence of (Y, X) or (C, Y, X) arrays
        Any numeric dtype; normalised with the model's stored normalisation.
    annotations : sequence of (Y, X) int arrays
        0 = unlabelled, 1 = background, 2..K = foreground classes. Images with
        an empty annotation are skipped.
    config : TrainConfig
        Budget (seconds and/or iterations), patch and batch size, learning rate and
        its schedule over the budget (linear decay to 0 by default), batch-norm
        recalibration, seed, device, and how strongly a trained model keeps its own
        predictions on unpainted pixels (``distillation``). Time spent on previews
        is not counted in the budget.
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
        A non-finite loss or gradient (no update is applied from it); the best
        weights so far are restored first.

    Notes
    -----
    A model with a ``background_threshold`` of its own gets, after a completed run, the
    threshold that matches the starting model's decisions away from the strokes
    (:func:`~napari_unet.training.calibration.carried_threshold`).
    """
    config = with_learning_rate(config or TrainConfig(), model)
    augment = augment or AugmentConfig()
    weights = resolved_weight_config(weights, has_been_trained(model))
    if config.seconds is None and config.iterations is None:
        raise ValueError("give a time budget (seconds) or an iteration count")
    if report_every < 1:
        raise ValueError(f"report_every must be >= 1, got {report_every}")
    data = prepare_training_data(images, annotations, model, weights)
    device = resolve_device(config.device)
    to_layout(model.to(device), training_layout(device))
    patch_size = config.patch_size or default_patch_size(model)
    output_size = model.output_size(patch_size)
    rng = np.random.default_rng(config.seed)
    teacher = _teacher(model, config, device)
    starting = _starting_copy(model, teacher)
    context = config.context_patches if teacher else 0.0
    sampler = PatchSampler(data, patch_size, output_size, augment, rng, context)
    model.to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=initial_learning_rate(config))
    scaler = torch.amp.GradScaler("cuda", enabled=config.amp and device.type == "cuda")
    best = _BestWeights(model)
    state = _LoopState(
        time.perf_counter(), recalibration_passes=recalibration_passes(model, config)
    )
    completed = False
    try:
        while not _budget_spent(state, config) and not is_stopped(stop):
            state.learning_rate = learning_rate_at(config, _budget_fraction(state, config))
            set_learning_rate(optimizer, state.learning_rate)
            loss = _forward_loss(model, sampler, config, device, scaler, teacher)
            value = float(loss.detach())
            if not math.isfinite(value):
                raise _diverged(best, f"the loss became {value}", state.iteration + 1)
            state.update(value)
            best.offer(state.smoothed, state.iteration - 1)  # the weights that gave this loss
            if not _apply_update(model, optimizer, loss, scaler):
                raise _diverged(best, "a gradient became non-finite", state.iteration)
            if state.iteration % report_every == 0 or _budget_spent(state, config):
                image = _preview_due(state, preview, preview_every)
                preview_start = time.perf_counter()
                probabilities = _predict_preview(model, image, device, stop)
                state.paused += time.perf_counter() - preview_start
                yield _report(state, config, probabilities)
        completed = True
    finally:
        best.restore()
        try:
            if completed and state.iteration and state.recalibration_passes:
                state.recalibrated = recalibrate_batch_norm(
                    model, sampler, config.batch_size, state.recalibration_passes, stop
                )
        finally:
            to_layout(model, torch.contiguous_format).eval()
            record_run(model, data, state, best, (config, augment, weights), teacher is not None)
        if completed and state.iteration and starting is not None:
            threshold = carried_threshold(starting, model, images, annotations, device)
            model.metadata["background_threshold"] = threshold


@dataclass
class _LoopState:
    start: float
    recalibration_passes: int = 0
    recalibrated: int = 0
    learning_rate: float = math.nan
    paused: float = 0.0
    _average: float = 0.0
    iteration: int = 0
    smoothed: float = math.nan
    last_loss: float = math.nan
    last_preview: float = -math.inf
    history: list[tuple[int, float]] = field(default_factory=list)

    @property
    def elapsed(self) -> float:
        """Seconds of training so far (previews excluded)."""
        return time.perf_counter() - self.start - self.paused

    @property
    def reserved(self) -> float:
        """Seconds kept for the batch-norm recalibration: a forward pass ~ 1/3 of a step."""
        if not self.recalibration_passes or not self.iteration:
            return 0.0
        return self.recalibration_passes * self.elapsed / self.iteration / 3

    def update(self, loss: float) -> None:
        self.iteration += 1
        self.last_loss = loss
        self._average = LOSS_SMOOTHING * self._average + (1 - LOSS_SMOOTHING) * loss
        self.smoothed = self._average / (1 - LOSS_SMOOTHING**self.iteration)
        self.history.append((self.iteration, loss))


def _budget_spent(state: _LoopState, config: TrainConfig) -> bool:
    if config.iterations is not None and state.iteration >= config.iterations:
        return True
    return config.seconds is not None and state.elapsed + state.reserved >= config.seconds


def _budget_fraction(state: _LoopState, config: TrainConfig) -> float:
    """Share of the budget used, in [0, 1]: the larger of the time and iteration shares."""
    fractions = [0.0]
    if config.seconds:
        fractions.append((state.elapsed + state.reserved) / config.seconds)
    if config.iterations:
        fractions.append(state.iteration / config.iterations)
    return min(1.0, max(fractions))


def _teacher(model: UNet, config: TrainConfig, device) -> Teacher | None:
    """A frozen copy of a trained model to distil from, or None (off, or nothing to keep)."""
    if config.distillation <= 0 or not has_been_trained(model):
        return None
    return Teacher(model.to(device))


def _starting_copy(model: UNet, teacher: Teacher | None) -> UNet | None:
    """The model before training, if its background threshold must be carried over."""
    if model.info.background_threshold == 0.5:
        return None
    return teacher.model if teacher is not None else copy.deepcopy(model).eval()


def _forward_loss(
    model,
    sampler: PatchSampler,
    config: TrainConfig,
    device,
    scaler: torch.amp.GradScaler,
    teacher: Teacher | None = None,
) -> torch.Tensor:
    """The loss of one sampled batch (float16 autocast with ``config.amp`` on CUDA).

    The paper's weighted loss on painted pixels, plus ``config.distillation`` times
    the distillation loss towards ``teacher`` on unpainted ones.
    """
    images, labels, weights = sampler.batch(config.batch_size)
    inputs = torch.from_numpy(images).to(device)
    labels_tensor = torch.from_numpy(labels).to(device)
    with torch.autocast("cuda", enabled=scaler.is_enabled()):
        logits = model(inputs)
    loss = weighted_loss(logits, labels_tensor, torch.from_numpy(weights).to(device))
    if teacher is None:
        return loss
    targets = teacher.probabilities(inputs)
    mask = distillation_mask(targets, labels_tensor, config.distillation_margin)
    if config.distillation_border > 0:
        mask = mask * teacher_border_weights(targets, config.distillation_border)
    targets = sharpened(targets, config.distillation_temperature)
    return loss + config.distillation * distillation_loss(logits, targets, mask)


def _apply_update(model, optimizer, loss: torch.Tensor, scaler: torch.amp.GradScaler) -> bool:
    """Back-propagate ``loss`` and step; False (and no step) if a gradient is not finite.

    With mixed precision the gradient scaler owns this decision: it skips the steps
    whose scaled gradients overflowed and lowers its scale, as AMP intends.
    """
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    if scaler.is_enabled():
        scaler.step(optimizer)
        scaler.update()
        return True
    gradients = [p.grad for p in model.parameters() if p.grad is not None]
    if gradients and not bool(torch.stack([g.isfinite().all() for g in gradients]).all()):
        return False  # one device sync for all the checks
    optimizer.step()
    return True


def _diverged(best: _BestWeights, what: str, iteration: int) -> TrainingError:
    """Restore the best weights and describe the divergence."""
    best.restore()
    return TrainingError(
        f"{what} at iteration {iteration}; the best weights so far (iteration "
        f"{best.iteration}) were restored. Lower the learning rate and try again."
    )


def _preview_due(state: _LoopState, preview: Any, every: float) -> np.ndarray | None:
    if preview is None or state.elapsed - state.last_preview < every:
        return None
    state.last_preview = state.elapsed
    return preview() if callable(preview) else preview


def _predict_preview(
    model: UNet, image: np.ndarray | None, device, stop: StopFlag
) -> np.ndarray | None:
    """Tiled probabilities of the preview image; None if there is none or ``stop`` is set."""
    if image is None:
        return None
    model.eval()
    try:
        return predict(image, model, tile_size=default_tile_size(model), device=device, stop=stop)
    except Cancelled:
        return None
    finally:
        model.train()


def _report(state: _LoopState, config: TrainConfig, preview: np.ndarray | None) -> TrainProgress:
    return TrainProgress(
        iteration=state.iteration,
        loss=state.last_loss,
        smoothed_loss=state.smoothed,
        elapsed=state.elapsed,
        fraction=_budget_fraction(state, config),
        learning_rate=state.learning_rate,
        preview=preview,
        history=state.history,
    )


def train(model: UNet, images, annotations, config: TrainConfig | None = None, **options) -> UNet:
    """Run :func:`finetune` to the end and return the model (for scripts)."""
    for _ in finetune(model, images, annotations, config, **options):
        pass
    return model

"""Fine-tuning a U-Net from sparse annotations with the paper's weighted loss.

:func:`finetune` is a generator: it yields :class:`TrainProgress` records while it
trains and honours a stop flag within one iteration, so the same loop drives the
napari widget (in a worker thread), the CLI (with a progress bar) and scripts.
However it ends (budget reached, stop flag, generator closed, error), the model
is left holding the best weights seen (lowest smoothed training loss once that has
averaged :data:`~.run_state.SETTLING_BATCHES` batches, the latest finite weights before; the copy
is taken before the update a loss leads to, so it holds the weights that loss was
measured on), never half-updated ones.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Generator, Sequence
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from ..config import LEARNING_FLOOR_CAP, AugmentConfig, TrainConfig, WeightConfig
from ..core.devices import resolve_device, to_layout, training_layout
from ..core.inference import Cancelled, StopFlag, default_tile_size, is_stopped, predict
from ..core.model import UNet
from ._run_setup import Run, resolved_options, starting_copy, training_teacher
from .batchnorm import recalibrate_batch_norm, recalibration_passes
from .calibration import (  # noqa: F401  (callers import both here)
    set_threshold_after_run,
    sets_threshold,
)
from .distillation import (
    Teacher,
    distillation_loss,
    distillation_mask,
    sharpened,
    teacher_border_weights,
)
from .history import TrainProgress, record_run
from .run_state import BestWeights, LoopState
from .sampling import PatchSampler, default_patch_size, prepare_training_data
from .schedule import (
    initial_learning_rate,
    learning_floor,
    learning_rate_at,
    set_learning_rate,
)


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


def finetune(
    model: UNet,
    images: Sequence[np.ndarray],
    annotations: Sequence[np.ndarray],
    config: TrainConfig | None = None,
    *,
    augment: AugmentConfig | None = None,
    weights: WeightConfig | None = None,
    stop: StopFlag = None,
    cancel: StopFlag = None,
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
        is not counted in the budget. A model still learning with a time budget alone
        trains on past it up to ``TRAINED_ITERATIONS`` in all (``schedule.learning_floor``).
    augment, weights : AugmentConfig, WeightConfig
    stop : callable or threading.Event
        Checked every iteration; training then ends with the best weights. Also
        checked by the batch-norm recalibration after the iterations, which a stopped
        run skips. A stopped run still gets its threshold (see Notes).
    cancel : callable or threading.Event, optional
        Ends the threshold calibration after the iterations at its next batch of tiles;
        the model keeps its threshold from before (the dock's second press of Stop),
        unless the run left a new model at chance (see Notes).
    preview : array (Y, X) / (C, Y, X) or a callable returning one (or None)
        Predicted every ``preview_every`` seconds and attached to the progress.
    preview_every : float
        Seconds between previews.
    report_every : int
        Yield a progress record every this many iterations.

    Yields
    ------
    TrainProgress
        A loop that leaves early (``break``) ends the run only when the generator is
        closed (``close()``, or garbage collection): then the best weights, the history
        entry and eval mode. Pass ``stop`` instead, or :func:`train` for a whole run.

    Raises
    ------
    AnnotationError
        Unusable annotations (before any training).
    TrainingError
        A non-finite loss or gradient (no update is applied from it); the best
        weights so far are restored first.

    Notes
    -----
    A trained model (:func:`~napari_unet.training.distillation.has_been_trained`) with a
    ``background_threshold`` of its own gets, after a run (also a stopped one), the
    threshold that matches the starting model's decisions away from the strokes
    (:func:`~napari_unet.training.calibration.carried_threshold`); a model trained for
    the first time, or still learning, gets one estimated again from its strokes' intensities
    (none, and its ``close_gaps`` back to the default, where they do not tell)
    (:func:`~napari_unet.training.calibration.stroke_share_threshold`), if any, and
    then Predict leaves the gaps in its boundaries open (``close_gaps`` false): such a
    model draws its boundaries too thick, so its errors are split objects, which the
    closing would add to (ISBI, new models of 4 seeds: Rand error 0.149 against 0.168
    with the closing; BENCHMARKS.md). A run that leaves such a model at chance (its kept
    loss that of a guess: :func:`~napari_unet.training.history.loss_at_chance`) estimates
    nothing: the threshold and ``close_gaps`` go back to their defaults
    (:func:`~napari_unet.training.calibration.set_threshold_after_run`).
    """
    run = _start_run(model, images, annotations, (config, augment, weights), report_every)
    state = run.state
    completed = False
    try:
        while not _budget_spent(state, run.config) and not is_stopped(stop):
            _train_step(model, run)
            if state.iteration % report_every == 0 or _budget_spent(state, run.config):
                yield _report_with_preview(model, run, (preview, preview_every), stop)
        completed = True
    finally:
        run.best.restore()
        _finish_run(model, run, completed, stop)
        if completed and state.iteration:
            set_threshold_after_run(
                model, run.starting, run.was_trained, (images, annotations), (run.device, cancel)
            )


def _start_run(
    model: UNet,
    images: Sequence[np.ndarray],
    annotations: Sequence[np.ndarray],
    options: tuple[TrainConfig | None, AugmentConfig | None, WeightConfig | None],
    report_every: int,
) -> Run:
    """Check the options, prepare the data and set up the model, sampler and optimiser.

    ``options`` are :func:`finetune`'s (config, augment, weights). The model is moved to
    the device in its training layout and left in train mode; the clock starts last.
    """
    config, augment, weights, was_trained = resolved_options(model, *options, report_every)
    data = prepare_training_data(images, annotations, model, weights)
    device = resolve_device(config.device)
    to_layout(model.to(device), training_layout(device))
    patch_size = config.patch_size or default_patch_size(model)
    output_size = model.output_size(patch_size)
    rng = np.random.default_rng(config.seed)
    teacher = training_teacher(model, config, device)
    starting = starting_copy(model, teacher) if was_trained else None
    context = config.context_patches if teacher else 0.0
    sampler = PatchSampler(data, patch_size, output_size, augment, rng, context)
    model.to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=initial_learning_rate(config))
    scaler = torch.amp.GradScaler("cuda", enabled=config.amp and device.type == "cuda")
    best = BestWeights(model)
    state = LoopState(
        time.perf_counter(),
        recalibration_passes=recalibration_passes(model, config),
        floor=learning_floor(config, model),
    )
    setup = (device, teacher, starting, sampler, optimizer, scaler, best, state)
    return Run(config, augment, weights, was_trained, data, *setup)


def _train_step(model: UNet, run: Run) -> None:
    """One optimiser update of ``run`` at the scheduled learning rate. Raises
    TrainingError (best weights restored) on a non-finite loss or gradient."""
    config, state, best, optimizer = run.config, run.state, run.best, run.optimizer
    state.learning_rate = learning_rate_at(config, _budget_fraction(state, config))
    set_learning_rate(optimizer, state.learning_rate)
    loss = _forward_loss(model, run.sampler, config, run.device, run.scaler, run.teacher)
    value = float(loss.detach())
    if not math.isfinite(value):
        raise _diverged(best, f"the loss became {value}", state.iteration + 1)
    state.update(value)
    best.offer(state.smoothed, state.iteration - 1)  # the weights that gave this loss
    if not _apply_update(model, optimizer, loss, run.scaler):
        raise _diverged(best, "a gradient became non-finite", state.iteration)


def _finish_run(model: UNet, run: Run, completed: bool, stop: StopFlag) -> None:
    """After the loop: recalibrate batch norm (completed runs only), return the model
    to the default layout in eval mode, and record the run in its metadata."""
    state = run.state
    try:
        if completed and state.iteration and state.recalibration_passes:
            state.recalibrated = recalibrate_batch_norm(
                model, run.sampler, run.config.batch_size, state.recalibration_passes, stop
            )
    finally:
        to_layout(model, torch.contiguous_format).eval()
        configs = (run.config, run.augment, run.weights)
        record_run(model, run.data, state, run.best, configs, run.teacher is not None)


def _budget_spent(state: LoopState, config: TrainConfig) -> bool:
    if config.iterations is not None and state.iteration >= config.iterations:
        return True
    return _time_share(state, config) >= 1.0


def _budget_fraction(state: LoopState, config: TrainConfig) -> float:
    """Share of the budget used, in [0, 1]: the larger of the time and iteration shares."""
    fractions = [0.0, _time_share(state, config)]
    if config.iterations:
        fractions.append(state.iteration / config.iterations)
    return min(1.0, max(fractions))


def _time_share(state: LoopState, config: TrainConfig) -> float:
    """Share of the time budget used (0 without one). Under a learning floor
    (:func:`~napari_unet.training.schedule.learning_floor`) the smaller of the time and
    floor shares, up to the share of ``LEARNING_FLOOR_CAP`` times the time budget."""
    if not config.seconds:
        return 0.0
    share = (state.elapsed + state.reserved) / config.seconds
    if not state.floor:
        return share
    return max(min(share, state.iteration / state.floor), share / LEARNING_FLOOR_CAP)


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
        closing = teacher.model.info.close_gaps
        mask = mask * teacher_border_weights(
            targets, config.distillation_border, close_gaps=closing
        )
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


def _diverged(best: BestWeights, what: str, iteration: int) -> TrainingError:
    """Restore the best weights and describe the divergence."""
    best.restore()
    return TrainingError(
        f"{what} at iteration {iteration}; the best weights so far (iteration "
        f"{best.iteration}) were restored. Lower the learning rate and try again."
    )


def _preview_due(state: LoopState, preview: Any, every: float) -> np.ndarray | None:
    if preview is None or state.elapsed - state.last_preview < every:
        return None
    state.last_preview = state.elapsed
    return preview() if callable(preview) else preview


def _predict_preview(
    model: UNet, image: np.ndarray | None, device, stop: StopFlag
) -> np.ndarray | None:
    """Tiled probabilities of the preview image, one pass (no test-time augmentation, even
    for a model that asks for it: a preview is for watching, and it delays the run); None
    if there is none or ``stop`` is set."""
    if image is None:
        return None
    model.eval()
    try:
        tile = default_tile_size(model)
        return predict(
            image, model, tile_size=tile, device=device, stop=stop, test_time_augmentation=False
        )
    except Cancelled:
        return None
    finally:
        model.train()


def _report_with_preview(
    model: UNet, run: Run, preview: tuple[Any, float], stop: StopFlag
) -> TrainProgress:
    """The progress record of this iteration, with the probabilities of the preview image
    (``preview`` is (image or callable, seconds between previews)) when one is due; the
    time spent predicting them is paused out of the budget."""
    image = _preview_due(run.state, *preview)
    preview_start = time.perf_counter()
    probabilities = _predict_preview(model, image, run.device, stop)
    run.state.paused += time.perf_counter() - preview_start
    return _report(run.state, run.config, probabilities)


def _report(state: LoopState, config: TrainConfig, preview: np.ndarray | None) -> TrainProgress:
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


def train(
    model: UNet,
    images: Sequence[np.ndarray],
    annotations: Sequence[np.ndarray],
    config: TrainConfig | None = None,
    **options: Any,
) -> UNet:
    """Run :func:`finetune` to the end; return ``model``, trained in place (for scripts).

    ``config`` (a :class:`~napari_unet.config.TrainConfig`) holds the budget and every
    training option (``TrainConfig(iterations=100)``); ``options`` are
    :func:`finetune`'s keywords (``augment``, ``weights``, ``stop``, ``preview``, ...).
    """
    for _ in finetune(model, images, annotations, config, **options):
        pass
    return model

"""The state a training run keeps while it runs: its clock and smoothed loss
(:class:`LoopState`) and the best weights seen so far (:class:`BestWeights`).

Used by :func:`~napari_unet.training.loop.finetune`.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field

from ..core.model import UNet

__all__ = ["LOSS_SMOOTHING", "SETTLING_BATCHES", "BestWeights", "LoopState"]

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


class BestWeights:
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


@dataclass
class LoopState:
    """What the loop tracks: iterations, time (previews excluded), the smoothed loss."""

    start: float
    recalibration_passes: int = 0
    floor: int = 0  # iterations before the time budget may end the run (learning_floor)
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

"""The training option groups: loss weights, augmentation, and the fine-tuning run.

:class:`WeightConfig`, :class:`AugmentConfig` and :class:`TrainConfig`, with the automatic
learning rates; a fine-tune records all three in the model's training history. Import them
from :mod:`napari_unet.config` (or :mod:`napari_unet`), the one place of every option group.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ._options import _Options


@dataclass(frozen=True)
class WeightConfig(_Options):
    """The paper's pixel-wise loss weights (eq. 2).

    ``w(x) = w_c(x) + w0 * exp(-(d1(x) + d2(x))**2 / (2 * sigma**2))``.

    Attributes
    ----------
    w0, sigma : float
        Height and width (pixels) of the border term (paper: 10 and about 5);
        finite, w0 >= 0 and sigma > 0 (else ValueError).
    class_balance : bool or None
        ``w_c`` inversely proportional to each class's share of the labelled
        pixels of an image (else ``w_c = 1``). Training also draws patch centres
        class by class (:class:`~napari_unet.training.sampling.PatchSampler`), so with very
        unequal scribbles the two together favour the rarer class more than either
        alone; with scribbles that are roughly balanced already, switching this off
        changes little (BENCHMARKS.md, ISBI scribbles: off there). ``None`` (the
        default): on for a model's first training and in weight maps (the paper), off
        when fine-tuning a model that was trained before
        (:func:`~napari_unet.training.weights.resolved_weight_config`): a few corrective
        strokes split unevenly between the classes, and balancing multiplies the rarer
        class's few pixels (annotation-loop benchmark: synthetic mean matched IoU no
        worse than the starting model in 11/12 rounds against 7/12, DSB F1 +0.054
        after three rounds against +0.047; BENCHMARKS.md).
    """

    w0: float = 10.0
    sigma: float = 5.0
    class_balance: bool | None = None

    def __post_init__(self) -> None:
        # sigma = 0 divides by zero in the border term; NaN or inf makes every weight NaN
        for name, value, positive in (("w0", self.w0, False), ("sigma", self.sigma, True)):
            try:
                low = bool(value > 0) if positive else bool(value >= 0)
                valid = low and bool(value < float("inf")) and not isinstance(value, bool)
            except (TypeError, ValueError):
                valid = False
            if not valid:
                what = "a finite number of pixels > 0" if positive else "a finite number >= 0"
                raise ValueError(f"WeightConfig {name} must be {what}, got {value!r}")
        balance = self.class_balance
        if not (balance is None or isinstance(balance, bool)):
            raise ValueError(
                f"WeightConfig class_balance must be True, False or None, got {balance!r}"
            )


@dataclass(frozen=True)
class AugmentConfig(_Options):
    """Data augmentation applied to each training patch.

    Attributes
    ----------
    elastic : bool
        Elastic deformation (random displacements on a coarse grid, bicubic field).
    elastic_std : float
        Standard deviation of the coarse displacements, in pixels (the paper: 10).
    elastic_grid : int
        Points per axis of the coarse grid (the paper: 3).
    flips : bool
        Random horizontal and vertical flips.
    rot90 : bool
        Random multiples of 90 degree rotations.
    intensity : float
        Amplitude of random gain/offset changes of the normalised image (0: off).
    """

    elastic: bool = True
    elastic_std: float = 10.0
    elastic_grid: int = 3
    flips: bool = True
    rot90: bool = True
    intensity: float = 0.1


#: Learning rate of a model's first training (``TrainConfig.learning_rate=None``).
SCRATCH_LEARNING_RATE: float = 1e-3
#: Learning rate when fine-tuning a model that was trained before.
FINETUNE_LEARNING_RATE: float = 1e-4
#: Iteration budget when fine-tuning a model that was trained before, if none is given
#: (``TrainConfig.finetune_iterations``): the budget the annotation-loop benchmark checks.
#: At 200 iterations (about what 30 s give on 2 idle cores) the bundled ``nuclei`` lost more
#: than 0.01 F1 on the unpainted half in 2 of 12 DSB rounds and 5 of 12 synthetic ones, against
#: 0 and 4 of 12 at 100 (same seeds); at 50, 0 and 6 of 12 (BENCHMARKS.md, annotation loop).
FINETUNE_ITERATIONS: int = 100

#: A model whose training history holds fewer iterations than this is still learning, not
#: trained (unless :data:`LEARNT_ITERATIONS` and a last loss below a guess's): a run on it
#: continues its training as a new model's (the scratch learning rate,
#: class balance, its whole time budget, no distillation towards it). A first run cut
#: short (a busy or slow machine: 42 iterations in 60 s) left a model at chance that later
#: runs could not move as fine-tunes (1e-4, 100 iterations, pulled towards it).
TRAINED_ITERATIONS: int = 300

#: A model with at least this many iterations in its history (but fewer than
#: :data:`TRAINED_ITERATIONS`) counts as trained once its last run's kept loss is not a
#: guess's (``training.history.loss_at_chance``): after a first run of 150 iterations, two
#: more rounds trained on as a new model's on corrective strokes were no worse than it in 8 of
#: 16 round-metrics (ISBI, 4 seeds; pixel error 0.17 -> 0.31 in one), fine-tunes in 16 of 16
#: (BENCHMARKS.md, annotation loop, labels ``s30-new150-first`` and ``s30-new150-learnt``).
#: Fewer, or at chance, and it is still learning.
LEARNT_ITERATIONS: int = 150

#: A run of a model still learning that has a time budget and no iteration budget goes on
#: past its time until the model has trained :data:`TRAINED_ITERATIONS` iterations in all,
#: but not past this many times its time budget (Stop ends it at any time). Without it a
#: busy machine decided a new model's fate: a first 60 s run in napari ended at 282-296
#: iterations, so a short second run took it past the mark and every later run was a
#: 100-iteration fine-tune of a model that had barely learnt.
LEARNING_FLOOR_CAP: float = 3.0

#: The time budget of a run (s) in the widget, ``napari-unet train`` and the core alike.
#: A new model trains for all of it: the first minute that issue 14 asks to be competitive
#: (the new-domain benchmark gives it 750 iterations, about 60 s at 2 threads). A trained
#: model stops earlier, after :data:`FINETUNE_ITERATIONS`, unless the machine is slow or
#: busy; until 2026-12-03 the widget's 30 s then cut ISBI fine-tunes short (89 of 100
#: iterations under napari on the 2-core development machine).
TIME_BUDGET_SECONDS: float = 60.0


@dataclass(frozen=True)
class TrainConfig(_Options):
    """Fine-tuning options.

    Attributes
    ----------
    seconds : float or None
        Time budget (default :data:`TIME_BUDGET_SECONDS`). ``None``: no time limit (then
        ``iterations`` must be set).
    iterations : int or None
        Iteration budget. Training stops at whichever budget is reached first, and the
        learning rate decays over the larger share used: for a run that the machine's
        speed does not change (the same weights from the same ``seed``), give
        ``seconds=None`` too, as ``napari-unet train --iterations`` does.
    finetune_iterations : int or None
        The iteration budget of a model that was trained before when ``iterations``
        is None (default :data:`FINETUNE_ITERATIONS`; the time budget still applies,
        whichever is reached first), so how busy the machine is does not decide how far
        a trained model moves. None: the time budget alone. Not used for a model that
        was never trained, which keeps learning for its whole time budget.
    patch_size : int or None
        Input patch edge. ``None``: the smallest valid size whose output is at
        least 96 pixels (or the closest for "same" networks).
    batch_size : int
        Patches per iteration.
    learning_rate : float or None
        Adam learning rate at the start. ``None``: :data:`SCRATCH_LEARNING_RATE` for
        a model that was never trained, :data:`FINETUNE_LEARNING_RATE` for one that
        was (faster rates made the bundled models worse on the parts that were not
        painted: BENCHMARKS.md, annotation loop).
    lr_schedule : {"linear", "cosine", "constant"}
        How the learning rate changes over the budget (the larger of the time and
        iteration fractions used): "linear" decays it to 0 at the end of the budget,
        "cosine" follows half a cosine to 0, "constant" keeps it. Decaying to 0 over a
        fixed budget trains better in short runs than a constant rate (see
        BENCHMARKS.md, ISBI scribbles).
    bn_recalibration : int
        Models with batch norm only: after training, re-estimate the batch-norm
        statistics of the kept weights from this many batches of training patches
        (forward passes, no weight update; the time is taken from the budget);
        0 = off. With a constant learning rate the running averages lag behind the
        weights and this helps; with a decaying rate they catch up by themselves
        and it did not (BENCHMARKS.md, ISBI scribbles), hence the default 0.
    seed : int
        Seed of the random generator (patch positions, augmentation).
    device : str
        "auto", "cpu", "cuda", "cuda:N" or "mps".
    amp : bool
        Automatic mixed precision on CUDA (float16 autocast with a gradient scaler).
    distillation : float
        Weight of the term that keeps a trained model's own predictions on the
        unpainted pixels (:mod:`~napari_unet.training.distillation`); 0 = strokes only. Not
        used for a model that was never trained. 10: with gaps in boundaries closed
        (:attr:`~napari_unet.config.PredictConfig.close_boundaries`), the annotation-loop
        benchmark's DSB rounds were all no worse than the starting model at 10 (24/24,
        F1 +0.054 after three rounds) against 10/24 at 3 (BENCHMARKS.md).
    distillation_margin : int
        Pixels around a stroke that contradicts the starting model where its
        predictions are not kept.
    distillation_border : float
        With distillation: ``w0`` of the paper's border term computed on the
        starting model's own objects, weighting the distillation of the gaps
        between its touching objects (0 = every unpainted pixel alike). 30 kept
        the most rounds of the annotation-loop benchmark no worse than the
        starting model (DSB F1 16/24 rounds against 12/24 at 10 and 9/24 at 0;
        ISBI Rand error 12/12 at 30 and 10, 9/12 at 0; BENCHMARKS.md).
    distillation_temperature : float
        The teacher's probabilities are sharpened to ``p ** (1 / T)``
        (renormalised) before distillation: 1 keeps them, below 1 its decisions
        at uncertain pixels become firm targets.
    context_patches : float
        With distillation: share of the training patches centred anywhere in the
        images instead of on a stroke, so the whole image is rehearsed. 0.25: in the
        annotation-loop benchmark the synthetic image's nuclei were split less often
        than at 0.5 (F1 no worse than the starting model in 8/12 rounds against 5/12;
        0.75: 2/12), with DSB and ISBI as before (BENCHMARKS.md).

    Raises
    ------
    ValueError
        A budget, batch size or learning rate that is not positive, or an
        unknown schedule.
    """

    seconds: float | None = TIME_BUDGET_SECONDS
    iterations: int | None = None
    finetune_iterations: int | None = FINETUNE_ITERATIONS
    patch_size: int | None = None
    batch_size: int = 4
    learning_rate: float | None = None
    lr_schedule: Literal["linear", "cosine", "constant"] = "linear"
    bn_recalibration: int = 0
    seed: int = 0
    device: str = "auto"
    amp: bool = False
    distillation: float = 10.0
    distillation_margin: int = 3
    distillation_border: float = 30.0
    distillation_temperature: float = 1.0
    context_patches: float = 0.25

    def __post_init__(self) -> None:
        if not self.distillation_temperature > 0:
            raise ValueError(
                f"distillation_temperature must be > 0, got {self.distillation_temperature}"
            )
        if not self.distillation_border >= 0:
            raise ValueError(f"distillation_border must be >= 0, got {self.distillation_border}")
        if not (self.distillation >= 0 and self.distillation_margin >= 0):
            raise ValueError(
                "distillation and distillation_margin must be >= 0, got "
                f"{self.distillation} and {self.distillation_margin}"
            )
        if not 0 <= self.context_patches < 1:
            raise ValueError(f"context_patches must be in [0, 1), got {self.context_patches}")
        if self.lr_schedule not in ("linear", "cosine", "constant"):
            raise ValueError(
                f"lr_schedule must be 'linear', 'cosine' or 'constant', got {self.lr_schedule!r}"
            )
        if self.bn_recalibration < 0:
            raise ValueError(f"bn_recalibration must be >= 0, got {self.bn_recalibration}")
        positive = {
            "seconds": self.seconds,
            "iterations": self.iterations,
            "finetune_iterations": self.finetune_iterations,
            "batch_size": self.batch_size,
            "learning_rate": self.learning_rate,
            "patch_size": self.patch_size,
        }
        for name, value in positive.items():
            if value is not None and not value > 0:
                raise ValueError(f"{name} must be positive, got {value}")

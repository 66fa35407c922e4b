"""ISBI 2012 from scratch with simulated scribbles: pixel error after a time budget.

Trains a freshly initialised U-Net on slices 00-14 with scribbles simulated from
the labels (thin strokes, <= 2 % of the pixels), then predicts slices 15-19 and
reports the pixel error (and Rand error) on them. Reference from the issue: a
plain training loop reaches a pixel error of about 0.09 after 60 s on this CPU.

    python benchmarks/bench_isbi_scribbles.py --budgets 60 300 --threads 2

With several budgets the same model keeps training: after each budget it is
evaluated, then :func:`~napari_unet.training.loop.finetune` is called again for the
remaining time (a new Adam state and a new sampling seed, ``seed + stage``).
Only finetune's own time counts towards a budget (its loop and the batch-norm
recalibration, which it fits into the budget); the one-off weight map computation
and the held-out evaluation do not.

Experiments, not napari-unet options: test doubles of private training functions,
patched in by this script only (:func:`research_patches` says why; the core has no hook
for them):

* ``--sampling uniform``: patch centres drawn uniformly over all labelled pixels
  (the scribbles' own class prior) instead of class-balanced ones. With
  :func:`~napari_unet.io.synthetic.simulate_scribbles` every class gets exactly the
  same number of pixels per image, so the two are the same distribution here.
* ``--membrane-weight F``: membrane (label 1) loss weights multiplied by ``F``
  after the paper's weight map (a class prior in the loss).
* ``--ema DECAY``: also score an exponential moving average of the weights.
* ``--compare-last``: also score the last weights (finetune restores the weights
  of the lowest smoothed training loss).
* ``--entropy-weight W START RAMP``: add W x the mean prediction entropy of the
  unlabelled pixels to the loss, ramped in from iteration START over RAMP
  iterations (the kept "best" weights then follow the combined loss: use
  ``--compare-last``).
* ``--pairwise W SIGMA RADIUS``: add W x an intensity-gated Potts penalty on
  neighbouring pixels (offsets up to RADIUS px) to the loss: label changes between
  pixels of similar normalised intensity (difference << SIGMA) cost, changes across
  intensity edges are free (the local CRF losses of scribble supervision: Tang et al.,
  ECCV 2018; Obukhov et al., 2019). Uses every pixel of a patch, labelled or not.
* ``--warmup SHARE``: linear learning-rate warm-up over that share of the budget.
* ``--scribble-shares area``: each class's share of the 2 % proportional to its
  area (about 21 % membrane) instead of equal shares.

``--lr-schedule`` and ``--bn-recalibration`` are :class:`~napari_unet.TrainConfig`
options; ``--tta`` also scores with ``predict(..., test_time_augmentation=True)``;
``--dense`` trains on the dense labels (a reference, not the benchmark).

``oracle_*`` fields use the held-out truth (best membrane threshold): diagnostics only.

The research variants' patches live in ``isbi_scribbles_patches.py``.
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import subprocess
import time

import numpy as np
import torch
from isbi_scribbles_patches import _LAST, research_patches

from napari_unet import ModelConfig, TrainConfig, new_model, predict
from napari_unet.config import AugmentConfig, WeightConfig
from napari_unet.core.checkpoint import save_model
from napari_unet.core.inference import default_tile_size
from napari_unet.core.postprocess import class_mask
from napari_unet.evaluation.metrics import evaluate
from napari_unet.io.data import load_isbi, simulate_scribbles
from napari_unet.training.loop import finetune
from napari_unet.training.sampling import default_patch_size
from napari_unet.training.weights import annotation_from_binary


def _area_share_scribbles(annotation: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Scribbles of 2 % of the pixels, each class's share proportional to its area."""
    scribbles = np.zeros(annotation.shape, np.uint8)
    for value in (1, 2):
        only_this = np.where(annotation == value, annotation, 0)
        share = 0.02 * float(np.mean(annotation == value))
        scribbles += simulate_scribbles(only_this, rng, fraction=share, stroke_width=1)
    return scribbles


def scribbled_training_set(
    seed: int, dense: bool = False, shares: str = "equal"
) -> tuple[list[np.ndarray], list[np.ndarray], dict]:
    images, labels = load_isbi(range(15))
    rng = np.random.default_rng(seed)
    if dense:
        scribbles = [annotation_from_binary(label) for label in labels]
    elif shares == "area":
        scribbles = [_area_share_scribbles(annotation_from_binary(label), rng) for label in labels]
    else:
        scribbles = [
            simulate_scribbles(annotation_from_binary(label), rng, fraction=0.02, stroke_width=1)
            for label in labels
        ]
    stats = {
        "scribble_coverage": round(float(np.mean([(s > 0).mean() for s in scribbles])), 4),
        "membrane_scribbles": round(float(np.mean([(s == 1).mean() for s in scribbles])), 4),
        "true_membrane_fraction": round(float(np.mean([(lab == 0).mean() for lab in labels])), 4),
    }
    return list(images), scribbles, stats


def held_out_scores(model, tta: bool = False, membrane_out: list | None = None) -> dict[str, float]:
    """Scores on slices 15-19; ``membrane_out``, if given, receives each slice's
    membrane probability (so a caller need not predict again)."""
    images, labels = load_isbi(range(15, 20))
    tile = default_tile_size(model, 572)
    results, predicted_membrane, membrane_probability = [], [], []
    for image, label in zip(images, labels):
        probabilities = predict(image, model, tile_size=tile, test_time_augmentation=tta)
        mask = class_mask(probabilities)
        predicted_membrane.append((mask == 1).mean())
        membrane_probability.append(probabilities[0])
        results.append(evaluate(mask, label, kind="membranes"))
    scores = {
        key: float(np.mean([r[key] for r in results])) for key in ("pixel_error", "rand_error")
    }
    scores["predicted_membrane_fraction"] = round(float(np.mean(predicted_membrane)), 4)
    # Diagnostic only (uses the held-out truth): pixel error at the best membrane threshold.
    truth = labels == 0
    errors = {
        t: float(np.mean([(p > t) != m for p, m in zip(membrane_probability, truth)]))
        for t in np.round(np.arange(0.05, 1.0, 0.05), 2)
    }
    best = min(errors, key=errors.get)
    scores["oracle_threshold"] = float(best)
    scores["oracle_pixel_error"] = round(errors[best], 4)
    if membrane_out is not None:
        membrane_out.extend(membrane_probability)
    return scores


def run(
    budgets: list[float],
    arch: dict,
    train: dict,
    augment: AugmentConfig,
    weights: WeightConfig,
    seed: int,
    variants: dict,
) -> list[dict]:
    """Train for the (sorted) budgets in turn, scoring after each; ``variants`` see main."""
    images, scribbles, stats = scribbled_training_set(
        seed, variants["dense"], variants["scribble_shares"]
    )
    model = new_model(ModelConfig(**arch), seed=seed)
    config = TrainConfig(seconds=None, iterations=None, seed=seed, **train)
    print(
        f"# {model.describe()}; patch {config.patch_size or default_patch_size(model)}", flush=True
    )
    rows, spent, iterations = [], 0.0, 0
    for stage, budget in enumerate(sorted(budgets)):
        steps = finetune(
            model,
            images,
            scribbles,
            config.replace(seconds=budget - spent, seed=seed + stage),
            augment=augment,
            weights=weights,
            report_every=10,
        )
        for step in steps:
            last = step
        entry = model.metadata["training_history"][-1]
        spent += entry["seconds"]
        iterations += entry["iterations"]
        scores, eval_seconds = _evaluate_stage(model, budget, variants)
        rows.append(
            {
                "budget_s": budget,
                "trained_s": round(spent, 1),
                "iterations": iterations,
                "smoothed_loss": round(last.smoothed_loss, 4),
                **scores,
                "eval_s": eval_seconds,
                **stats,
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    return rows


def _evaluate_stage(model, budget: float, variants: dict) -> tuple[dict, float]:
    """Scores after one budget (held out, best iteration, the variants'), the model saved if
    asked, and the seconds all that took."""
    start = time.perf_counter()
    scores = {**held_out_scores(model), "best_iteration": _LAST.get("best_iteration")}
    scores.update(_variant_scores(model, variants))
    if variants["save"]:
        save_model(model, f"{variants['save']}_{budget:g}s.safetensors")
    return scores, round(time.perf_counter() - start, 1)


def _variant_scores(model, variants: dict) -> dict:
    """Scores of the extra variants: test-time augmentation, last weights, EMA weights."""
    scores = {}
    if variants["tta"]:
        scores.update({f"tta_{k}": v for k, v in held_out_scores(model, tta=True).items()})
    if variants["compare_last"]:
        last_model = copy.deepcopy(model)
        last_model.load_state_dict(_LAST["state"])
        scores.update({f"last_{k}": v for k, v in held_out_scores(last_model).items()})
    if "ema" in _LAST:
        ema_model = copy.deepcopy(_LAST["ema"].module).eval()
        scores.update({f"ema_{k}": v for k, v in held_out_scores(ema_model).items()})
    return scores


def cpu_name() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        return next(
            line.split(":", 1)[1].strip() for line in out.splitlines() if "Model name" in line
        )
    except Exception:  # informative only
        return platform.processor() or platform.machine()


def _add_architecture_options(parser: argparse.ArgumentParser) -> None:
    """The U-Net's architecture (``ModelConfig``)."""
    parser.add_argument("--depth", type=int, default=3)
    parser.add_argument("--features", type=int, default=16)
    parser.add_argument("--padding", default="valid", choices=["valid", "same"])
    parser.add_argument("--batch-norm", action="store_true")
    parser.add_argument("--upsampling", default="upconv", choices=["upconv", "bilinear"])


def _add_training_options(parser: argparse.ArgumentParser) -> None:
    """Patch and batch size, learning rate and its schedule, elastic deformation, loss
    weights and batch-norm recalibration."""
    parser.add_argument("--patch-size", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--no-elastic", action="store_true")
    parser.add_argument("--elastic-std", type=float, default=10.0)
    parser.add_argument("--w0", type=float, default=10.0, help="border term of the weight map")
    parser.add_argument("--no-class-balance", action="store_true")
    parser.add_argument(
        "--membrane-weight",
        type=float,
        default=1.0,
        help="experiment: multiply the loss weights of membrane (label 1) pixels by this",
    )
    parser.add_argument("--lr-schedule", default="linear", choices=["linear", "cosine", "constant"])
    parser.add_argument(
        "--bn-recalibration",
        type=int,
        default=0,
        metavar="N",
        help="TrainConfig.bn_recalibration: batches to re-estimate batch-norm statistics (0 = off)",
    )


def _add_scoring_options(parser: argparse.ArgumentParser) -> None:
    """Extra scores after each budget: test-time augmentation, last weights."""
    parser.add_argument(
        "--tta", action="store_true", help="also score with test-time augmentation (8 symmetries)"
    )
    parser.add_argument(
        "--compare-last",
        action="store_true",
        help="also score the last weights (finetune restores those of the lowest smoothed loss)",
    )


def _add_experiment_options(parser: argparse.ArgumentParser) -> None:
    """Research variants (see the module docstring) and the dense reference."""
    parser.add_argument("--sampling", default="balanced", choices=["balanced", "uniform"])
    parser.add_argument(
        "--dense",
        action="store_true",
        help="reference: train on the dense labels instead of simulated scribbles",
    )
    parser.add_argument(
        "--ema",
        type=float,
        default=0.0,
        metavar="DECAY",
        help="experiment: also score an exponential moving average of the weights",
    )
    parser.add_argument(
        "--entropy-weight",
        type=float,
        nargs=3,
        default=None,
        metavar=("WEIGHT", "START", "RAMP"),
        help="experiment: entropy minimisation on unlabelled pixels from iteration START",
    )
    parser.add_argument(
        "--pairwise",
        type=float,
        nargs=3,
        default=None,
        metavar=("WEIGHT", "SIGMA", "RADIUS"),
        help="experiment: intensity-gated Potts penalty between neighbouring pixels",
    )
    parser.add_argument(
        "--warmup",
        type=float,
        default=0.0,
        metavar="SHARE",
        help="experiment: linear learning-rate warm-up over this share of the budget",
    )
    parser.add_argument(
        "--scribble-shares",
        default="equal",
        choices=["equal", "area"],
        help="sensitivity: each class gets an equal share of the 2 %% (default) or one "
        "proportional to its area",
    )


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    """Saved models, threads, seed and the JSON-lines log."""
    parser.add_argument("--save", default=None, help="save the trained models as PREFIX_*")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--log", default=None, help="append a JSON line per budget to this file")
    parser.add_argument("--name", default="", help="experiment name for --log")


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (``argv``, else ``sys.argv``) as parsed arguments."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budgets", type=float, nargs="+", default=[60, 300])
    _add_architecture_options(parser)
    _add_training_options(parser)
    _add_scoring_options(parser)
    _add_experiment_options(parser)
    _add_run_options(parser)
    return parser.parse_args(argv)


def main() -> None:
    args = parse_arguments()
    torch.set_num_threads(args.threads)
    arch = {
        "depth": args.depth,
        "base_features": args.features,
        "padding": args.padding,
        "batch_norm": args.batch_norm,
        "upsampling": args.upsampling,
    }
    train = {
        "patch_size": args.patch_size,
        "batch_size": args.batch_size,
        "learning_rate": args.learning_rate,
        "lr_schedule": args.lr_schedule,
        "bn_recalibration": args.bn_recalibration,
    }
    augment = AugmentConfig(elastic=not args.no_elastic, elastic_std=args.elastic_std)
    weights = WeightConfig(w0=args.w0, class_balance=not args.no_class_balance)
    print(
        f"# {cpu_name()}, torch {torch.__version__}, {args.threads} threads, arch {arch}, "
        f"train {train}, elastic {augment.elastic} (std {augment.elastic_std}), "
        f"w0 {weights.w0}, class balance {weights.class_balance}, sampling {args.sampling}, "
        f"membrane weight x{args.membrane_weight}",
        flush=True,
    )
    variants = {
        key: getattr(args, key)
        for key in ("dense", "tta", "compare_last", "save", "scribble_shares")
    }
    with research_patches(args):
        rows = run(args.budgets, arch, train, augment, weights, args.seed, variants)
    if args.log:
        with open(args.log, "a") as log:
            for row in rows:
                log.write(json.dumps({"name": args.name, "args": vars(args), **row}) + "\n")


if __name__ == "__main__":
    main()

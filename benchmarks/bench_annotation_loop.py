"""The annotate -> fine-tune loop, simulated: does fine-tuning make the model better?

A simulated user (:func:`napari_unet.evaluation.annotator.corrective_strokes`) looks at the
prediction of the part they annotate, paints a few short strokes of the true class
on the largest wrong regions (<= 0.5 % of that part's pixels per round, 1-3 px wide,
both classes), the model is fine-tuned from where it is (as in the widget), and the
part that was never painted is scored (``loop_tasks.py``). Round 0 is the starting
(bundled) model, so every later round is a paired comparison against it.

Budgets are iterations, so machine load changes the wall time, not the result; each
round's wall time is reported. Each round's masks are Predict's, which after a fine-tune
keeps the separations of the last round's masks where they still stand out
(``napari_unet.core.continuity``, as the widget does; ``--no-memory``: predict afresh, as
every round did before 2026-12-02 16:00).

``--new-model N``: the loop a user runs on a new kind of image. Round 1 trains a new
model (``config.NEW_MODEL_CONFIG``) for N iterations from first scribbles
(``simulate_scribbles``, 2 % of the paintable part, 1 px); each later round adds
corrective strokes. With ``--start base`` (the default) each later round trains again
from the untrained model with all the strokes, N iterations (what the widget did until
2026-12-02); with ``--start first`` it fine-tunes the model of round 1 as a trained
model (``--iterations``, distillation: what the widget does now); with ``--start
current`` the last round's model. As in the widget, a model under
``config.TRAINED_ITERATIONS`` is still learning: its round trains N iterations more as a new
model's, and with ``--start first`` its result becomes the base. Rounds 2.. are compared with
round 1 (``reference_round``).

``--swapped`` exchanges the painted and the scored part (a check on objects a rule was not
chosen on); ``--instances-first`` simulates a user who paints first where the instances join
two true objects or cut one; ``--brush W --sloppy`` one who paints W px wide strokes that
cover whatever the brush passes over, not only the pixels of the class painted (napari's own
brush starts at 10 px, the Annotate section's at 3; ISBI membranes are about 5 px wide);
``--fraction F --strokes N`` one who paints more a round (at most F of the part's pixels, N
strokes); ``--save-probabilities DIR`` keeps every round's probabilities, to re-score the same
rounds with other mask rules.

    python benchmarks/bench_annotation_loop.py --task dsb --seeds 0 1 2 3 \\
        --label distill --out benchmarks/results/annotation_loop.jsonl
    python benchmarks/bench_annotation_loop.py --summarize benchmarks/results/annotation_loop.jsonl
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import numpy as np
import torch
from loop_options import build_parser
from loop_tasks import TASKS, LoopTask

from napari_unet.config import (
    NEW_MODEL_CONFIG,
    PredictConfig,
    TrainConfig,
    WeightConfig,
)
from napari_unet.core.checkpoint import load_model, new_model
from napari_unet.core.inference import default_tile_size, predict
from napari_unet.core.postprocess import prediction_mask
from napari_unet.evaluation.annotator import (
    StrokeBudget,
    corrective_strokes,
    instance_error_priority,
)
from napari_unet.evaluation.review import uncertainty
from napari_unet.io.data import simulate_scribbles
from napari_unet.training.distillation import has_been_trained
from napari_unet.training.loop import finetune

#: Largest loss of quality counted as "no worse" (F1 / pixel error: 0.01; Rand: 0.02).
TOLERANCE = {"f1": 0.01, "mean_matched_iou": 0.01, "pixel_error": 0.01, "rand_error": 0.02}
LOWER_IS_BETTER = {"pixel_error", "rand_error"}


def predict_masks(
    model,
    task: LoopTask,
    close_boundaries: bool = PredictConfig.close_boundaries,
    fill_holes: bool = PredictConfig.fill_holes,
    save_to: Path | None = None,
    previous: list[np.ndarray] | None = None,
    annotations: list[np.ndarray] | None = None,
    device: str = "cpu",
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Class masks (as Predict shows them) and uncertainty maps of every image of the task.

    Predict's mask: gaps closed (unless the model leaves them open), the separations
    of the ``previous`` round's masks kept where they still stand out
    (:mod:`napari_unet.core.continuity`, as the widget does after a fine-tune) and
    objects grown up to the model's background threshold;
    with ``close_boundaries=False`` the plain most probable class.
    """
    tile = default_tile_size(model, 572)
    probabilities = [predict(image, model, tile_size=tile, device=device) for image in task.images]
    if save_to is not None:  # float16: for re-scoring the same rounds with other mask rules
        save_to.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(save_to, *[p.astype(np.float16) for p in probabilities])
    threshold = model.info.background_threshold if close_boundaries else 0.5  # as Predict shows
    closing = close_boundaries and model.info.close_gaps
    before = previous or [None] * len(probabilities)
    strokes = annotations or [None] * len(probabilities)
    masks = [
        prediction_mask(
            p, close_boundaries=closing, background_threshold=threshold, fill_holes=fill_holes,
            previous=last, annotation=painted,
        )
        for p, last, painted in zip(probabilities, before, strokes)
    ]  # fmt: skip
    return masks, [uncertainty(p) for p in probabilities]


def paint_round(task, masks, uncertain, annotations, rng, guided, budget) -> list[np.ndarray]:
    """One round of corrective strokes within ``budget``; ``guided``: False (largest
    errors first), "uncertainty" or "instances" (:func:`instance_error_priority`)."""
    painted = []
    for i in range(len(task.images)):
        priority = None
        if guided == "uncertainty":
            priority = uncertain[i]
        elif guided == "instances":
            priority = instance_error_priority(masks[i], task.truth[i])
        painted.append(
            corrective_strokes(
                masks[i], task.truth[i], task.paint[i], annotations[i], rng, budget, priority
            )
        )
    return painted


def stroke_budget(args) -> StrokeBudget:
    """The simulated user's strokes: 1-3 px and exact by default; ``--brush W`` paints
    W px wide, ``--sloppy`` over whatever the brush passes (a wide brush on thin membranes),
    ``--fraction`` and ``--strokes`` set how much a round paints."""
    widths = StrokeBudget.widths if args.brush is None else (args.brush,)
    return StrokeBudget(
        fraction=args.fraction, max_strokes=args.strokes, widths=widths, exact=not args.sloppy
    )


def one_class_errors(label: int | None, masks: list, truth: list) -> list[np.ndarray]:
    """``masks`` as a user who paints class ``label`` only sees them: right wherever the
    truth is another class (so the strokes go to this class's errors); None: as they are."""
    return masks if label is None else [np.where(t == label, m, t) for m, t in zip(masks, truth)]


def one_class_strokes(label: int | None, annotations: list[np.ndarray]) -> list[np.ndarray]:
    """The strokes of class ``label`` only (the others, e.g. the one stroke of a missing
    class that :func:`corrective_strokes` adds, taken off); None: all of them."""
    if label is None:
        return annotations
    return [np.where(painted == label, painted, 0).astype(painted.dtype) for painted in annotations]


def first_scribbles(task: LoopTask, rng) -> list[np.ndarray]:
    """A new model's first strokes: random scribbles on 2 % of each paintable part."""
    scribbles = []
    for truth, paint in zip(task.truth, task.paint):
        if not paint.any():
            scribbles.append(np.zeros(truth.shape, np.uint8))
            continue
        dense = np.where(paint, truth, 0).astype(np.uint8)
        fraction = 0.02 * float(paint.mean())
        scribbles.append(simulate_scribbles(dense, rng, fraction=fraction, stroke_width=1))
    return scribbles


def run_session(task: LoopTask, seed: int, args) -> list[dict]:
    """Rounds of predict -> paint -> fine-tune on one task; one record per round."""
    fresh = args.new_model is not None
    model = base = new_model(NEW_MODEL_CONFIG, seed=seed) if fresh else load_model(task.model)
    rng = np.random.default_rng(seed)
    annotations = [np.zeros(image.shape, np.uint8) for image in task.images]
    masks, uncertain = predict_masks(
        model, task, args.close_boundaries, args.fill_holes, _saved(args, task, seed, 0),
        device=args.device,
    )  # fmt: skip
    rows = [{"round": 0, **task.score(masks), "iterations": 0, "seconds": 0.0, "painted": 0}]
    for round_index in range(1, args.rounds + 1):
        if fresh and round_index == 1:
            annotations = first_scribbles(task, rng)
        else:
            seen = one_class_errors(args.only_label, masks, task.truth)
            annotations = paint_round(
                task, seen, uncertain, annotations, rng, args.guided, stroke_budget(args)
            )
            annotations = one_class_strokes(args.only_label, annotations)
        if fresh and args.start == "first" and not has_been_trained(base):
            base = model  # a still-learning base gives way to its run's result, as in the widget
        if args.start in ("base", "first"):  # every round from the base, as the widget does
            model = copy.deepcopy(base)
        # a new model still learning (under config.TRAINED_ITERATIONS) trains its whole
        # budget again as a new model's, as in the widget; a trained one is fine-tuned
        learning = fresh and not has_been_trained(model)
        iterations = args.new_model if learning else args.iterations
        config = TrainConfig(
            seconds=args.seconds, iterations=iterations,
            learning_rate=None if learning else args.lr,  # --lr: fine-tunes only
            distillation=args.distillation, context_patches=args.context, seed=seed,
            distillation_margin=args.margin, distillation_border=args.kd_border,
            distillation_temperature=args.kd_temperature,
            device=args.device,
        )  # fmt: skip
        start = time.perf_counter()
        images = [im for im, a in zip(task.images, annotations) if a.any()]
        labels = [a for a in annotations if a.any()]
        weights = WeightConfig(w0=args.w0, class_balance=args.class_balance)
        for _ in finetune(model, images, labels, config, weights=weights):
            pass
        seconds = time.perf_counter() - start
        masks, uncertain = predict_masks(
            model, task, args.close_boundaries, args.fill_holes,
            _saved(args, task, seed, round_index),
            previous=masks if args.memory else None, annotations=annotations,
            device=args.device,
        )  # fmt: skip
        painted = sum(int(np.count_nonzero(a)) for a in annotations)
        area = sum(int(np.count_nonzero(p)) for p in task.paint)
        history = model.metadata["training_history"][-1]
        rows.append({
            "round": round_index, **task.score(masks), "iterations": history["iterations"],
            "background_threshold": round(model.info.background_threshold, 4),
            "kept_iteration": history["kept_weights_iteration"], "seconds": round(seconds, 1),
            "painted": painted, "painted_fraction": round(painted / area, 5),
            **{k: v for k, v in history.items() if k == "moved_decision"},  # training.seeding
        })  # fmt: skip
    return rows


def _saved(args, task: LoopTask, seed: int, round_index: int) -> Path | None:
    """Where ``--save-probabilities`` keeps one round's probabilities, or None."""
    if not args.save_probabilities:
        return None
    name = f"{task.name}_{args.label}_seed{seed}_round{round_index}.npz"
    return Path(args.save_probabilities) / name


def summarize(paths: list[str]) -> None:
    """Markdown tables per task: each label's medians per round, gains and "no worse" counts."""
    lines = [line for path in paths for line in Path(path).read_text(encoding="utf-8").splitlines()]
    records = [json.loads(line) for line in lines]
    groups: dict[tuple[str, str], list[dict]] = {}
    for record in records:
        groups.setdefault((record["task"], record["label"]), []).append(record)
    for (task, label), sessions in sorted(groups.items()):
        metrics = [k for k in TOLERANCE if k in sessions[0]["rounds"][0]]
        rounds = len(sessions[0]["rounds"])
        reference = sessions[0].get("reference_round", 0)
        seeds = sorted(s["seed"] for s in sessions)
        print(f"\n**{task} / {label}** ({len(sessions)} sessions, seeds {seeds})\n")
        later = range(reference + 1, rounds)
        start = "start" if reference == 0 else f"round {reference} (reference)"
        print(f"| metric | {start} | " + " | ".join(f"round {r}" for r in later) + " |")
        print("|---|---|" + "---|" * len(later))
        for metric in metrics:
            print(_metric_row(sessions, metric, rounds, reference))
        tally = [
            _no_worse(sessions, m, r, reference)
            for m in metrics
            for r in range(reference + 1, rounds)
        ]
        no_worse, total = sum(n for n, _ in tally), sum(t for _, t in tally)
        its = [np.median([s["rounds"][r]["iterations"] for s in sessions]) for r in later]
        wall = [np.median([s["rounds"][r]["seconds"] for s in sessions]) for r in later]
        cells = " | ".join(f"{i:.0f} it, {w:.0f} s" for i, w in zip(its, wall))
        print(f"| iterations, wall (median) | | {cells} |")
        print(f"\nNo worse than the {start} in {no_worse} of {total} round-metrics.")


def _gains(sessions: list[dict], metric: str, round_index: int, reference: int) -> list[float]:
    """Paired change of each session against its reference round (positive = better)."""
    sign = -1 if metric in LOWER_IS_BETTER else 1
    return [
        sign * (s["rounds"][round_index][metric] - s["rounds"][reference][metric]) for s in sessions
    ]


def _no_worse(
    sessions: list[dict], metric: str, round_index: int, reference: int
) -> tuple[int, int]:
    """(sessions no worse than the reference by more than the tolerance, sessions)."""
    gains = _gains(sessions, metric, round_index, reference)
    return sum(g >= -TOLERANCE[metric] for g in gains), len(gains)


def _metric_row(sessions: list[dict], metric: str, rounds: int, reference: int = 0) -> str:
    """Median value, median paired gain and sessions no worse than the reference round
    (the start), per later round."""
    start = [s["rounds"][reference][metric] for s in sessions]
    cells = [f"{np.median(start):.3f}"]
    for r in range(reference + 1, rounds):
        values = [s["rounds"][r][metric] for s in sessions]
        gains = _gains(sessions, metric, r, reference)
        no_worse, _ = _no_worse(sessions, metric, r, reference)
        cells.append(
            f"{np.median(values):.3f} ({np.median(gains):+.3f}; {no_worse}/{len(gains)} no worse)"
        )
    return f"| {metric} | " + " | ".join(cells) + " |"


def session_record(task: LoopTask, seed: int, args: argparse.Namespace) -> dict:
    """Run one session and return its JSON record: its rounds and the options it ran with."""
    rows = run_session(task, seed, args)
    options = {k: v for k, v in vars(args).items() if k not in ("out", "seeds")}
    record = {"task": task.name, "label": args.label, "seed": seed, "rounds": rows}
    record["reference_round"] = 1 if args.new_model is not None else 0
    record["options"] = options
    return record


def write_record(record: dict, out: str | None) -> None:
    """Print one session's record as a JSON line and append it to ``out`` if given."""
    print(json.dumps(record), flush=True)
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        with open(out, "a") as handle:
            handle.write(json.dumps(record) + "\n")


def main() -> None:
    """Summarise earlier runs (``--summarize``) or run one session per seed."""
    parser = build_parser(__doc__.split("\n\n")[0])
    args = parser.parse_args()
    if args.summarize:
        summarize(args.summarize)
        return
    torch.set_num_threads(args.threads)
    if args.paint_slices and args.task != "isbi":
        parser.error("--paint-slices is for --task isbi")
    extra = {"painted_slices": tuple(args.paint_slices)} if args.paint_slices else {}
    task = TASKS[args.task](swapped=args.swapped, **extra)
    for seed in args.seeds:
        write_record(session_record(task, seed, args), args.out)


if __name__ == "__main__":
    main()

"""Where the ISBI loop loses: the false cut on slice 18 after round 1, beside slices 16-17.

Runs round 1 of the annotation-loop benchmark on its ISBI split (paint 15-16, seed 0, the
default recipe: ``bench_annotation_loop.py --task isbi --seeds 0 --rounds 1``), finds the
start mask's objects on slice 18 that the round cuts into parts of 200 pixels or more, and
measures how far the new line lies from the membranes that ISBI's truth draws on the other
slices, against random pixels of the same cell. Writes a figure of the cut.

    python benchmarks/figure_isbi_slice18.py --out docs/experiments/figures/isbi_slice18_cut.png
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import matplotlib
import numpy as np
import torch
from bench_annotation_loop import paint_round, predict_masks
from loop_tasks import ISBI_SLICES, isbi_task
from PIL import Image
from scipy import ndimage as ndi
from skimage.measure import label

from napari_unet.config import FINETUNE_ITERATIONS, TrainConfig
from napari_unet.core.checkpoint import load_model
from napari_unet.evaluation.metrics import evaluate
from napari_unet.io.data import load_isbi
from napari_unet.training.loop import finetune

SLICE = 18


def round_one(seed: int):
    """The benchmark's round 1 (its ``paint_round``, ``finetune`` and ``predict_masks``):
    the task, the starting and the tuned model, and every slice's mask before and after."""
    task, model = isbi_task(), load_model("em-membranes")
    before, _ = predict_masks(model, task)
    uncertain = [None] * len(task.images)
    empty = [np.zeros(image.shape, np.uint8) for image in task.images]
    strokes = paint_round(task, before, uncertain, empty, np.random.default_rng(seed), False)
    painted = [i for i, s in enumerate(strokes) if s.any()]
    config = TrainConfig(seconds=None, iterations=FINETUNE_ITERATIONS, seed=seed, device="cpu")
    start = load_model("em-membranes")
    for _ in finetune(
        model, [task.images[i] for i in painted], [strokes[i] for i in painted], config
    ):
        pass
    after, _ = predict_masks(model, task, previous=before, annotations=strokes)
    return task, start, model, before, after


def new_cuts(before: np.ndarray, after: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """(object of ``before``, the new line through it) for every object the round cuts."""
    objects_before = label(before == 2, connectivity=1)
    objects_after = label(after == 2, connectivity=1)
    cuts = []
    for index in range(1, objects_before.max() + 1):
        region = objects_before == index
        values, counts = np.unique(objects_after[region], return_counts=True)
        parts = [v for v, c in zip(values, counts) if v and c >= 200]
        if len(parts) < 2:
            continue
        near = [ndi.binary_dilation(objects_after == p, iterations=2) for p in parts]
        line = (
            region
            & (after == 1)
            & np.logical_or.reduce([a & b for i, a in enumerate(near) for b in near[i + 1 :]])
        )
        cuts.append((region, line))
    return cuts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("isbi_slice18_cut.png"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    task, start, model, before, after = round_one(args.seed)
    index = ISBI_SLICES.index(SLICE)
    truth = load_isbi([SLICE])[1][0]
    for name, masks in (("start", before), ("round 1", after)):
        rand_error = evaluate(masks[index], truth, "membranes")["rand_error"]
        print(f"slice {SLICE}, {name}: Rand error {rand_error:.4f}")
    rng = np.random.default_rng(0)
    others = [16, 17, 19]
    membranes = dict(zip(others, (lab == 0 for lab in load_isbi(others)[1])))
    cuts = new_cuts(before[index], after[index])
    for region, line in cuts:
        inside = np.argwhere(region & (after[index] == 2))
        control = tuple(inside[rng.choice(len(inside), 2000)].T)
        print(f"cut of a {region.sum()} px object: {line.sum()} line px; on true membrane of "
              f"slice {SLICE}: {np.mean(truth[line] == 0):.0%}")  # fmt: skip
        for other, membrane in membranes.items():
            distance = ndi.distance_transform_edt(~membrane)
            near_line, near_control = distance[line] <= 3, distance[control] <= 3
            print(
                f"  slice {other}'s membranes within 3 px: line {near_line.mean():.0%}, "
                f"random pixels of the cell {near_control.mean():.0%}"
            )
    false_cut = max(cuts, key=lambda cut: np.mean(truth[cut[1]] > 0))
    plot(task.images, index, truth, start, model, false_cut, args.out)


def plot(images, index, truth, start, model, cut, out: Path) -> None:
    """Slice 18 with the cut and slices 16-17 with their true membranes, one crop."""
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from napari_unet.core.inference import predict

    region, line = cut
    rows, cols = np.nonzero(region)
    crop = np.s_[
        max(rows.min() - 40, 0) : rows.max() + 20, max(cols.min() - 10, 0) : cols.max() + 1
    ]
    fig, axes = plt.subplots(2, 2, figsize=(12, 5.6))
    for axis, (model_, title) in zip(axes[0], ((start, "bundled model"), (model, "after round 1"))):
        membrane = predict(images[index], model_, device="cpu")[0]
        axis.imshow(membrane[crop], cmap="magma", vmin=0, vmax=1)
        axis.set_title(
            f"slice {SLICE}, p(membrane), {title}"
            + (" (cyan: the new cut)" if model_ is model else "")
        )
    rows_line, cols_line = np.nonzero(line[crop])
    axes[0, 1].scatter(cols_line, rows_line, s=1, c="cyan")
    for axis, number in zip(axes[1], (SLICE, 17)):
        slice_index = ISBI_SLICES.index(number)
        axis.imshow(images[slice_index][crop], cmap="gray")
        other_truth = truth if number == SLICE else load_isbi([number])[1][0]
        axis.contour((other_truth[crop] > 0).astype(float), [0.5], colors="yellow", linewidths=0.5)
        axis.scatter(cols_line, rows_line, s=1, c="cyan")
        axis.set_title(f"slice {number}: true membranes (yellow), slice {SLICE}'s new cut (cyan)")
    for axis in axes.flat:
        axis.set_xticks([])
        axis.set_yticks([])
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    canvas = io.BytesIO()
    fig.savefig(canvas, dpi=90)
    canvas.seek(0)
    Image.open(canvas).convert("RGB").quantize(256).save(out, optimize=True)  # half the bytes
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

"""The data of the annotation-loop benchmark: what is painted, what is scored, and how.

Each task holds images with their true class masks, the part a simulated user
may paint and the part that is scored (never painted), and a scoring function:
- ``dsb``: the real DSB 2018 nuclei image; paint the left half (x < 256), score
  the right half with F1 at IoU 0.5 and the mean IoU of matched nuclei.
- ``synthetic``: a synthetic nuclei image (384 x 768, exact truth); same split.
- ``isbi``: ISBI 2012 slices 15-19, never seen by the bundled ``em-membranes``
  (trained on 00-14); paint slices 15-16, score 17-19 (pixel and Rand error).

``swapped=True`` (task names ``*-swapped``) exchanges the parts: paint the right half,
score the left; paint ISBI slices 18-19, score 15-17. A rule chosen by looking at the
usual scored part is checked there on objects it was not chosen on.
``isbi_task(painted_slices=...)`` paints any two of slices 15-19 and scores the other three
(tasks ``isbi-paint-AA-BB``): the ten ways to split the five slices, so that no single
split's objects decide the figure.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from napari_unet.core.postprocess import instance_labels
from napari_unet.evaluation.matching import match_instances
from napari_unet.evaluation.metrics import evaluate
from napari_unet.io.data import load_dsb2018, load_isbi, synthetic_nuclei
from napari_unet.training.weights import annotation_from_instances


@dataclass
class LoopTask:
    """Images of one benchmark task (lists over images, each (Y, X))."""

    name: str
    model: str
    images: list[np.ndarray]
    truth: list[np.ndarray]  # class masks, 1 = background / membrane, 2 = object / cell
    paint: list[np.ndarray]  # bool: where the user may paint
    score: Callable[[list[np.ndarray]], dict[str, float]]  # class masks -> metrics


def _nuclei_task(name: str, image: np.ndarray, instances: np.ndarray, swapped: bool) -> LoopTask:
    half = image.shape[1] // 2
    scored = np.s_[:, :half] if swapped else np.s_[:, half:]
    paint = np.ones(image.shape, bool)
    paint[scored] = False
    truth_scored = instances[scored]

    def score(masks: list[np.ndarray]) -> dict[str, float]:
        predicted = instance_labels(masks[0][scored], method="components")
        scores = match_instances(predicted, truth_scored, threshold=0.5)
        return {"f1": float(scores["f1"]), "mean_matched_iou": float(scores["mean_matched_iou"])}

    name = f"{name}-swapped" if swapped else name
    return LoopTask(name, "nuclei", [image], [annotation_from_instances(instances)], [paint], score)


def dsb_task(swapped: bool = False) -> LoopTask:
    image, instances = load_dsb2018()
    return _nuclei_task("dsb", image, instances, swapped)


def synthetic_task(swapped: bool = False, seed: int = 21) -> LoopTask:
    image, instances = synthetic_nuclei(
        shape=(384, 768), n_nuclei=135, rng=seed, radius_range=(10.0, 16.0), photons=60.0
    )
    return _nuclei_task("synthetic", image, instances, swapped)


ISBI_SLICES = tuple(range(15, 20))


def isbi_task(swapped: bool = False, painted_slices: tuple[int, ...] | None = None) -> LoopTask:
    images, labels = load_isbi(ISBI_SLICES)
    truth = [np.where(label > 0, 2, 1).astype(np.uint8) for label in labels]
    if painted_slices is None:
        painted_slices = (18, 19) if swapped else (15, 16)
    painted = tuple(ISBI_SLICES.index(s) for s in painted_slices)
    paint = [np.full(label.shape, index in painted) for index, label in enumerate(labels)]

    scored = [i for i in range(len(labels)) if i not in painted]

    def score(masks: list[np.ndarray]) -> dict[str, float]:
        results = {ISBI_SLICES[i]: evaluate(masks[i], labels[i], "membranes") for i in scored}
        means = {
            key: float(np.mean([result[key] for result in results.values()]))
            for key in ("pixel_error", "rand_error")
        }
        per_slice = {f"rand_error_{s:02d}": float(r["rand_error"]) for s, r in results.items()}
        return {**means, **per_slice}

    name = {(15, 16): "isbi", (18, 19): "isbi-swapped"}.get(tuple(sorted(painted_slices)))
    name = name or "isbi-paint-" + "-".join(f"{s:02d}" for s in sorted(painted_slices))
    return LoopTask(name, "em-membranes", list(images), truth, paint, score)


TASKS = {"dsb": dsb_task, "synthetic": synthetic_task, "isbi": isbi_task}

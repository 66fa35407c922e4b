"""A simulated user who paints short corrective strokes where a prediction is wrong.

Used by the annotation-loop benchmark (``benchmarks/bench_annotation_loop.py``) and
the tests: after each prediction the "user" looks at the largest wrong regions of the
part they annotate and paints a few short strokes (1-3 px wide) of the true class
inside them, alternating between the classes, as a biologist corrects what looks
wrong. Pure numpy/scipy/scikit-image; all randomness comes from ``rng``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from skimage.morphology import skeletonize

__all__ = ["StrokeBudget", "corrective_strokes", "instance_error_priority"]


@dataclass(frozen=True)
class StrokeBudget:
    """How much a simulated user paints in one round.

    Attributes
    ----------
    fraction : float
        At most this share of the annotated region's pixels per round (0.005 = 0.5 %).
    max_strokes : int
        At most this many strokes per round.
    length : int
        Stroke length along the error's skeleton, in pixels.
    widths : tuple of int
        Stroke widths drawn from, uniformly.
    exact : bool
        True: a stroke covers only pixels of the class it paints (a careful user, or a
        brush no wider than the structure); False: it covers every unpainted pixel of
        the annotated region within its width, as a wide brush drawn along a thin
        structure does, so its edges can hold the wrong class.
    """

    fraction: float = 0.005
    max_strokes: int = 12
    length: int = 30
    widths: tuple[int, ...] = (1, 2, 3)
    exact: bool = True


def corrective_strokes(
    prediction: np.ndarray,
    truth: np.ndarray,
    region: np.ndarray,
    annotation: np.ndarray,
    rng: np.random.Generator,
    budget: StrokeBudget | None = None,
    priority: np.ndarray | None = None,
) -> np.ndarray:
    """Add one round of corrective strokes to ``annotation``.

    Parameters
    ----------
    prediction, truth : (Y, X) int arrays
        Class masks in the label convention (1 = background, 2.. = classes).
    region : (Y, X) bool array
        Where the user annotates (the rest is never painted).
    annotation : (Y, X) int array
        The strokes so far (0 = unlabelled); not modified.
    rng : numpy.random.Generator
        Stroke widths.
    budget : StrokeBudget
    priority : (Y, X) float array, optional
        Ranks the wrong regions by the sum of this map over them (e.g. the
        model's uncertainty); default: by size.

    Returns
    -------
    (Y, X) array, the dtype of ``annotation``
        ``annotation`` plus the new strokes. Every painted pixel holds its true class
        (with ``budget.exact``; else its stroke's class). If a class is still missing
        from the annotation afterwards, one stroke of it is painted in its largest
        region, so fine-tuning can start.
    """
    budget = budget or StrokeBudget()
    result = annotation.copy()
    free = region & (annotation == 0)
    wrong = free & (prediction != truth)
    pixels_left = int(budget.fraction * np.count_nonzero(region))
    strokes = 0
    for component, label in _ranked_components(wrong, truth, priority):
        if strokes >= budget.max_strokes or pixels_left <= 0:
            break
        allowed = free & (truth == label) if budget.exact else free
        stroke = _stroke(component, allowed, rng, budget)
        stroke &= result == 0
        if np.count_nonzero(stroke) > pixels_left:
            continue
        result[stroke] = label
        pixels_left -= int(np.count_nonzero(stroke))
        strokes += 1
    for label in np.unique(truth[region]):
        if label > 0 and not np.any(result == label):
            largest = _largest_component((truth == label) & free)
            if largest is not None:
                result[_stroke(largest, largest, rng, budget)] = label
    return result


def instance_error_priority(
    prediction: np.ndarray, truth: np.ndarray, weight: float = 100.0, min_overlap: int = 20
) -> np.ndarray:
    """A ``priority`` map that puts the wrong regions joining or cutting objects first.

    What a user sees first in the instances is two objects in one colour or one object
    in two: this map is 1 everywhere plus ``weight`` on the wrong pixels that cause it,
    the true boundary pixels predicted as object inside a predicted object that covers
    two true objects or more (a merge), and the true object pixels predicted as
    boundary inside a true object that two predicted objects or more cover (a split).

    Parameters
    ----------
    prediction, truth : (Y, X) int arrays
        Class masks (1 = background or boundary, 2.. = objects); objects are the
        4-connected components of the object classes.
    weight : float
        Added on the merging and cutting pixels.
    min_overlap : int
        Pixels a predicted and a true object must share to count as covering.

    Returns
    -------
    (Y, X) float32 array
    """
    predicted, _ = ndimage.label(prediction >= 2)
    true, _ = ndimage.label(truth >= 2)
    merged = _covering_several(predicted, true, min_overlap)
    split = _covering_several(true, predicted, min_overlap)
    cause = ((truth < 2) & (prediction >= 2) & merged[predicted]) | (
        (truth >= 2) & (prediction < 2) & split[true]
    )
    return (1.0 + weight * cause).astype(np.float32)


def _covering_several(objects: np.ndarray, others: np.ndarray, min_overlap: int) -> np.ndarray:
    """Per label of ``objects`` (index = label): True if it shares ``min_overlap``
    pixels or more with two labels of ``others`` or more."""
    both = (objects > 0) & (others > 0)
    pairs, counts = np.unique(np.stack([objects[both], others[both]]), axis=1, return_counts=True)
    covering = pairs[0][counts >= min_overlap]
    per_object = np.bincount(covering, minlength=int(objects.max()) + 1)
    return per_object >= 2


def _ranked_components(
    wrong: np.ndarray, truth: np.ndarray, priority: np.ndarray | None
) -> list[tuple[np.ndarray, int]]:
    """Wrong regions of each true class, best first, the classes interleaved."""
    queues = []
    for label in np.unique(truth[wrong]):
        components, count = ndimage.label(wrong & (truth == label))
        if not count:
            continue
        indices = np.arange(1, count + 1)
        weights = np.ones(wrong.shape) if priority is None else priority
        scores = ndimage.sum_labels(weights, components, indices)
        order = indices[np.argsort(-scores, kind="stable")]
        queues.append([(components == index, int(label)) for index in order[:32]])
    interleaved: list[tuple[np.ndarray, int]] = []
    for rank in range(max((len(queue) for queue in queues), default=0)):
        interleaved.extend(queue[rank] for queue in queues if rank < len(queue))
    return interleaved


def _largest_component(mask: np.ndarray) -> np.ndarray | None:
    components, count = ndimage.label(mask)
    if not count:
        return None
    sizes = ndimage.sum_labels(mask, components, np.arange(1, count + 1))
    return components == int(np.argmax(sizes)) + 1


def _stroke(
    component: np.ndarray, allowed: np.ndarray, rng: np.random.Generator, budget: StrokeBudget
) -> np.ndarray:
    """A stroke on the skeleton of ``component`` around its deepest pixel, inside ``allowed``."""
    depth = ndimage.distance_transform_edt(component)
    centre = np.unravel_index(int(np.argmax(depth)), component.shape)
    skeleton = skeletonize(component)
    yy, xx = np.nonzero(skeleton)
    near = np.maximum(np.abs(yy - centre[0]), np.abs(xx - centre[1])) <= budget.length // 2
    path = np.zeros_like(component)
    path[yy[near], xx[near]] = True
    path[centre] = True
    width = int(rng.choice(budget.widths))
    if width > 1:
        path = ndimage.binary_dilation(path, structure=np.ones((width, width), bool))
    return path & allowed

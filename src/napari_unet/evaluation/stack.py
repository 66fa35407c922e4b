"""Scores of a whole stack, one slice after another, with progress and a stop flag.

:func:`~napari_unet.evaluation.metrics.evaluate` scores instances and classes of a
(Z, Y, X) stack at once (objects matched slice by slice, counts summed). The ISBI
membrane errors are defined per 2-D slice, so a stack's are their means over the slices,
as the benchmarks report them (``BENCHMARKS.md``). :func:`evaluate_stack` gives either,
yielding how far it is, so that a widget can show it and a user stop it.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any, Literal

import numpy as np

from ..core.cancellation import Cancelled
from .metrics import evaluate

__all__ = ["evaluate_stack"]


def evaluate_stack(
    pred: np.ndarray,
    truth: np.ndarray,
    kind: Literal["membranes", "instances", "semantic"],
    ignore: np.ndarray | None = None,
    stop: Callable[[], bool] | None = None,
) -> Generator[tuple[int, int], None, dict[str, Any]]:
    """Score every slice of a stack; yields ``(slices done, slices)``, returns the scores.

    Parameters
    ----------
    pred, truth : numpy.ndarray, shape (..., Y, X)
        As :func:`~napari_unet.evaluation.metrics.evaluate` takes them; every leading
        axis is a stack axis (a (T, Z, Y, X) stack has T·Z slices).
    kind : {"membranes", "instances", "semantic"}
    ignore : numpy.ndarray of bool, shape of ``truth``, optional
        Pixels not to score (see ``evaluate``).
    stop : callable, optional
        Polled before each slice of membranes; True raises
        :class:`~napari_unet.core.cancellation.Cancelled`.

    Returns
    -------
    dict
        Instances and semantic: ``evaluate`` of the whole stack. Membranes: the mean
        of each error over the slices (those of ``evaluate`` of each slice that every
        slice has), ``"kind": "membranes"``, and ``"rand_errors"``: each slice's, in
        order (a mean hides one slice gone wrong). Both with ``"slices"``: how many.

    Raises
    ------
    ValueError
        If the shapes differ or the arrays are not at least 2-D.
    Cancelled
        When ``stop`` returns True.
    """
    pred, truth = np.asarray(pred), np.asarray(truth)
    if pred.shape != truth.shape or pred.ndim < 2:
        raise ValueError(f"a prediction {pred.shape} and a truth {truth.shape} of one shape")
    plane = pred.shape[-2:]
    pred, truth = pred.reshape(-1, *plane), truth.reshape(-1, *plane)
    flat_ignore = None if ignore is None else np.asarray(ignore, bool).reshape(-1, *plane)
    slices = len(pred)
    yield 0, slices
    if kind != "membranes":
        scores = evaluate(pred, truth, kind=kind, ignore=flat_ignore)
        yield slices, slices
        return {**scores, "slices": slices}
    per_slice = []
    for index in range(slices):
        if stop is not None and stop():
            raise Cancelled(f"stopped after {index} of {slices} slices")
        where = None if flat_ignore is None else flat_ignore[index]
        per_slice.append(evaluate(pred[index], truth[index], kind="membranes", ignore=where))
        yield index + 1, slices
    rand_errors = [float(scores["rand_error"]) for scores in per_slice]
    return {"kind": "membranes", **_means(per_slice), "slices": slices, "rand_errors": rand_errors}


def _means(scores: list[dict[str, Any]]) -> dict[str, float]:
    """The mean of each number every dict of ``scores`` holds."""
    keys = [
        key
        for key, value in scores[0].items()
        if isinstance(value, (int, float)) and all(key in other for other in scores)
    ]
    return {key: float(np.mean([other[key] for other in scores])) for key in keys}

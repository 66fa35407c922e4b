"""Choosing a model's settings from scores measured at several candidates.

:func:`guarded_threshold`, one rule for ``scripts/calibrate_bundled.py``,
``scripts/train_validated.py`` and ``benchmarks/bench_width.py``: the background threshold
with the lowest error of the objective whose guard error is no worse than at 0.5 (the most
probable class) by more than a tolerance. :func:`cheapest_within`, the rule of
``scripts/choose_tta_transforms.py``: the cheapest candidate whose errors are each within a
tolerance of the reference's.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["cheapest_within", "guarded_threshold"]


def guarded_threshold(
    table: Mapping[float, Mapping[str, float]], objective: str, guard: str, tolerance: float
) -> float:
    """The threshold to keep, from errors measured at each candidate.

    Parameters
    ----------
    table : mapping of threshold -> {metric name: error}
        Lower is better for both metrics; must hold 0.5, the reference.
    objective, guard : str
        The error to minimise, and the error that may not grow.
    tolerance : float
        How much worse than at 0.5 the guard error may get.

    Returns
    -------
    float
        The lowest threshold among those with the least ``objective`` error; 0.5 if no
        other candidate keeps the guard.
    """
    if 0.5 not in table:
        raise ValueError("the table must hold the scores at 0.5, the reference")
    limit = table[0.5][guard] + tolerance
    allowed = [t for t in sorted(table) if table[t][guard] <= limit]
    return min(allowed, key=lambda t: (table[t][objective], t))


def cheapest_within(
    table: Mapping[str, Mapping[str, float]],
    cost: Mapping[str, float],
    reference: str,
    tolerance: Mapping[str, float],
) -> str:
    """The cheapest candidate whose errors are no worse than the reference's by more than
    their tolerances.

    Parameters
    ----------
    table : mapping of candidate -> {metric name: error}
        Lower is better; must hold ``reference``.
    cost : mapping of candidate -> cost
        E.g. forward passes; every candidate of ``table`` needs one.
    reference : str
        The candidate the others are compared with (always allowed).
    tolerance : mapping of metric name -> how much worse it may get
        The metrics compared (each must be in every row of ``table``).

    Returns
    -------
    str
        Of the allowed candidates the one of least cost (ties: the first in ``table``).
    """
    if reference not in table:
        raise ValueError(f"the table must hold the reference {reference!r}")
    limits = {key: table[reference][key] + allowed for key, allowed in tolerance.items()}
    allowed = [name for name, row in table.items() if all(row[k] <= v for k, v in limits.items())]
    return min(allowed, key=lambda name: cost[name])

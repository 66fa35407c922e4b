"""Choosing a model's background threshold from scores measured at several candidates.

One rule for ``scripts/calibrate_bundled.py``, ``scripts/train_validated.py`` and
``benchmarks/bench_width.py``: the candidate with the lowest error of the objective whose
guard error is no worse than at 0.5 (the most probable class) by more than a tolerance.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["guarded_threshold"]


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

"""What a user needs to review a prediction: where the model is unsure, what a fine-tune changed.

Both are pure functions of arrays, used by the Predict and Fine-tune widgets, the CLI
and the annotation simulator of ``benchmarks/bench_annotation_loop.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["ClassChanges", "class_changes", "class_names", "uncertainty"]


def class_names(model: Any) -> dict[int, str]:
    """Label value to class name, from the model's metadata (1 = the first class)."""
    names = getattr(model, "metadata", {}).get("class_names") or []
    return {label: str(name) for label, name in enumerate(names, start=1)}


def uncertainty(probabilities: np.ndarray) -> np.ndarray:
    """Normalised entropy of the class probabilities: where to paint next.

    Parameters
    ----------
    probabilities : (C, Y, X) or (C, Z, Y, X) array
        Class probabilities (summing to 1 over axis 0), C >= 2.

    Returns
    -------
    numpy.ndarray of float32, shape (Y, X) or (Z, Y, X)
        ``-sum(p log p) / log C``: 0 where the model is certain, 1 where every
        class is equally likely.
    """
    probabilities = np.asarray(probabilities, dtype=np.float32)
    n_classes = probabilities.shape[0]
    if probabilities.ndim < 3 or n_classes < 2:
        raise ValueError(
            f"expected class probabilities (C, Y, X) with C >= 2, got shape {probabilities.shape}"
        )
    clipped = np.clip(probabilities, 1e-12, 1.0)
    entropy = -(probabilities * np.log(clipped)).sum(axis=0)
    return np.clip(entropy / np.log(n_classes), 0.0, 1.0).astype(np.float32)


@dataclass(frozen=True)
class ClassChanges:
    """Pixels whose class changed between two masks of one image.

    Attributes
    ----------
    total : int
        Pixels compared.
    changed : int
        Pixels whose class differs.
    gained : dict of int to int
        For each label value, pixels that now have it and did not before.
    """

    total: int
    changed: int
    gained: dict[int, int]

    @property
    def fraction(self) -> float:
        return self.changed / self.total if self.total else 0.0

    def describe(self, names: dict[int, str] | None = None) -> str:
        """One plain sentence, e.g. "1,204 pixels (0.5 %) changed class: 900 to nucleus, ..."."""
        if not self.changed:
            return f"no pixel changed class (of {self.total:,})"
        names = names or {}
        parts = [
            f"{count:,} to {names.get(label, f'class {label}')}"
            for label, count in sorted(self.gained.items())
            if count
        ]
        return f"{self.changed:,} pixels ({100 * self.fraction:.2g} %) changed class: " + ", ".join(
            parts
        )


def class_changes(before: np.ndarray, after: np.ndarray) -> ClassChanges:
    """Compare two class masks (same shape, label convention 1 = background, 2.. classes).

    Raises
    ------
    ValueError
        If the shapes differ.
    """
    before, after = np.asarray(before), np.asarray(after)
    if before.shape != after.shape:
        raise ValueError(f"masks differ in shape: {before.shape} and {after.shape}")
    differs = before != after
    labels, counts = np.unique(after[differs], return_counts=True)
    return ClassChanges(
        total=int(before.size),
        changed=int(differs.sum()),
        gained={int(label): int(count) for label, count in zip(labels, counts)},
    )

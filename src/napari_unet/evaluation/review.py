"""What a user needs to review a prediction: where the model is unsure, what a fine-tune changed.

Both are pure functions of arrays, used by the Predict and Fine-tune widgets, the CLI
and the annotation simulator of ``benchmarks/bench_annotation_loop.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._words import counted, percent
from .strokes import StrokeAgreement, stroke_agreement, two_masks, with_strokes

__all__ = [
    "ClassChanges",
    "ObjectChanges",
    "StrokeAgreement",
    "class_changes",
    "class_names",
    "object_changes",
    "stroke_agreement",
    "uncertainty",
    "with_strokes",
]


def class_names(model: Any) -> dict[int, str]:
    """Label value to class name, from the model's metadata (1 = the first class)."""
    names = getattr(model, "metadata", {}).get("class_names") or []
    return {label: str(name) for label, name in enumerate(names, start=1)}


def uncertainty(probabilities: np.ndarray, class_axis: int = 0) -> np.ndarray:
    """Normalised entropy of the class probabilities: where to paint next.

    Parameters
    ----------
    probabilities : (C, Y, X) or (C, Z, Y, X) array
        Class probabilities (summing to 1 over ``class_axis``), C >= 2.
    class_axis : int
        The axis of the classes: 0 for :func:`~napari_unet.core.inference.predict`'s
        (C, Y, X), 1 for the (Z, C, Y, X) of
        :func:`~napari_unet.io.volumes.predict_stack`.

    Returns
    -------
    numpy.ndarray of float32, shape (Y, X), or (Z, Y, X) for a stack
        ``-sum(p log p) / log C``: 0 where the model is certain, 1 where every
        class is equally likely.

    Raises
    ------
    ValueError
        If there are fewer than 2 classes or the probabilities do not sum to 1 over
        ``class_axis`` (e.g. a stack's (Z, C, Y, X) given with the default axis).
    """
    probabilities = np.moveaxis(np.asarray(probabilities, dtype=np.float32), class_axis, 0)
    n_classes = probabilities.shape[0]
    if probabilities.ndim < 3 or n_classes < 2:
        raise ValueError(
            f"expected class probabilities (C, Y, X) with C >= 2, got shape {probabilities.shape}"
        )
    step = max(1, int(np.sqrt(probabilities[0].size / 65536)))  # a sample: not a hot-path pass
    total = probabilities[..., ::step, ::step].sum(axis=0)
    if not np.allclose(total, 1.0, atol=1e-2):
        stack = class_axis == 0 and probabilities.ndim == 4  # perhaps (Z, C, Y, X)
        hint = "; a stack's (Z, C, Y, X) from predict_stack needs class_axis=1" if stack else ""
        raise ValueError(
            f"the probabilities do not sum to 1 over axis {class_axis} (sums "
            f"{float(np.nanmin(total)):.3g} to {float(np.nanmax(total)):.3g}){hint}"
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
    present : dict of int to int
        For each label value in the new mask, its pixels (empty: not counted).
    strokes : StrokeAgreement or None
        The strokes of the plane against both masks (None: not compared or none painted).
    """

    total: int
    changed: int
    gained: dict[int, int]
    present: dict[int, int] = field(default_factory=dict)
    strokes: StrokeAgreement | None = None

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
        return (
            f"{counted(self.changed, 'pixel')} ({percent(self.fraction)}) changed class: "
            + ", ".join(parts)
        )

    def describe_shares(self, names: dict[int, str] | None = None) -> str:
        """What a model's first run made of the plane (compared with the untrained model,
        whose classes mean nothing), the largest class first: "the model now calls 62 % of
        the pixels background, 38 % nucleus"; :meth:`describe` when no share was counted."""
        names = names or {}
        total = max(sum(self.present.values()), 1)
        shares = sorted(self.present.items(), key=lambda item: -item[1])
        parts = [
            (percent(count / total, whole=True), names.get(label, f"class {label}"))
            for label, count in shares
            if count
        ]
        if not parts:
            return self.describe(names)
        if len(parts) == 1:
            return f"the model now calls every pixel {parts[0][1]}"
        (share, name), rest = parts[0], parts[1:]
        others = "".join(f", {other_share} {other}" for other_share, other in rest)
        return f"the model now calls {share} of the pixels {name}{others}"


def class_changes(
    before: np.ndarray,
    after: np.ndarray,
    strokes: np.ndarray | None = None,
    shown: np.ndarray | tuple[np.ndarray | None, np.ndarray | None] | None = None,
) -> ClassChanges:
    """Compare two class masks of one plane, and with the strokes painted on it.

    Parameters
    ----------
    before, after : (Y, X) integer arrays
        Class masks (1 = background, 2.. classes) of the model before and after a run.
    strokes : (Y, X) integer array, optional
        The annotations on this plane (0 unlabelled): the result's ``strokes`` then
        counts the painted pixels each mask's class matches (:func:`stroke_agreement`).
    shown : (Y, X) integer array or a pair of them, optional
        The mask after (or the pair: after, before) drawn with each model's background
        threshold (:func:`~napari_unet.evaluation.strokes.shown_classes`), as Predict
        shows it; used only with ``strokes``.

    Returns
    -------
    ClassChanges

    Raises
    ------
    ValueError
        If the shapes differ.
    """
    before, after = two_masks(before, after)
    differs = before != after
    labels, counts = np.unique(after[differs], return_counts=True)
    present = np.bincount(after.ravel().astype(np.intp, copy=False))  # small labels: no sort
    shown_pair = shown if isinstance(shown, tuple) else (shown, None)
    return ClassChanges(
        total=int(before.size),
        changed=int(differs.sum()),
        gained={int(label): int(count) for label, count in zip(labels, counts)},
        present={label: int(count) for label, count in enumerate(present) if count},
        strokes=None if strokes is None else stroke_agreement(strokes, before, after, *shown_pair),
    )


@dataclass(frozen=True)
class ObjectChanges:
    """Objects a new mask cut or joined, against the mask shown before.

    A pixel count hides them: a line of a few hundred pixels can cut a large cell in
    two (the annotation loop's ISBI misses, BENCHMARKS.md). Each change is marked where
    it happened, so the next strokes can go there.

    Attributes
    ----------
    split : (N, D) float array
        For each object of the last mask now in two parts or more: where the new
        background between the parts lies (the centroid of those pixels).
    merged : (M, D) float array
        For each new object holding two objects of the last mask or more: where the
        background between them was.
    appeared, vanished : int
        New objects where the last mask had only background, and objects of the last
        mask where the new one has only background (each of ``min_part`` pixels or more):
        with the splits and joins they account for a changed object count.
    """

    split: np.ndarray
    merged: np.ndarray
    appeared: int = 0
    vanished: int = 0

    @property
    def points(self) -> np.ndarray:
        """(N + M, D) every marked place, the splits first."""
        return np.concatenate([self.split, self.merged])

    def describe(self) -> str:
        """One plain sentence, e.g. "since the last mask 2 objects split, 0 joined, 3 new,
        1 gone" (new and gone only when there are any); "since the last mask no object
        split or joined" when none did."""
        split, merged = len(self.split), len(self.merged)
        if not (split or merged or self.appeared or self.vanished):
            return "since the last mask no object split or joined"
        objects = "object" if split == 1 else "objects"
        text = f"since the last mask {split} {objects} split, {merged} joined"
        if self.appeared or self.vanished:
            text += f", {self.appeared} new, {self.vanished} gone"
        return text


def object_changes(
    before: np.ndarray, after: np.ndarray, min_part: int = 20, min_share: float = 0.1
) -> ObjectChanges:
    """The objects ``after`` splits or joins against ``before``.

    Objects are the connected components (4-connected, plane by plane) of each mask's
    foreground (label >= 2). A part counts when it holds at least ``min_part`` pixels
    and ``min_share`` of the median object of ``before`` (smaller ones are fragments),
    and when it is a part, not a rim: a split's part lies mostly inside the object cut
    (or holds ``min_share`` of it), a join's part has ``min_share`` of itself inside
    the new object. So a border that moved by a pixel is no change, a cell cut in
    1,700 and 15,500 pixels is one, and a 50-pixel fragment taken into a cell is none.

    Parameters
    ----------
    before, after : (Y, X) or (Z, Y, X) int arrays
        Class masks of one image (1 = background, 2.. = classes), e.g. the mask shown
        before a fine-tune and the one predicted after.
    min_part : int
    min_share : float

    Returns
    -------
    ObjectChanges

    Raises
    ------
    ValueError
        If the shapes differ.
    """
    before, after = two_masks(before, after)
    old, new = _objects(before), _objects(after)
    old_sizes = np.bincount(old.ravel())[1:]
    typical = float(np.median(old_sizes)) if old_sizes.size else 0.0
    smallest = max(float(min_part), min_share * typical)
    return ObjectChanges(
        split=_changed(old, new, smallest, min_share),
        merged=_changed(new, old, smallest, min_share, joins=True),
        appeared=_alone(new, old > 0, min_part),
        vanished=_alone(old, new > 0, min_part),
    )


def _alone(objects: np.ndarray, other: np.ndarray, min_part: int) -> int:
    """How many ``objects`` (labels > 0) of ``min_part`` pixels or more touch no pixel of
    ``other`` (the other mask's foreground)."""
    sizes = np.bincount(objects.ravel())
    touching = np.unique(objects[other & (objects > 0)])
    large = np.flatnonzero(sizes >= min_part)
    return int(np.count_nonzero((large > 0) & ~np.isin(large, touching)))


def _objects(mask: np.ndarray) -> np.ndarray:
    """Connected components of ``mask >= 2`` in each (Y, X) plane, labelled 1.. overall."""
    from scipy import ndimage

    structure = np.zeros((3,) * mask.ndim, bool)
    structure[(1,) * (mask.ndim - 2)] = ndimage.generate_binary_structure(2, 1)
    return ndimage.label(mask >= 2, structure)[0]


def _changed(
    whole: np.ndarray,
    pieces: np.ndarray,
    smallest: float,
    min_share: float,
    joins: bool = False,
) -> np.ndarray:
    """Centroids of the new background inside each object of ``whole`` that two or
    more objects of ``pieces`` share, each with ``smallest`` pixels or more inside it:
    for a split (``whole`` the old objects), a piece mostly inside the object or holding
    ``min_share`` of it; for a join (``whole`` the new objects, ``pieces`` the old), a
    piece with ``min_share`` of itself inside.

    The centroid is of the pixels near two pieces (the cut or the closed gap); where
    there are none, of all pixels of the object outside the pieces (a wide band or
    bridge): never NaN."""
    from scipy import ndimage

    n_pieces = int(pieces.max()) + 1
    inside = (whole > 0) & (pieces > 0)
    codes, overlap = np.unique(
        whole[inside].astype(np.int64) * n_pieces + pieces[inside], return_counts=True
    )
    owner, piece = codes // n_pieces, codes % n_pieces
    piece_size = np.bincount(pieces.ravel())[piece]
    if joins:
        part = overlap >= min_share * piece_size
    else:
        part = (overlap >= min_share * np.bincount(whole.ravel())[owner]) | (
            2 * overlap >= piece_size
        )
    large = part & (overlap >= smallest)
    counts = np.bincount(owner[large], minlength=int(whole.max()) + 1)
    changed = np.flatnonzero(counts >= 2)
    if not changed.size:
        return np.zeros((0, whole.ndim))
    in_changed = np.isin(whole, changed)
    between = in_changed & (pieces == 0)
    points = np.full((changed.size, whole.ndim), np.nan)
    # the line between two parts; where none is that close (a band or a bridge wider
    # than 2 * reach), all new background in the object; at worst the object itself
    for where in (between & _near_two(pieces), between, in_changed):
        found = np.isnan(points[:, 0]) & (ndimage.sum_labels(where, whole, changed) > 0)
        if found.any():
            centres = ndimage.center_of_mass(where, whole, changed[found])
            points[found] = np.array(centres).reshape(-1, whole.ndim)
    return points


def _near_two(labels: np.ndarray, reach: int = 2) -> np.ndarray:
    """Pixels within ``reach`` (chessboard, in their plane) of two different labels > 0:
    the line between two parts, not the rim of an object that shrank or grew."""
    from scipy import ndimage

    size = (1,) * (labels.ndim - 2) + (2 * reach + 1,) * 2
    highest = ndimage.maximum_filter(labels, size=size)
    lowest = ndimage.minimum_filter(np.where(labels > 0, labels, labels.max() + 1), size=size)
    return (highest > 0) & (lowest <= labels.max()) & (highest != lowest)

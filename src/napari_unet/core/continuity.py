"""Predicting again after a fine-tune: the separations the last mask made are kept.

Predict's gap closing (:func:`~napari_unet.core.boundaries.separating_lines`) decides
whether a faint boundary separates two objects by its contrast, and a faint boundary
sits close to that decision. A fine-tune on strokes elsewhere lowers such a boundary a
little (annotation-loop benchmark, issue 14: the contrast of the kept borders fell by
0.07-0.11 in round 1 of every DSB session), and two objects that were apart in the last
mask merge although nobody painted there: one touching pair of DSB nuclei in 7 of 24
rounds, two cells of ISBI slice 18 in 3 of 24.

Hysteresis settles this, as a tracker keeps an identity: a line that separated two
objects in the last mask is kept while the new model's boundary along it still stands
out by half the contrast a new line needs (:data:`KEPT_CONTRAST`), unless a stroke of
an object class lies on it (the user said "one object" there). New separations need
the full contrast, so what the strokes teach still shows. The lines are looked for twice:
between the closing's own basins, and between basins seeded by the last mask's objects
(two overlapping nuclei may touch without a waist after a round, their band below 0.5 but
well above the inside: the closing's distance seeds see one object there; the synthetic
loop's swapped part, 15 of 48 round-metrics). :func:`continues` says when
a mask counts as the last one of a model: it was predicted by this model, an earlier
version of it, or a sibling fine-tuned from the same base.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import ndimage
from skimage.segmentation import watershed

from .boundaries import (
    MAX_SOLIDITY,
    MIN_CONTRAST,
    SEED_DEPTH,
    lines_between,
    object_seed_pairs,
    seeded_basins,
)
from .cancellation import check_stopped

__all__ = [
    "KEPT_CONTRAST",
    "KEPT_SHARE",
    "LINEAGE_KEY",
    "closing_lines",
    "continues",
    "kept_separations",
    "lineage",
]

#: Where a mask records the :func:`lineage` of the model that made it (a napari
#: layer's metadata, a batch output's provenance).
LINEAGE_KEY = "napari_unet_model_lineage"
#: A separation of the last mask is kept while its border stands out by this much.
KEPT_CONTRAST: float = MIN_CONTRAST / 2
#: ... and when at least this share of its line lies on (or next to) the last mask's
#: background.
KEPT_SHARE: float = 0.5


def kept_separations(
    boundary_probability: np.ndarray,
    previous_mask: np.ndarray,
    annotation: np.ndarray | None = None,
    *,
    lines: np.ndarray | None = None,
    min_contrast: float = KEPT_CONTRAST,
    share: float = KEPT_SHARE,
) -> np.ndarray:
    """Lines of the last mask's separations that the new probabilities still support.

    Parameters
    ----------
    boundary_probability : numpy.ndarray, shape (Y, X)
        Probability of class 1 (background or membrane) from the new model.
    previous_mask : numpy.ndarray, shape (Y, X)
        The class mask shown before (1 = background, 2.. = classes).
    annotation : numpy.ndarray, shape (Y, X), optional
        The user's strokes (0 = unpainted, 1 = background, 2.. = classes): a line
        with a stroke of an object class on it is not kept.
    lines : numpy.ndarray of bool, shape (Y, X), optional
        The closing's own lines for these probabilities
        (:func:`~napari_unet.core.boundaries.separating_lines`), when already computed.
    min_contrast : float
        The contrast a kept line's border needs (a new one needs
        :data:`~napari_unet.core.boundaries.MIN_CONTRAST`).
    share : float
        Least share of a line's pixels on the last mask's background grown by one pixel.

    Returns
    -------
    numpy.ndarray of bool, shape (Y, X)
        The kept lines (not those in ``lines``); one pixel wide, like the closing's.

    Raises
    ------
    ValueError
        For arrays of different shapes or not 2-D.
    """
    probability = np.asarray(boundary_probability, dtype=np.float32)
    basins = seeded_basins(probability, **_SEEDING)
    own = _lines(basins, probability, MIN_CONTRAST) if lines is None else np.asarray(lines, bool)
    return _kept_both_ways(basins, probability, own, previous_mask, annotation, min_contrast, share)


def closing_lines(
    boundary_probability: np.ndarray,
    previous_mask: np.ndarray | None = None,
    annotation: np.ndarray | None = None,
) -> np.ndarray:
    """The lines Predict's closing draws (Y, X bool): :func:`separating_lines` with its
    defaults, and with ``previous_mask`` the :func:`kept_separations` too (the closing's
    basins are computed once for both contrasts)."""
    probability = np.asarray(boundary_probability, dtype=np.float32)
    basins = seeded_basins(probability, **_SEEDING)
    check_stopped()
    own = _lines(basins, probability, MIN_CONTRAST)
    if previous_mask is None:
        return own
    check_stopped()
    kept = _kept_both_ways(
        basins, probability, own, previous_mask, annotation, KEPT_CONTRAST, KEPT_SHARE
    )
    return own | kept


def _kept_both_ways(basins, probability, own, previous_mask, annotation, contrast, share):
    """Kept lines between the closing's ``basins``, then between basins seeded by the
    last mask's objects (those not beside a line drawn already)."""
    for name, array in (
        ("previous mask", previous_mask),
        ("annotation", annotation),
        ("lines", own),
    ):
        if array is not None and np.shape(array) != probability.shape:
            raise ValueError(f"{name} {np.shape(array)} and probability {probability.shape} differ")
    kept = _kept(basins, probability, own, previous_mask, annotation, contrast, share)
    from_objects = _basins_of_objects(previous_mask, probability)
    drawn = own | kept
    more = _kept(from_objects, probability, drawn, previous_mask, annotation, contrast, share)
    return kept | _apart_from(more, drawn, share)


#: How :func:`separating_lines` seeds its basins by default.
_SEEDING = {"threshold": 0.5, "seed_depth": SEED_DEPTH, "smoothing": 1.0}


def _lines(basins: np.ndarray, probability: np.ndarray, contrast: float) -> np.ndarray:
    return lines_between(
        basins, probability, min_contrast=contrast, max_solidity=MAX_SOLIDITY, threshold=0.5
    )


def _apart_from(lines: np.ndarray, drawn: np.ndarray, share: float) -> np.ndarray:
    """The line segments (8-connected) of ``lines`` of which less than ``share`` lies
    next to ``drawn``: the same separation found by both watersheds is drawn once."""
    segments, count = ndimage.label(lines, structure=np.ones((3, 3), bool))
    if count == 0:
        return lines
    near = ndimage.binary_dilation(drawn, structure=np.ones((3, 3), bool))
    apart = np.asarray(ndimage.mean(near, segments, np.arange(1, count + 1))) < share
    return np.concatenate([[False], apart])[segments]


def _basins_of_objects(previous_mask: np.ndarray, probability: np.ndarray) -> np.ndarray:
    """Watershed basins (Y, X) of the new objects, seeded by the last mask's objects
    (shrunk by one pixel): two objects that now touch without a waist (a band below 0.5
    between them, so one distance maximum) still get a basin each. Only the new objects
    holding two last objects or more are flooded, with every object holding a part of
    those (:func:`_flooded`): about 5 % of a 1024² EM image's objects."""
    previous = np.asarray(previous_mask)
    objects = probability < 0.5
    seeds, _ = ndimage.label(previous >= 2)
    seeds[~(ndimage.binary_erosion(previous >= 2) & objects)] = 0
    return watershed(probability, seeds, mask=_flooded(objects, seeds))


def _flooded(objects: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    """Where the watershed of ``seeds`` (Y, X int, 0 = none) in ``objects`` (Y, X bool)
    can draw a line (Y, X bool): the 4-connected objects holding two seed labels or
    more, and every object holding a label of those. A basin alone in its object
    borders nothing, but a seed label split over two objects is one basin, whose
    mean probability decides its borders, so its other part is flooded too and the
    lines are those of flooding every object (where no two probabilities are equal:
    the watershed takes ties in its heap's order, which the other objects change)."""
    components, n_components, component_of, label_of = object_seed_pairs(objects, seeds)
    shared = np.bincount(component_of, minlength=n_components + 1)[component_of] >= 2
    with_shared_label = np.isin(label_of, label_of[shared])
    flooded = np.zeros(n_components + 1, bool)
    flooded[component_of[with_shared_label]] = True
    return flooded[components]


def _kept(basins, probability, own, previous_mask, annotation, min_contrast, share) -> np.ndarray:
    """The lines at ``min_contrast`` not in ``own`` that lie on the last mask's background."""
    previous = np.asarray(previous_mask)
    candidates = _lines(basins, probability, min_contrast) & ~own
    segments, count = ndimage.label(candidates, structure=np.ones((3, 3), bool))
    if count == 0:
        return candidates
    index = np.arange(1, count + 1)
    before = ndimage.binary_dilation(previous == 1)
    keep = np.asarray(ndimage.mean(before, segments, index)) >= share
    if annotation is not None:
        painted_object = np.asarray(annotation) >= 2
        keep &= ~(np.asarray(ndimage.maximum(painted_object, segments, index)) > 0)
    return np.concatenate([[False], keep])[segments]


def lineage(model: Any) -> list[str]:
    """Short fingerprints of a model's training runs, oldest first.

    ``model`` is a :class:`~napari_unet.core.model.UNet` (or anything with a
    ``metadata`` dict); a model never trained has none. Stored beside a mask (in a
    napari layer's metadata) so that :func:`continues` can tell later which model made it.
    """
    runs = getattr(model, "metadata", {}).get("training_history") or []
    return [
        hashlib.sha1(json.dumps(run, sort_keys=True, default=str).encode()).hexdigest()[:12]
        for run in runs
    ]


def continues(mask_lineage: Sequence[str], model: Any) -> bool:
    """Whether a mask made by a model of ``mask_lineage`` is ``model``'s last mask.

    True when the mask's model was trained (a never-trained model's mask says
    nothing), ``model`` descends from that model's parent, or from that model itself
    if it has one run only (the same model, a fine-tuned version of it, or a sibling
    fine-tuned from the same base, as the Fine-tune section restarts from the base
    with all the strokes), and ``model`` is not an ancestor of it (after "go back" the
    older model's own mask is shown again).
    """
    earlier, current = list(mask_lineage), lineage(model)
    if not earlier:
        return False
    is_ancestor = len(current) < len(earlier) and earlier[: len(current)] == current
    shared = max(len(earlier) - 1, 1)  # the mask model's parent, or its one run
    return not is_ancestor and current[:shared] == earlier[:shared]

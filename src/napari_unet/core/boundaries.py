"""Closing the gaps of predicted boundaries, so that touching objects stay apart.

A U-Net's boundaries (EM membranes, the background between touching nuclei) are
sometimes too faint for one pixel or two: a gap of a few pixels in a membrane
merges two cells into one instance, which costs far more in a segmentation score
than the few pixels it misclassifies. :func:`separating_lines` finds the lines
that close such gaps, in three steps:

1. **Seeds**: the distance transform of the objects (pixels with boundary
   probability below ``threshold``), smoothed, peaks in each object body; maxima
   less than ``seed_depth`` pixels above the saddle to a higher one are dropped
   (:func:`skimage.morphology.h_maxima`, on every second row and column: the
   smoothed distance varies slowly, and the full grid took four times longer). Two
   cells joined through a narrow gap keep a seed each.
2. **Watershed** of the boundary probability from those seeds, within the objects
   that hold two seeds or more (:func:`skimage.segmentation.watershed`):
   neighbouring basins of one connected object meet along the ridge of the
   boundary probability, which runs through the gap.
3. **Merging**: where the mean boundary probability along the border of two
   basins rises less than ``min_contrast`` above the mean probability inside the
   higher of the two, nothing says a boundary is there (a seed too many inside one
   object), so the two basins merge (connected components of the graph of such
   weak borders). Contrast, not a fixed level: fine-tuning can leave a model less
   sure inside its objects (issue 14: after a round, the median boundary
   probability inside the DSB nuclei rose from 0.02 to 0.22), and a fixed level
   then split them. The region adjacency graph of :mod:`skimage.graph` is not
   used: it would also join objects through the pixels outside them.
   Two basins that together make a convex shape (``solidity`` of their union,
   holes filled, at least ``max_solidity``) merge too when their border runs across
   that shape (it spans half its minor axis or more) and what they enclose between
   them is not a sure boundary: two touching nuclei meet at a waist and one nucleus
   has none, while two box-shaped cells, whose union is convex too, are kept apart by
   the membrane they share (a gap in it spans a small part of the shape; a piece of
   it with gaps at both ends is enclosed, and sure). A fine-tuned model can draw a
   faint band across a nucleus larger than those it was trained on, and the
   watershed then cut it in two (the synthetic annotation loop: 10 of 48
   round-metrics worse than the start, each such cut; BENCHMARKS.md).
   Both rules, and the lines left between the basins:
   :mod:`napari_unet.core._basin_borders`.

The lines between the remaining basins, one pixel wide, are what
:func:`napari_unet.core.postprocess.class_mask` adds to the background when asked
to close boundaries. Elsewhere they lie on boundary pixels already, so the mask
changes only in the gaps. The idea is the distance-transform watershed with
agglomeration used for EM segmentation (e.g. Beier et al. 2017, Nature Methods
14:101, and the ``elf`` library), in its simplest form. The defaults were chosen on
validation data only (ISBI 2012 slices 15-16, the DSB 2018 image's left half, a
synthetic image): see ``docs/experiments/closing_gaps.md``.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ._basin_borders import NEIGHBOUR_PAIRS, label_borders, merge_weak_borders
from .cancellation import check_stopped

__all__ = [
    "MAX_SOLIDITY",
    "MIN_CONTRAST",
    "SEED_DEPTH",
    "fill_enclosed",
    "grow_objects",
    "lines_between",
    "object_seed_pairs",
    "seeded_basins",
    "separating_lines",
]

#: Default of ``seed_depth`` (pixels): how far a distance maximum must rise above the
#: saddle to a higher one to seed its own basin.
SEED_DEPTH: float = 2.0
#: Default of ``min_contrast``: basins merge unless the mean boundary probability on
#: their border exceeds the mean inside the higher of the two by this much.
MIN_CONTRAST: float = 0.2
#: Default of ``max_solidity``: two basins whose union (holes filled) is at least this
#: convex (area over convex hull area) are one object, if their border runs across it
#: and they enclose no sure boundary.
MAX_SOLIDITY: float = 0.95


def separating_lines(
    boundary_probability: np.ndarray,
    *,
    threshold: float = 0.5,
    seed_depth: float = SEED_DEPTH,
    smoothing: float = 1.0,
    min_contrast: float = MIN_CONTRAST,
    max_solidity: float = MAX_SOLIDITY,
) -> np.ndarray:
    """One-pixel lines between the objects of a boundary probability map.

    Parameters
    ----------
    boundary_probability : numpy.ndarray, shape (Y, X)
        Probability of the boundary (or background) class, in [0, 1]: channel 0 of
        :func:`napari_unet.predict`'s output.
    threshold : float
        Pixels below it are object pixels (the class mask's rule for two classes).
    seed_depth : float
        ``h`` of the h-maxima of the smoothed distance transform, in pixels.
    smoothing : float
        Gaussian sigma (pixels) applied to the distance transform; 0 = none.
    min_contrast : float
        Neighbouring basins merge unless the mean boundary probability along their
        border exceeds the mean inside the higher of the two by this much; 0 or less
        keeps every basin.
    max_solidity : float
        With ``min_contrast`` > 0, neighbouring basins also merge when their union,
        holes filled, is at least this convex; above 1, only the contrast decides.

    Returns
    -------
    numpy.ndarray of bool, shape (Y, X)
        True on the pixels that separate two different (merged) basins; all False
        when the map has fewer than two objects.

    Raises
    ------
    ValueError
        For an input that is not 2-D.
    """
    probability = np.asarray(boundary_probability, dtype=np.float32)
    basins = seeded_basins(
        probability, threshold=threshold, seed_depth=seed_depth, smoothing=smoothing
    )
    return lines_between(
        basins,
        probability,
        min_contrast=min_contrast,
        max_solidity=max_solidity,
        threshold=threshold,
    )


def seeded_basins(
    probability: np.ndarray, *, threshold: float, seed_depth: float, smoothing: float
) -> np.ndarray:
    """Steps 1 and 2 of :func:`separating_lines`: watershed basins (Y, X int32, 0 =
    outside) of the objects holding two seeds or more, before any merging."""
    from skimage.morphology import h_maxima
    from skimage.segmentation import watershed

    if probability.ndim != 2:
        raise ValueError(f"expected a (Y, X) probability map, got shape {probability.shape}")
    objects = probability < threshold
    distance = ndimage.distance_transform_edt(objects)
    check_stopped()  # a caller's stop flag (core.cancellation), between the long calls
    if smoothing > 0:
        distance = ndimage.gaussian_filter(distance, smoothing)
    # plateaus are joined on the coarse grid, where their pixels are neighbours
    coarse_seeds, n_seeds = ndimage.label(
        h_maxima(distance[::2, ::2], seed_depth), structure=np.ones((3, 3), bool)
    )
    check_stopped()
    seeds = np.zeros(objects.shape, np.int32)
    seeds[::2, ::2] = coarse_seeds
    seeds[~objects] = 0
    if n_seeds < 2:
        return np.zeros(probability.shape, np.int32)
    return watershed(probability, seeds, mask=_objects_with_seeds(objects, seeds, 2))


def lines_between(
    basins: np.ndarray,
    probability: np.ndarray,
    *,
    min_contrast: float,
    max_solidity: float,
    threshold: float,
) -> np.ndarray:
    """Step 3 of :func:`separating_lines` on :func:`seeded_basins`' basins: the lines
    (Y, X bool) between the basins left after merging."""
    if min_contrast > 0 and basins.any():
        basins = merge_weak_borders(basins, probability, min_contrast, max_solidity, threshold)
    return label_borders(basins)


def grow_objects(
    mask: np.ndarray, boundary_probability: np.ndarray, threshold: float
) -> np.ndarray:
    """Objects of a class mask grown into the background pixels they are likely to own.

    A model trained with the paper's border term draws boundaries a little too thick
    (the 16-feature ``em-membranes`` bundled until 2026-12-02: 27 % membrane pixels on
    unseen slices, 22 % true).
    Calling a pixel background only where its probability exceeds ``threshold`` (> 0.5)
    thins them, but a plain threshold also opens gaps: cells merge. Here the objects
    instead grow into the pixels at or below ``threshold`` by a watershed of the
    boundary probability from the objects themselves; a grown pixel that would touch
    another object stays background (one pixel wide where two meet), so no two objects
    ever join and none appears or vanishes: only boundary pixels become object pixels.

    Parameters
    ----------
    mask : numpy.ndarray of uint8, shape (Y, X)
        Class mask, 1 = background, 2.. = classes (after the gaps are closed).
    boundary_probability : numpy.ndarray, shape (Y, X)
        Probability of class 1.
    threshold : float
        In [0.5, 1): background pixels whose probability is at most this join the
        nearest object (in the watershed sense); 0.5 returns a copy of ``mask``.

    Returns
    -------
    numpy.ndarray of uint8, shape (Y, X)
        The mask with grown objects; grown pixels take their object's class. Objects
        are the 4-connected components of each class, as instances are labelled.

    Raises
    ------
    ValueError
        For a threshold outside [0.5, 1) or arrays of different shapes.
    """
    mask, probability = _growth_inputs(mask, boundary_probability, threshold)
    grown_mask = mask.copy()
    if threshold == 0.5 or not (mask >= 2).any():
        return grown_mask
    objects, object_class = _class_objects(mask)
    check_stopped()  # a caller's stop flag (core.cancellation), between the long calls
    grown = _grown_into_band(objects, probability, threshold)
    check_stopped()
    new = (grown > 0) & (objects == 0)
    grown_mask[new] = np.asarray(object_class, np.uint8)[grown[new]]
    return grown_mask


def _growth_inputs(
    mask: np.ndarray, boundary_probability: np.ndarray, threshold: float
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`grow_objects`' mask and probability (float32) as arrays, checked: ValueError
    for a threshold outside [0.5, 1) or arrays of different shapes."""
    from ..config import is_background_threshold  # config imports this module's users

    if not is_background_threshold(threshold):
        raise ValueError(f"the background threshold must be in [0.5, 1), got {threshold!r}")
    mask = np.asarray(mask)
    probability = np.asarray(boundary_probability, dtype=np.float32)
    if mask.shape != probability.shape:
        raise ValueError(f"mask {mask.shape} and probability {probability.shape} differ in shape")
    return mask, probability


def _class_objects(mask: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """The objects of a class mask and their classes.

    Returns (objects, object_class): the 4-connected components of each class >= 2
    (Y, X int32, 0 = none), numbered from 1 class after class, and the class of each
    object number (``object_class[0]`` is 0).
    """
    objects = np.zeros(mask.shape, np.int32)
    object_class = [0]
    for value in np.unique(mask[mask >= 2]):
        labelled, count = ndimage.label(mask == value)
        objects[labelled > 0] = labelled[labelled > 0] + len(object_class) - 1
        object_class += [int(value)] * count
    return objects, object_class


def _grown_into_band(objects: np.ndarray, probability: np.ndarray, threshold: float) -> np.ndarray:
    """Object labels (Y, X) grown by a watershed of ``probability`` into the background
    pixels at or below ``threshold``, kept apart (:func:`_kept_apart`)."""
    from skimage.segmentation import watershed

    # flood only the band of eligible background pixels, from the object pixels that touch
    # it: the objects' insides never reach the band but through those (and would fill the
    # watershed's queue: 3x the time at 1024²)
    band = (probability <= threshold) & (objects == 0)
    edge = (objects > 0) & ndimage.binary_dilation(band)
    flooded = watershed(probability, np.where(edge, objects, 0), mask=band | edge)
    return _kept_apart(np.where(objects > 0, objects, flooded), objects > 0, probability)


def fill_enclosed(mask: np.ndarray) -> np.ndarray:
    """A class mask whose objects have no holes: what one object encloses joins it.

    An object (a 4-connected component of one foreground class, as instances are
    labelled) may enclose background pixels and, inside them, other objects of its
    class: a mitochondrion's outline drawn as membrane inside a cell, a dark spot in a
    nucleus. A cell or a nucleus has no holes, so each such pocket (the background
    and same-class pixels that the object cuts off from everything else) joins it.
    Pockets holding pixels of another foreground class are left as they are. On new
    ISBI models trained 60 s from strokes, pixel and Rand error lower in 8 of 8 seeds
    (Rand by 0.004-0.019 on slices 15-19); the bundled models' figures unchanged
    (BENCHMARKS.md).

    Parameters
    ----------
    mask : numpy.ndarray of uint8, shape (Y, X)
        Class mask, 1 = background, 2.. = classes.

    Returns
    -------
    numpy.ndarray of uint8, shape (Y, X)
        A copy with the pockets set to their enclosing object's class.
    """
    filled = np.array(mask, dtype=np.uint8, copy=True)
    for value in np.unique(filled[filled >= 2]):
        check_stopped()  # a caller's stop flag, before each class and every 256 objects
        objects, _ = ndimage.label(filled == value)
        for index, box in enumerate(ndimage.find_objects(objects), start=1):
            if index % 256 == 0:
                check_stopped()
            window = filled[box]
            own = objects[box] == index
            pockets, count = ndimage.label(ndimage.binary_fill_holes(own) & ~own)
            if count:
                foreign = np.unique(pockets[(window >= 2) & (window != value)])
                window[(pockets > 0) & ~np.isin(pockets, foreign[foreign > 0])] = value
    return filled


def _kept_apart(grown: np.ndarray, original: np.ndarray, probability: np.ndarray) -> np.ndarray:
    """Watershed labels (Y, X) with every grown pixel that joins two objects cleared.

    Where two 4-adjacent pixels hold different labels, the grown one of the pair (the
    one with the higher boundary probability if both are grown) goes back to the
    background; grown pixels then cut off from their object go back too. No two
    4-adjacent pixels keep different labels, so the objects' components are as before.
    """
    grown = grown.copy()
    is_new = (grown > 0) & ~original
    cut = np.zeros(grown.shape, bool)
    for first, second in NEIGHBOUR_PAIRS:
        a, b = grown[first], grown[second]
        clash = (a != b) & (a > 0) & (b > 0)
        new_a, new_b = is_new[first], is_new[second]
        clear_first = clash & new_a & (~new_b | (probability[first] >= probability[second]))
        cut[first] |= clear_first
        cut[second] |= clash & new_b & ~clear_first
    grown[cut] = 0
    components, count = ndimage.label(grown > 0)
    attached = np.zeros(count + 1, bool)
    attached[components[original]] = True
    grown[~attached[components]] = 0
    return grown


def object_seed_pairs(
    objects: np.ndarray, seeds: np.ndarray
) -> tuple[np.ndarray, int, np.ndarray, np.ndarray]:
    """Which seed labels lie in which object: ``objects`` (Y, X bool) split into
    4-connected components as the watershed floods, and for each distinct (component,
    seed label) pair with a seed (``seeds`` Y, X int, 0 = none) inside an object, its
    component and its label. Returns (components (Y, X), their count, component of each
    pair, label of each pair)."""
    components, n_components = ndimage.label(objects)
    inside, n_codes = (seeds > 0) & (components > 0), int(seeds.max()) + 1
    pairs = np.unique(components[inside].astype(np.int64) * n_codes + seeds[inside])
    return components, n_components, pairs // n_codes, pairs % n_codes


def _objects_with_seeds(objects: np.ndarray, seeds: np.ndarray, at_least: int) -> np.ndarray:
    """The connected objects (Y, X bool) holding ``at_least`` seeds: only those can split."""
    components, n_components, component_of, _ = object_seed_pairs(objects, seeds)
    return (np.bincount(component_of, minlength=n_components + 1) >= at_least)[components]

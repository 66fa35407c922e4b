"""Closing the gaps of predicted boundaries, so that touching objects stay apart.

A U-Net's boundaries (EM membranes, the background between touching nuclei) are
sometimes too faint for one pixel or two: a gap of a few pixels in a membrane
merges two cells into one instance, which costs far more in a segmentation score
than the few pixels it misclassifies. :func:`separating_lines` finds the lines
that close such gaps, in three steps:

1. **Seeds**: the distance transform of the objects (pixels with boundary
   probability below ``threshold``), smoothed, peaks in each object body; its local
   maxima within a ``seed_window`` square (plateaus joined) are the seeds. Two cells
   joined through a narrow gap keep a seed each.
2. **Watershed** of the boundary probability from those seeds, within the objects
   that hold two seeds or more (:func:`skimage.segmentation.watershed`):
   neighbouring basins of one connected object meet along the ridge of the
   boundary probability, which runs through the gap.
3. **Merging**: where the mean boundary probability along the border of two
   basins is below ``merge_below``, nothing says a boundary is there (a seed too
   many inside one object), so the two basins merge (connected components of the
   graph of such weak borders). The region adjacency graph of
   :mod:`skimage.graph` is not used: it would also join objects through the
   pixels outside them.

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

__all__ = ["BOUNDARY_MERGE_BELOW", "SEED_WINDOW", "separating_lines"]

#: Default of ``seed_window`` (pixels): a seed is the largest distance in this square.
SEED_WINDOW: int = 5
#: Default of ``merge_below``: basins whose shared border has a mean boundary
#: probability under this merge.
BOUNDARY_MERGE_BELOW: float = 0.2


def separating_lines(
    boundary_probability: np.ndarray,
    *,
    threshold: float = 0.5,
    seed_window: int = SEED_WINDOW,
    smoothing: float = 1.0,
    merge_below: float = BOUNDARY_MERGE_BELOW,
) -> np.ndarray:
    """One-pixel lines between the objects of a boundary probability map.

    Parameters
    ----------
    boundary_probability : numpy.ndarray, shape (Y, X)
        Probability of the boundary (or background) class, in [0, 1]: channel 0 of
        :func:`napari_unet.predict`'s output.
    threshold : float
        Pixels below it are object pixels (the class mask's rule for two classes).
    seed_window : int
        Edge (pixels) of the square in which a seed is the largest smoothed distance;
        larger windows give fewer seeds.
    smoothing : float
        Gaussian sigma (pixels) applied to the distance transform; 0 = none.
    merge_below : float
        Neighbouring basins merge when the mean boundary probability along their
        shared border is below this; 0 keeps every basin.

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
    from skimage.segmentation import watershed

    probability = np.asarray(boundary_probability, dtype=np.float32)
    if probability.ndim != 2:
        raise ValueError(f"expected a (Y, X) probability map, got shape {probability.shape}")
    objects = probability < threshold
    distance = ndimage.distance_transform_edt(objects)
    if smoothing > 0:
        distance = ndimage.gaussian_filter(distance, smoothing)
    peaks = (distance == ndimage.maximum_filter(distance, size=seed_window)) & objects
    seeds, n_seeds = ndimage.label(peaks, structure=np.ones((3, 3), bool))
    if n_seeds < 2:
        return np.zeros(probability.shape, bool)
    basins = watershed(probability, seeds, mask=_objects_with_seeds(objects, seeds, 2))
    if merge_below > 0:
        basins = _merge_weak_borders(basins, probability, merge_below)
    return _label_borders(basins)


def _objects_with_seeds(objects: np.ndarray, seeds: np.ndarray, at_least: int) -> np.ndarray:
    """The connected objects (Y, X bool) holding ``at_least`` seeds: only those can split."""
    components, n_components = ndimage.label(objects)
    inside = seeds > 0
    pairs = np.unique(components[inside].astype(np.int64) * (int(seeds.max()) + 1) + seeds[inside])
    counts = np.bincount(pairs // (int(seeds.max()) + 1), minlength=n_components + 1)
    keep = counts >= at_least
    keep[0] = False
    return keep[components]


def _neighbour_pairs(labels: np.ndarray):
    """(first, second) views of every horizontally and vertically adjacent pixel pair."""
    yield (slice(None), slice(None, -1)), (slice(None), slice(1, None))
    yield (slice(None, -1), slice(None)), (slice(1, None), slice(None))


def _merge_weak_borders(basins: np.ndarray, probability: np.ndarray, below: float) -> np.ndarray:
    """Merge basins (Y, X; 0 = outside) whose shared border has a mean probability below.

    The border of two basins is every 4-adjacent pixel pair with those two labels; its
    value is the mean of the pair's probabilities. Basins joined by weak borders form
    connected components of a graph, and each component becomes one basin.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n_labels = int(basins.max()) + 1
    codes, values = [], []
    for first, second in _neighbour_pairs(basins):
        a, b = basins[first], basins[second]
        differ = (a != b) & (a > 0) & (b > 0)
        low, high = np.minimum(a[differ], b[differ]), np.maximum(a[differ], b[differ])
        codes.append(low.astype(np.int64) * n_labels + high)
        values.append((probability[first][differ] + probability[second][differ]) / 2)
    borders, inverse = np.unique(np.concatenate(codes), return_inverse=True)
    if borders.size == 0:
        return basins
    mean = np.bincount(inverse, np.concatenate(values)) / np.bincount(inverse)
    weak = borders[mean < below]
    graph = coo_matrix(
        (np.ones(weak.size), (weak // n_labels, weak % n_labels)), shape=(n_labels, n_labels)
    )
    _, component = connected_components(graph, directed=False)
    return np.where(basins > 0, component[basins] + 1, 0)


def _label_borders(labels: np.ndarray) -> np.ndarray:
    """Pixels (Y, X bool) whose right or lower neighbour has another non-zero label.

    Marking one side of every border keeps the labels 4-connected apart: two
    neighbouring unmarked pixels with non-zero labels always share a label.
    """
    borders = np.zeros(labels.shape, bool)
    for first, second in _neighbour_pairs(labels):
        a, b = labels[first], labels[second]
        borders[first] |= (a != b) & (a > 0) & (b > 0)
    return borders

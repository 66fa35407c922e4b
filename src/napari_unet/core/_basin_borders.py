"""The borders between watershed basins: step 3 of
:func:`napari_unet.core.boundaries.separating_lines` (basins whose border does not stand
out merge, as do two basins that are one convex shape cut across) and the one-pixel lines
left between the basins.

See the module docstring of :mod:`napari_unet.core.boundaries` for the rule and why.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = ["NEIGHBOUR_PAIRS", "label_borders", "merge_weak_borders"]

#: (first, second) index pairs of every horizontally and vertically adjacent pixel pair.
NEIGHBOUR_PAIRS = (
    ((slice(None), slice(None, -1)), (slice(None), slice(1, None))),
    ((slice(None, -1), slice(None)), (slice(1, None), slice(None))),
)


def merge_weak_borders(
    basins: np.ndarray,
    probability: np.ndarray,
    contrast: float,
    max_solidity: float,
    threshold: float,
) -> np.ndarray:
    """Merge basins (Y, X; 0 = outside) whose shared border does not stand out.

    The border of two basins is every 4-adjacent pixel pair with those two labels; its
    value is the mean of the pairs' probabilities. It is weak when that value exceeds
    the mean probability inside the higher of the two basins by less than
    ``contrast``, or when the two basins are one convex shape cut across
    (:func:`_uncut_pairs`; a sure boundary is halfway from ``threshold`` to 1).
    Basins joined by weak borders form connected components of a graph, and each
    component becomes one basin.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n_labels = int(basins.max()) + 1
    flat = basins.ravel()
    sums = np.bincount(flat, probability.ravel(), minlength=n_labels)
    inside = sums / np.maximum(np.bincount(flat, minlength=n_labels), 1)
    codes, values = [], []
    for first, second in NEIGHBOUR_PAIRS:
        a, b = basins[first], basins[second]
        differ = (a != b) & (a > 0) & (b > 0)
        low, high = np.minimum(a[differ], b[differ]), np.maximum(a[differ], b[differ])
        codes.append(low.astype(np.int64) * n_labels + high)
        values.append((probability[first][differ] + probability[second][differ]) / 2)
    borders, inverse = np.unique(np.concatenate(codes), return_inverse=True)
    if borders.size == 0:
        return basins
    mean = np.bincount(inverse, np.concatenate(values)) / np.bincount(inverse)
    low, high = borders // n_labels, borders % n_labels
    weak = mean - np.maximum(inside[low], inside[high]) < contrast
    if max_solidity <= 1 and not weak.all():
        strong = ~weak
        weak[strong] = _uncut_pairs(
            basins, probability, low[strong], high[strong], max_solidity, (1 + threshold) / 2
        )
    graph = coo_matrix((np.ones(int(weak.sum())), (low[weak], high[weak])), shape=(n_labels,) * 2)
    _, component = connected_components(graph, directed=False)
    return np.where(basins > 0, component[basins] + 1, 0)


def _uncut_pairs(
    basins: np.ndarray,
    probability: np.ndarray,
    low: np.ndarray,
    high: np.ndarray,
    max_solidity: float,
    sure: float,
) -> np.ndarray:
    """For each pair of neighbouring basins (labels ``low``, ``high``), True if they
    are one shape cut across: their union (closed by a 3 x 3 square, holes filled) has
    a solidity (area over the area of its convex hull) of at least ``max_solidity``;
    what they enclose, if anything, is not a sure boundary (mean ``probability`` below
    ``sure``: a membrane with a gap at both ends is); and their border spans at least
    half the union's minor axis (a gap in a boundary that is otherwise there spans
    less)."""
    from skimage.measure import regionprops

    boxes = ndimage.find_objects(basins)
    uncut = np.zeros(low.shape, bool)
    for index, (a, b) in enumerate(zip(low, high)):
        box = tuple(
            slice(max(min(p.start, q.start) - 1, 0), max(p.stop, q.stop) + 1)
            for p, q in zip(boxes[a - 1], boxes[b - 1])
        )
        window = basins[box]
        union = np.isin(window, (a, b))
        union |= ndimage.binary_closing(union, np.ones((3, 3), bool))
        filled = ndimage.binary_fill_holes(union)
        shape = regionprops(filled.astype(np.uint8))[0]
        enclosed = filled & ~union
        if shape.solidity < max_solidity or (
            enclosed.any() and probability[box][enclosed].mean() >= sure
        ):
            continue
        border = np.zeros(window.shape, bool)
        for first, second in NEIGHBOUR_PAIRS:
            x, y = window[first], window[second]
            border[first] |= ((x == a) & (y == b)) | ((x == b) & (y == a))
        rows, columns = np.nonzero(border)
        span = np.hypot(np.ptp(rows) + 1, np.ptp(columns) + 1)
        uncut[index] = span >= 0.5 * shape.axis_minor_length
    return uncut


def label_borders(labels: np.ndarray) -> np.ndarray:
    """Pixels (Y, X bool) whose right or lower neighbour has another non-zero label.

    Marking one side of every border keeps the labels 4-connected apart: two
    neighbouring unmarked pixels with non-zero labels always share a label.
    """
    borders = np.zeros(labels.shape, bool)
    for first, second in NEIGHBOUR_PAIRS:
        a, b = labels[first], labels[second]
        borders[first] |= (a != b) & (a > 0) & (b > 0)
    return borders

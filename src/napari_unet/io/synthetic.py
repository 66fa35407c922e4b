"""Synthetic data with exact ground truth, and simulated scribbles.

:func:`synthetic_nuclei` makes fluorescent-nuclei-like images with touching
objects and their exact instance labels; :func:`simulate_scribbles` turns a
dense annotation into sparse brush strokes like a user's. Both are
deterministic for a seed. No napari or Qt import here.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage.draw import line

__all__ = ["simulate_scribbles", "synthetic_nuclei"]


def _ellipse(
    center: np.ndarray, radii: np.ndarray, angle: float, shape: tuple[int, int], scale: float = 1
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pixels (rows, cols) inside an ellipse scaled by ``scale``, and their radius rho.

    ``rho = sqrt((u / a)^2 + (v / b)^2)`` in the ellipse's own axes (1 on the outline).
    """
    reach = scale * radii.max()
    low = np.maximum(np.floor(center - reach), 0).astype(int)
    high = np.minimum(np.ceil(center + reach) + 1, shape).astype(int)
    rows, cols = np.mgrid[low[0] : high[0], low[1] : high[1]]
    dy, dx = rows - center[0], cols - center[1]
    cos, sin = np.cos(angle), np.sin(angle)
    rho = np.hypot((dy * cos + dx * sin) / radii[0], (dx * cos - dy * sin) / radii[1])
    inside = rho <= scale
    return rows[inside], cols[inside], rho[inside]


def _ray_extent(radii: np.ndarray, angle: float, direction: float) -> float:
    """Distance from an ellipse's centre to its outline along ``direction`` (radians)."""
    relative = direction - angle
    return float(1 / np.hypot(np.cos(relative) / radii[0], np.sin(relative) / radii[1]))


def _add_nucleus(
    instances: np.ndarray, intensity: np.ndarray, nucleus: tuple, label: int, partner: int = 0
) -> bool:
    """Draw one nucleus on free pixels if nothing but ``partner`` lies within 2 px.

    Only the largest 4-connected piece of the free pixels is kept, so the instance
    is connected; pixels already labelled stay with their earlier nucleus.
    """
    center, radii, angle, brightness = nucleus
    margin = 1 + 2 / radii.min()
    near_rows, near_cols, _ = _ellipse(center, radii, angle, instances.shape, margin)
    if np.any(~np.isin(instances[near_rows, near_cols], (0, partner))):
        return False
    rows, cols, rho = _ellipse(center, radii, angle, instances.shape)
    free = instances[rows, cols] == 0
    piece = np.zeros(instances.shape, bool)
    piece[rows[free], cols[free]] = True
    pieces, n_pieces = ndimage.label(piece)
    if n_pieces == 0:
        return False
    largest = np.argmax(np.bincount(pieces.ravel())[1:]) + 1
    keep = free & (pieces[rows, cols] == largest)
    if keep.sum() < 0.4 * rows.size:
        return False
    instances[rows[keep], cols[keep]] = label
    intensity[rows[keep], cols[keep]] = brightness * (1 - 0.3 * rho[keep] ** 2)
    return True


def _touching(instances: np.ndarray, label_a: int, label_b: int) -> bool:
    """Whether two instances are 4-adjacent."""
    grown = ndimage.binary_dilation(instances == label_a)
    return bool(np.any(grown & (instances == label_b)))


def synthetic_nuclei(
    shape: tuple[int, int] = (256, 256),
    n_nuclei: int = 40,
    rng: np.random.Generator | int | None = None,
    *,
    touching: bool = True,
    radius_range: tuple[float, float] = (6.0, 11.0),
    background: float = 0.1,
    photons: float = 200.0,
    read_noise: float = 0.01,
) -> tuple[np.ndarray, np.ndarray]:
    """A fluorescent-nuclei-like image with exact instance labels.

    Nuclei are ellipses (semi-axes in ``radius_range``, random orientation,
    brightness 0.4..1, dimmer towards the rim, mild texture). With ``touching``,
    ``max(1, n_nuclei // 5)`` pairs (if ``n_nuclei >= 2``) overlap when drawn; the
    overlap belongs to the earlier nucleus, so labels never overlap and the pair
    touches. Other nuclei keep at least 2 px from all others. The clean image plus
    ``background`` is blurred (Gaussian, sigma 1), then gets Poisson noise
    (``photons`` per unit intensity) and Gaussian read noise.

    Parameters
    ----------
    shape : tuple of int
        (Y, X) size.
    n_nuclei : int
        Number of nuclei, all of which are placed.
    rng : numpy.random.Generator or int, optional
        Random generator or seed; the same seed gives the same output.
    touching : bool
        Whether to include touching pairs.
    radius_range : tuple of float
        Smallest and largest semi-axis in pixels.
    background, photons, read_noise : float
        Background level, photons per unit intensity, read-noise sigma.

    Returns
    -------
    image : numpy.ndarray of float32, shape (Y, X)
        Noisy image, roughly in [0, 1.1].
    instances : numpy.ndarray of uint16, shape (Y, X)
        0 = background, nuclei labelled 1..n_nuclei in placement order.

    Raises
    ------
    ValueError
        If the nuclei do not fit into ``shape``.
    """
    generator = np.random.default_rng(rng)
    instances, intensity = _place_nuclei(generator, shape, n_nuclei, touching, radius_range)
    image = _noisy_image(intensity, generator, background, photons, read_noise)
    return image, instances


def _place_nuclei(
    generator: np.random.Generator,
    shape: tuple[int, int],
    n_nuclei: int,
    touching: bool,
    radius_range: tuple[float, float],
) -> tuple[np.ndarray, np.ndarray]:
    """The instance labels (uint16) and clean intensity (float32), both of ``shape``,
    of ``n_nuclei`` nuclei placed as :func:`synthetic_nuclei` places them.

    Raises
    ------
    ValueError
        If the nuclei do not fit into ``shape``.
    """
    instances = np.zeros(shape, np.uint16)
    intensity = np.zeros(shape, np.float32)
    n_pairs = min(max(1, n_nuclei // 5), n_nuclei // 2) if touching else 0
    label = 0
    for _attempt in range(100 * max(n_nuclei, 1)):
        if label >= n_nuclei:
            break
        nucleus = _random_nucleus(generator, shape, radius_range)
        if not _add_nucleus(instances, intensity, nucleus, label + 1):
            continue
        label += 1
        if label <= 2 * n_pairs:  # first of a touching pair
            if _add_partner(instances, intensity, nucleus, generator):
                label += 1
            else:  # no room for a partner here: try elsewhere
                _remove(instances, intensity, label)
                label -= 1
    if label < n_nuclei:
        raise ValueError(
            f"could only place {label} of {n_nuclei} nuclei in {shape}; use fewer nuclei, "
            "a smaller radius_range or a larger shape"
        )
    return instances, intensity


def _noisy_image(
    intensity: np.ndarray,
    generator: np.random.Generator,
    background: float,
    photons: float,
    read_noise: float,
) -> np.ndarray:
    """The float32 image of the clean ``intensity`` (Y, X): textured, plus
    ``background``, blurred, with Poisson and Gaussian read noise."""
    shape = intensity.shape
    texture = ndimage.gaussian_filter(generator.normal(size=shape), 2.0)
    clean = intensity * (1 + 0.1 * texture / max(texture.std(), 1e-6)) + background
    blurred = np.clip(ndimage.gaussian_filter(clean, 1.0), 0, None)
    noisy = generator.poisson(blurred * photons) / photons
    noisy = noisy + generator.normal(0.0, read_noise, shape)
    return noisy.astype(np.float32)


def _random_nucleus(
    generator: np.random.Generator, shape: tuple[int, int], radius_range: tuple[float, float]
) -> tuple:
    """Random (center, radii, angle, brightness) of a nucleus inside ``shape``."""
    major = generator.uniform(*radius_range)
    radii = np.array([major, major * generator.uniform(0.6, 1.0)])
    center = generator.uniform(major, np.array(shape) - major)
    return center, radii, generator.uniform(0, np.pi), generator.uniform(0.4, 1.0)


def _add_partner(
    instances: np.ndarray, intensity: np.ndarray, nucleus: tuple, generator: np.random.Generator
) -> bool:
    """Add a nucleus overlapping ``nucleus`` (label = current max + 1); True if touching."""
    label = int(instances.max())
    center, radii, angle, _ = nucleus
    for _attempt in range(20):
        partner = _random_nucleus(generator, instances.shape, (radii.min(), radii.max()))
        direction = generator.uniform(0, 2 * np.pi)
        distance = 0.8 * (
            _ray_extent(radii, angle, direction) + _ray_extent(partner[1], partner[2], direction)
        )
        offset = distance * np.array([np.sin(direction), np.cos(direction)])
        partner = (center + offset, *partner[1:])
        if _add_nucleus(instances, intensity, partner, label + 1, partner=label):
            if _touching(instances, label, label + 1):
                return True
            _remove(instances, intensity, label + 1)
    return False


def _remove(instances: np.ndarray, intensity: np.ndarray, label: int) -> None:
    """Erase one nucleus from the label and intensity images, in place."""
    pixels = instances == label
    instances[pixels] = 0
    intensity[pixels] = 0


# ----------------------------------------------------------------------------- scribbles
def simulate_scribbles(
    annotation: np.ndarray,
    rng: np.random.Generator | int | None,
    *,
    fraction: float = 0.02,
    stroke_width: int = 1,
    stroke_length: tuple[float, float] = (8.0, 40.0),
) -> np.ndarray:
    """Sparse scribbles, like a user's brush strokes, from a dense annotation.

    Each class gets an equal share of ``floor(fraction * Y * X)`` pixels, filled by
    strokes: random walks of 1-3 straight segments (:func:`skimage.draw.line`) of
    total length in ``stroke_length``, starting at a random pixel of the class and
    cut where the centre line first leaves the class, thickened to
    ``stroke_width``. Only pixels whose dense label equals the stroke's class are
    kept, so every scribble pixel agrees with the annotation and every class
    present gets at least one pixel.

    Parameters
    ----------
    annotation : numpy.ndarray of int, shape (Y, X)
        Dense annotation: 1 = background, 2..K = classes (0 = unlabelled, skipped).
    rng : numpy.random.Generator or int
        Random generator or seed; the same state gives the same scribbles.
    fraction : float
        Upper bound on the fraction of pixels scribbled.
    stroke_width : int
        Brush width in pixels.
    stroke_length : tuple of float
        Shortest and longest stroke, in pixels.

    Returns
    -------
    numpy.ndarray of uint8, shape (Y, X)
        The annotation on scribbled pixels, 0 elsewhere.

    Raises
    ------
    ValueError
        If the pixel budget is smaller than the number of classes.
    """
    annotation = np.asarray(annotation)
    if annotation.ndim != 2:
        raise ValueError(f"expected a (Y, X) annotation, got shape {annotation.shape}")
    generator = np.random.default_rng(rng)
    classes, budget = _classes_and_budget(annotation, fraction)
    scribbles = np.zeros(annotation.shape, np.uint8)
    for value in classes:
        share = budget // len(classes)
        _scribble_class(
            scribbles, annotation == value, value, share, generator, stroke_width, stroke_length
        )
    return scribbles


def _classes_and_budget(annotation: np.ndarray, fraction: float) -> tuple[list[int], int]:
    """The labels >= 1 of ``annotation`` and the pixels ``fraction`` of it allows.

    Raises
    ------
    ValueError
        If the pixel budget is smaller than the number of classes.
    """
    classes = [int(value) for value in np.unique(annotation) if value >= 1]
    budget = int(fraction * annotation.size)
    if classes and budget < len(classes):
        raise ValueError(
            f"fraction={fraction} allows {budget} pixels, fewer than the {len(classes)} classes"
        )
    return classes, budget


def _scribble_class(
    scribbles: np.ndarray,
    region: np.ndarray,
    value: int,
    share: int,
    generator: np.random.Generator,
    stroke_width: int,
    stroke_length: tuple[float, float],
) -> None:
    """Draw strokes of ``value`` inside ``region`` until ``share`` pixels, in place."""
    candidates = np.flatnonzero(region)
    target = min(share, candidates.size)
    placed = 0
    for _stroke in range(10 + 4 * target):
        if placed >= target:
            return
        start = np.unravel_index(generator.choice(candidates), region.shape)
        rows, cols = _random_walk(np.array(start), generator, stroke_length, region.shape)
        leaves = np.flatnonzero(~region[rows, cols])
        if leaves.size:  # keep the stroke up to where it first leaves the class
            rows, cols = rows[: leaves[0]], cols[: leaves[0]]
        rows, cols = _thicken(rows, cols, stroke_width, region.shape)
        keep = region[rows, cols] & (scribbles[rows, cols] == 0)
        rows, cols = rows[keep][: target - placed], cols[keep][: target - placed]
        scribbles[rows, cols] = value
        placed += rows.size


def _random_walk(
    start: np.ndarray,
    generator: np.random.Generator,
    stroke_length: tuple[float, float],
    shape: tuple[int, ...],
) -> tuple[np.ndarray, np.ndarray]:
    """Ordered pixels of a polyline of 1-3 segments from ``start``, clipped to ``shape``."""
    n_segments = int(generator.integers(1, 4))
    segment_length = generator.uniform(*stroke_length) / n_segments
    heading = generator.uniform(0, 2 * np.pi)
    row_parts, col_parts, point = [start[:1]], [start[1:]], start
    for _segment in range(n_segments):
        step = segment_length * np.array([np.sin(heading), np.cos(heading)])
        end = np.round(point + step).astype(int)
        segment_rows, segment_cols = line(*point, *end)
        row_parts.append(segment_rows[1:])
        col_parts.append(segment_cols[1:])
        point, heading = end, heading + generator.normal(0, 0.7)
    rows, cols = np.concatenate(row_parts), np.concatenate(col_parts)
    outside = np.flatnonzero((rows < 0) | (cols < 0) | (rows >= shape[0]) | (cols >= shape[1]))
    stop = outside[0] if outside.size else rows.size
    return rows[:stop], cols[:stop]


def _thicken(
    rows: np.ndarray, cols: np.ndarray, width: int, shape: tuple[int, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """Pixels of a ``width`` x ``width`` brush along a path, in path order, inside ``shape``."""
    offsets = np.arange(width) - (width - 1) // 2
    d_rows, d_cols = (o.ravel() for o in np.meshgrid(offsets, offsets, indexing="ij"))
    rows = (rows[:, None] + d_rows[None]).ravel()
    cols = (cols[:, None] + d_cols[None]).ravel()
    inside = (rows >= 0) & (cols >= 0) & (rows < shape[0]) & (cols < shape[1])
    flat = np.ravel_multi_index((rows[inside], cols[inside]), shape)
    _, first = np.unique(flat, return_index=True)
    path_rows, path_cols = np.unravel_index(flat[np.sort(first)], shape)
    return path_rows, path_cols

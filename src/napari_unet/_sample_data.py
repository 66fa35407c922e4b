"""napari sample-data contributions (the only napari-facing module outside ``_widgets``).

Returns layer-data tuples; imports nothing from napari.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def synthetic_nuclei_sample() -> list[tuple[Any, dict[str, Any], str]]:
    """A synthetic fluorescent-nuclei image with touching objects and its exact ground truth."""
    from .io.data import synthetic_nuclei

    image, instances = synthetic_nuclei(shape=(256, 256), n_nuclei=40, rng=0)
    return [
        (image, {"name": "synthetic nuclei", "colormap": "gray"}, "image"),
        (
            instances.astype(np.uint32),
            {"name": "synthetic nuclei ground truth", "opacity": 0.5, "visible": False},
            "labels",
        ),
    ]


def cell_sample() -> list[tuple[Any, dict[str, Any], str]]:
    """scikit-image's ``cell`` image (shipped with scikit-image)."""
    from skimage import data

    return [(data.cell(), {"name": "cell", "colormap": "gray"}, "image")]

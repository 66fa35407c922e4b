"""Which ground-truth layer goes with which image, by napari's layer names."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from napari_unet._widgets._truth_names import closest_truth, truth_kinship


@pytest.mark.parametrize(
    ("image", "truth", "kinship"),
    [
        ("05", "05 [1]", 2),  # ISBI image/05.png and label/05.png
        ("05", "00 [1]", 0),  # another slice's label
        ("cells", "cells_gt", 2),
        ("cells", "cells mask", 2),
        ("cells", "cellsmask", 1),  # not named after it; neither has a copy number
        ("0", "05", 1),
        ("image [1]", "mask [1]", 1),  # the second folder's image.tif and mask.tif
        ("image [1]", "mask", 0),
        ("image", "mask", 1),
    ],
)
def test_truth_kinship_reads_napari_names(image, truth, kinship):
    assert truth_kinship(image, truth) == kinship


def test_the_closest_truth_is_the_first_of_the_closest_names():
    layers = [SimpleNamespace(name=name) for name in ("00 [1]", "mask", "05 [1]", "05 gt")]
    assert closest_truth(SimpleNamespace(name="05"), layers) is layers[2]
    assert closest_truth(SimpleNamespace(name="05"), []) is None
    assert closest_truth(None, layers) is layers[0]  # no image: the first

"""Which ground truth goes with which image, by the names napari gives their layers.

File → Open names a layer after its file's stem, and a second layer of the same name gets
" [1]": ISBI's ``image/05.png`` and ``label/05.png`` open as "05" and "05 [1]", the DSB's
``image.tif`` and ``mask.tif`` from a second folder as "image [1]" and "mask [1]". The
Evaluate panel chooses, for the image chosen, the ground truth whose name goes with it
(:func:`truth_kinship`), instead of keeping another image's truth of the same shape.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

__all__ = ["closest_truth", "kinship", "truth_kinship"]

_COPY = re.compile(r"^(.*?)(?: \[(\d+)\])?$")
"""A layer name and the number napari appended to tell it from a layer of the same name."""

_SEPARATORS = " _-."


def truth_kinship(image_name: str, truth_name: str) -> int:
    """How closely the layer name ``truth_name`` goes with the image ``image_name``.

    Returns
    -------
    int
        2: the truth is named after the image ("05 [1]" for "05", "cells mask" or
        "cells_gt" for "cells"); 1: both carry the same number napari appended, or none
        ("mask [1]" for "image [1]", "mask" for "image"); 0: otherwise.
    """
    image_stem, image_copy = _split(image_name)
    truth_stem, truth_copy = _split(truth_name)
    if truth_stem == image_stem or (
        truth_stem.startswith(image_stem)
        and truth_stem[len(image_stem) : len(image_stem) + 1] in tuple(_SEPARATORS)
    ):
        return 2
    return 1 if truth_copy == image_copy else 0


def kinship(image: Any, truth: Any) -> int:
    """:func:`truth_kinship` of two layers' names (0 when there is no ``image``)."""
    return 0 if image is None else truth_kinship(image.name, truth.name)


def closest_truth(image: Any, candidates: Sequence[Any]) -> Any:
    """The first of the layers ``candidates`` whose name goes most closely with ``image``'s
    (:func:`kinship`); None when there is none."""
    return max(candidates, key=lambda truth: kinship(image, truth), default=None)


def _split(name: str) -> tuple[str, str | None]:
    match = _COPY.match(name)
    assert match is not None  # the pattern matches every string
    return match.group(1), match.group(2)

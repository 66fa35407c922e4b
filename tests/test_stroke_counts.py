"""Per-plane stroke counts: only the planes an edit touched are counted again."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pytest

from napari_unet._widgets import _stroke_counts
from napari_unet._widgets._stroke_counts import StrokeCounts, edited_planes


class MaskAtom(NamedTuple):  # the shape of napari's mask-based history atom
    slice_key: tuple
    mask: object
    old_values: object
    new_value: int


def _stack(seed=0):
    rng = np.random.default_rng(seed)
    return rng.choice([0, 0, 0, 1, 2, 5], size=(2, 3, 16, 16)).astype(np.uint8)


def _expected(data, n_classes):
    planes = data.reshape(-1, *data.shape[-2:])
    return (
        {label: int(np.count_nonzero(data == label)) for label in range(1, n_classes + 1)},
        int(np.count_nonzero(data > n_classes)),
        int(planes.any(axis=(1, 2)).sum()),
    )


def test_edited_planes_of_each_kind_of_atom():
    shape = (2, 3, 16, 16)
    box = MaskAtom((slice(1, 2), slice(0, 2), slice(0, 4), slice(0, 4)), None, None, 1)
    assert edited_planes([box], shape) == {3, 4}  # (1, 0) and (1, 1), flattened
    fancy = ((np.array([0, 0]), np.array([2, 2]), np.array([1, 5]), np.array([1, 1])), 0, 2)
    assert edited_planes([fancy, box], shape) == {2, 3, 4}
    assert edited_planes([object()], shape) is None  # not understood: count everything
    assert edited_planes([box], (16, 16)) == {0}


def test_totals_follow_edits_and_recount_only_the_touched_planes(monkeypatch):
    data, counts = _stack(), StrokeCounts()
    totals = counts.totals(data, 2)
    assert (totals.per_label, totals.above, totals.annotated_planes) == _expected(data, 2)
    assert totals.planes == 6
    counted = []
    original = _stroke_counts.plane_counts
    monkeypatch.setattr(
        _stroke_counts, "plane_counts", lambda plane, n: counted.append(1) or original(plane, n)
    )
    data[1, 0] = 0
    data[1, 0, :3, :3] = 2
    counts.mark_edit([MaskAtom((slice(1, 2), slice(0, 1)), None, None, 2)], data.shape)
    totals = counts.totals(data, 2)
    assert len(counted) == 1
    assert (totals.per_label, totals.above, totals.annotated_planes) == _expected(data, 2)
    totals = counts.totals(data, 5)  # another number of classes: every plane again
    assert len(counted) == 7 and totals.above == 0
    assert totals.per_label == _expected(data, 5)[0]


@pytest.mark.parametrize("atom", [object(), "not a list"])
def test_an_unknown_edit_recounts_everything(atom):
    data, counts = _stack(), StrokeCounts()
    counts.totals(data, 2)
    data[:] = 1
    counts.mark_edit([atom] if atom != "not a list" else atom, data.shape)
    assert counts.totals(data, 2).per_label == {1: data.size, 2: 0}


def test_totals_name_the_annotated_planes():
    from napari_unet._widgets._annotate import NAMED_SLICES, _which_slices

    data = np.zeros((12, 8, 8), np.uint8)
    data[[1, 3], 2, 2] = 2
    totals = StrokeCounts().totals(data, 2)
    assert totals.annotated == (1, 3) and totals.annotated_planes == 2
    assert _which_slices(totals.annotated) == " (1, 3)"
    assert _which_slices(()) == ""
    many = tuple(range(NAMED_SLICES + 2))
    assert _which_slices(many) == f" ({', '.join(map(str, range(NAMED_SLICES)))}, …)"

"""Renames that publish outputs: tried again while Windows refuses them, and a store
that cannot take its place gives the older one back."""

from __future__ import annotations

import os

import pytest
import zarr

from napari_unet.core import _atomic
from napari_unet.io import _zarr_store


def test_a_rename_windows_refuses_for_a_moment_is_tried_again(monkeypatch):
    refusals, pauses, done = [PermissionError("in use")] * 2, [], []

    def rename(source, target):
        if refusals:
            raise refusals.pop()
        done.append((source, target))

    monkeypatch.setattr(_atomic.os, "replace", rename)
    monkeypatch.setattr(_atomic.time, "sleep", pauses.append)
    monkeypatch.setattr(_atomic.os, "name", "nt")  # no Path is made while it says so
    _atomic.replace("a.tmp", "a.tif")
    assert done == [("a.tmp", "a.tif")] and pauses == list(_atomic.WINDOWS_RENAME_PAUSES[:2])
    refusals[:] = [PermissionError("in use")] * 9
    with pytest.raises(PermissionError):  # held for good: the error, after every pause
        _atomic.replace("b.tmp", "b.tif")
    assert len(pauses) == 2 + len(_atomic.WINDOWS_RENAME_PAUSES)


def test_elsewhere_a_refused_rename_is_not_tried_again(monkeypatch):
    calls = []

    def rename(source, target):
        calls.append(source)
        raise PermissionError("denied")

    monkeypatch.setattr(_atomic.os, "replace", rename)
    monkeypatch.setattr(_atomic.os, "name", "posix")
    with pytest.raises(PermissionError):
        _atomic.replace("a.tmp", "a.tif")
    assert calls == ["a.tmp"]


def test_a_store_that_cannot_take_its_place_gives_the_older_one_back(tmp_path, monkeypatch):
    final, partial = tmp_path / "img_prediction.zarr", tmp_path / ".img_prediction.zarr.partial"
    zarr.open_group(str(final), mode="w").attrs["run"] = "older"
    zarr.open_group(str(partial), mode="w").attrs["run"] = "newer"
    renamed, held = [], [True]

    def rename(source, target):
        if source == partial and held[0]:
            raise PermissionError("in use")
        renamed.append(target)
        os.replace(source, target)

    monkeypatch.setattr(_zarr_store, "replace", rename)
    with pytest.raises(PermissionError):
        _zarr_store.publish(partial, final)
    assert zarr.open_group(str(final), mode="r").attrs["run"] == "older"
    assert renamed[-1] == final and sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [final.name, partial.name]
    )
    held[0] = False  # the other program let go
    _zarr_store.publish(partial, final)
    assert zarr.open_group(str(final), mode="r").attrs["run"] == "newer"
    assert [p.name for p in tmp_path.iterdir()] == [final.name]


def test_a_store_neither_published_nor_put_back_is_named(tmp_path, monkeypatch):
    final, partial = tmp_path / "img_prediction.zarr", tmp_path / ".img_prediction.zarr.partial"
    zarr.open_group(str(final), mode="w").attrs["run"] = "older"
    zarr.open_group(str(partial), mode="w")
    moved = []

    def rename(source, target):
        if moved:  # the older store went aside; nothing moves after that
            raise PermissionError("in use")
        moved.append(target)
        os.replace(source, target)

    monkeypatch.setattr(_zarr_store, "replace", rename)
    with pytest.raises(OSError, match="nor put the older store back") as raised:
        _zarr_store.publish(partial, final)
    assert str(moved[0]) in str(raised.value)  # where the user finds it
    assert zarr.open_group(str(moved[0]), mode="r").attrs["run"] == "older"

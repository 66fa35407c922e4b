"""Stop flags reach inside post-processing: ``with stopping(flag)`` and its checks."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from helpers import SEPARATED, touching_pair
from napari_unet.core import boundaries, postprocess
from napari_unet.core.cancellation import Cancelled, check_stopped, stopping
from napari_unet.core.inference import Cancelled as CancelledOfInference
from napari_unet.core.postprocess import prediction_mask

STEPS = {"close_boundaries": True, "background_threshold": 0.8, "fill_holes": True}


class CountingFlag:
    """A stop flag that is set from its ``at``-th check on; counts the checks."""

    def __init__(self, at: int) -> None:
        self.at, self.checks = at, 0

    def __call__(self) -> bool:
        self.checks += 1
        return self.checks >= self.at


def test_the_class_users_catch_is_the_same_one():
    assert Cancelled is CancelledOfInference


def test_outside_a_stopping_block_nothing_is_checked():
    check_stopped()  # no enclosing flag: nothing happens
    flag = threading.Event()
    flag.set()
    with stopping(flag), pytest.raises(Cancelled, match="post-processing cancelled"):
        check_stopped()
    check_stopped()  # the block's flag is gone with it
    np.testing.assert_array_equal(prediction_mask(touching_pair(0.3), **STEPS), SEPARATED)


def test_a_set_flag_ends_the_mask_between_its_steps(monkeypatch):
    never = CountingFlag(at=10**6)
    with stopping(never):
        whole = prediction_mask(touching_pair(0.3), **STEPS)
    np.testing.assert_array_equal(whole, SEPARATED)
    checks = never.checks
    assert checks >= 5  # the closing's watershed, the lines, growing, filling
    calls = []
    monkeypatch.setattr(postprocess, "fill_enclosed", lambda mask: calls.append(mask) or mask)
    before_filling = CountingFlag(at=10**6)
    with stopping(before_filling):
        prediction_mask(touching_pair(0.3), **STEPS)
    assert before_filling.checks < checks  # filling checks inside too
    calls.clear()
    for at in range(1, before_filling.checks + 1):
        with stopping(CountingFlag(at)), pytest.raises(Cancelled):
            prediction_mask(touching_pair(0.3), **STEPS)
    assert calls == []  # every stop came before the last step ran


def test_a_flag_set_for_one_thread_is_not_seen_by_another():
    flag = threading.Event()
    flag.set()
    seen: list[str] = []

    def other_thread() -> None:
        check_stopped()  # its own context: no flag
        seen.append("ran")

    with stopping(flag):
        thread = threading.Thread(target=other_thread)
        thread.start()
        thread.join()
    assert seen == ["ran"]


def test_growing_and_filling_check_the_flag_inside():
    mask = np.ones((40, 40), np.uint8)
    mask[5:15, 5:15], mask[20:30, 20:30] = 2, 3
    mask[9, 9] = 1  # a hole to fill
    probability = np.full(mask.shape, 0.6, np.float32)
    never = CountingFlag(at=10**6)
    with stopping(never):
        grown = boundaries.grow_objects(mask, probability, 0.8)
        filled = boundaries.fill_enclosed(mask)
    # growing: after the objects, after the watershed; filling: per class
    assert never.checks >= 2 + 2
    assert filled[9, 9] == 2 and grown[4, 5] == 2  # they ran to the end
    for at in (1, 2):
        with stopping(CountingFlag(at)), pytest.raises(Cancelled):
            boundaries.grow_objects(mask, probability, 0.8)
    with stopping(CountingFlag(2)), pytest.raises(Cancelled):
        boundaries.fill_enclosed(mask)


def test_filling_many_objects_of_one_class_checks_between_them(monkeypatch):
    mask = np.ones((96, 96), np.uint8)
    mask[1::3, 1::3] = 2  # 1024 one-pixel objects of one class
    counting = CountingFlag(at=10**6)
    with stopping(counting):
        np.testing.assert_array_equal(boundaries.fill_enclosed(mask), mask)
    assert counting.checks == 1 + 1024 // 256  # the class, then every 256 objects
    filled = []
    fill_holes = boundaries.ndimage.binary_fill_holes
    monkeypatch.setattr(
        boundaries.ndimage, "binary_fill_holes", lambda own: filled.append(1) or fill_holes(own)
    )
    with stopping(CountingFlag(3)), pytest.raises(Cancelled):
        boundaries.fill_enclosed(mask)
    assert len(filled) == 511  # stopped before the 512th object

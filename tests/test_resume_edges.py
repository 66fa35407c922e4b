"""Edges of resuming an interrupted out-of-core prediction: --overwrite, a damaged partial
store, a lock taken over by another run (napari_unet.io._resume)."""

import json
import shutil

import numpy as np
import pytest
import zarr

from helpers import discs_image
from napari_unet.io import _resume
from napari_unet.io.locks import lock_path
from napari_unet.io.outofcore import Notice
from test_resume import interrupt_at, lively_model, record_of, run


@pytest.fixture(scope="module")
def model():
    return lively_model()


@pytest.fixture(scope="module")
def stack():
    return np.stack([discs_image(seed=seed) for seed in range(3)])


def test_resume_false_discards_an_earlier_runs_kept_tiles(model, stack, tmp_path):
    """--overwrite: kept tiles may be of an input changed with the same size and time."""
    store = tmp_path / "out.zarr"
    with pytest.raises(KeyboardInterrupt):
        run(model, stack, store, interrupt_at(9))
    assert _resume.partial_path(store).exists()
    seen: list = []
    run(model, stack, store, seen.append, resume=False)
    assert not any(isinstance(step, Notice) for step in seen)  # nothing resumed
    assert not _resume.partial_path(store).exists() and store.exists()


def test_a_partial_store_that_cannot_be_read_is_removed(model, stack, tmp_path):
    """Interrupted while post-processing, its mask is rebuilt from the probabilities on
    resume; a damaged chunk there failed every later run and the store stayed."""
    store = tmp_path / "out.zarr"
    with pytest.raises(KeyboardInterrupt):
        run(model, stack, store, interrupt_at(1, stage="mask"))
    partial = _resume.partial_path(store)
    assert record_of(store)["post_processing"]
    chunks = sorted(
        path for path in (partial / "prob").rglob("*") if path.is_file()
        and not path.name.startswith((".z", "zarr"))
    )  # fmt: skip
    chunks[0].write_bytes(b"not a chunk")
    with pytest.raises(Exception):  # noqa: B017 - the codec's own error
        run(model, stack, store)
    assert not partial.exists()  # the next run starts afresh
    run(model, stack, store)
    assert zarr.open(str(store), mode="r")["mask"].shape[-2:] == stack.shape[-2:]


@pytest.mark.parametrize("done", [0, 9])
def test_a_run_whose_lock_was_taken_over_leaves_the_store_alone(model, stack, tmp_path, done):
    """Another run took the lock over (this one was thought dead) and began its own store:
    this run's Ctrl-C neither removes nor records into it."""
    store = tmp_path / "out.zarr"
    partial, lock = _resume.partial_path(store), lock_path(tmp_path, "out.zarr.partial")

    def taken_over():
        owner = {"pid": 1, "host": "other", "token": "B", "time": 0, "started": None}
        lock.write_text(json.dumps(owner))
        shutil.rmtree(partial)
        partial.mkdir()
        (partial / "theirs").write_text("the other run's tiles")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(model, stack, store, interrupt_at(done, action=taken_over))
    assert sorted(path.name for path in partial.iterdir()) == ["theirs"]
    assert json.loads(lock.read_text())["token"] == "B"  # still theirs

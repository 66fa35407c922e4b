"""Re-runs skip only outputs made the same way, and clean what killed runs left."""

import hashlib
import os
import uuid

import numpy as np
import pytest
import tifffile

from helpers import CLI_TILE, cli_predict, tiny_model
from napari_unet import PredictConfig, __version__, save_model
from napari_unet.io.reruns import stored_provenance


@pytest.fixture
def setup(tmp_path, tiny_checkpoint):
    image = tmp_path / "img.tif"
    tifffile.imwrite(image, np.random.default_rng(0).integers(0, 4000, (50, 60), dtype=np.uint16))
    return tiny_checkpoint, image, tmp_path / "out"


def _inodes(folder):
    return {path.name: path.stat().st_ino for path in folder.iterdir()}


def _records(out):
    return [stored_provenance(out / f"img_{kind}.tif") for kind in ("prob", "mask", "instances")]


def test_outputs_record_model_options_input_and_version(setup):
    checkpoint, image, out = setup
    assert cli_predict(image, checkpoint, out) == 0
    record, *others = _records(out)
    assert others == [record, record]  # the run's three outputs record the same
    assert record["model_sha256"] == hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    assert record["package_version"] == __version__
    status = image.stat()
    assert record["input"] == {
        "name": "img.tif",
        "shape": [50, 60],
        "size": status.st_size,
        "mtime_ns": status.st_mtime_ns,
    }
    defaults = PredictConfig()  # what the command line leaves at the core's defaults
    assert record["options"] == {
        "tile_size": CLI_TILE,
        "test_time_augmentation": False,
        "instances": defaults.instances,
        "min_instance_size": defaults.min_instance_size,
        "fill_holes": defaults.fill_holes,
        "close_boundaries": defaults.close_boundaries,
        "background_threshold": None,
        "axes": "YX",
    }
    assert cli_predict(image, checkpoint, out, "--output-format", "zarr") == 0
    store = stored_provenance(out / "img_prediction.zarr")
    assert store["options"] == record["options"]
    assert (store["model_sha256"], store["input"]) == (record["model_sha256"], record["input"])


def test_rerun_with_the_same_model_and_options_skips(setup, capsys):
    checkpoint, image, out = setup
    assert cli_predict(image, checkpoint, out) == 0
    before = _inodes(out)
    assert cli_predict(image, checkpoint, out) == 0
    assert "skipped" in capsys.readouterr().out and _inodes(out) == before


def _other_model(setup):
    checkpoint, _, _ = setup
    other = tiny_model(seed=1)
    return save_model(other, checkpoint.with_name("other.safetensors")), []


def _changed_input(setup):
    checkpoint, image, _ = setup
    tifffile.imwrite(image, np.zeros((50, 60), np.uint16))
    return checkpoint, []


def _options(*options):
    return lambda setup: (setup[0], list(options))


@pytest.mark.parametrize(
    "change, message",
    [
        (_other_model, "was made with another model"),
        (_options("--tile-size", "60"), "tile_size 56, now 60"),
        (_options("--tta"), "test_time_augmentation False, now True"),
        (_options("--instances", "watershed"), "instances 'components', now 'watershed'"),
        (_options("--min-size", "40"), "min_instance_size 15, now 40"),
        (_changed_input, "was made from another version of the input"),
    ],
)
def test_rerun_made_differently_says_why_and_needs_overwrite(setup, capsys, change, message):
    checkpoint, image, out = setup
    assert cli_predict(image, checkpoint, out) == 0
    before = _inodes(out)
    capsys.readouterr()
    model, options = change(setup)
    assert cli_predict(image, model, out, *options) == 2
    error = capsys.readouterr().err
    assert message in error and "--overwrite" in error
    assert _inodes(out) == before
    assert cli_predict(image, model, out, *options, "--overwrite") == 0
    assert _inodes(out) != before


def test_a_tile_size_left_to_napari_unet_and_chosen_anew_does_not_redo(setup, capsys, monkeypatch):
    """ "auto" sizes tiles by the free memory, which differs from run to run: a re-run that
    asks for "auto" again skips, whatever number it comes to; a number asked for counts."""
    from napari_unet.core import inference
    from napari_unet.core.tile_choice import usable_tile_sizes

    checkpoint, image, out = setup
    first, second = [size for size in usable_tile_sizes(tiny_model()) if size >= CLI_TILE][:2]
    chosen = {"size": first}
    resolve = inference.resolved_tile_size
    monkeypatch.setattr(  # where the command resolves "auto", once for the batch
        inference,
        "resolved_tile_size",
        lambda model, size: chosen["size"] if size == "auto" else resolve(model, size),
    )
    assert cli_predict(image, checkpoint, out, "--tile-size", "auto") == 0
    record = _records(out)[0]
    assert (record["options"]["tile_size"], record["tile_size_requested"]) == (first, "auto")
    before = _inodes(out)
    chosen["size"] = second  # less memory free this time
    assert cli_predict(image, checkpoint, out, "--tile-size", "auto") == 0
    assert "skipped" in capsys.readouterr().out and _inodes(out) == before
    assert cli_predict(image, checkpoint, out, "--tile-size", str(second)) == 2
    assert f"tile_size {first}, now {second}" in capsys.readouterr().err


def test_an_empty_output_file_is_not_taken_for_a_finished_one(setup, capsys):
    checkpoint, image, out = setup
    assert cli_predict(image, checkpoint, out) == 0
    record = stored_provenance(out / "img_mask.tif")
    (out / "img_instances.tif").write_bytes(b"")
    assert cli_predict(image, checkpoint, out) == 2
    said = capsys.readouterr().err
    assert "img_instances.tif holds no record of how it was made" in said
    assert "a ground truth say, move it away or choose another --output" in said
    assert cli_predict(image, checkpoint, out, "--overwrite") == 0
    assert _records(out) == [record] * 3  # the same model, options and input as before


def test_temporaries_of_killed_runs_are_removed(setup):
    checkpoint, image, out = setup
    out.mkdir()
    stale = [
        out / f".img_prob.tif.{uuid.uuid4().hex}.tmp",
        out / f".img_prediction.zarr.{uuid.uuid4().hex}.partial",
    ]
    stale[0].write_bytes(b"half a tiff")
    (stale[1] / "prob").mkdir(parents=True)
    unrelated = out / f".notes.txt.{uuid.uuid4().hex}.tmp"
    unrelated.write_bytes(b"someone else's")
    assert cli_predict(image, checkpoint, out) == 0
    assert not any(path.exists() for path in stale)
    assert unrelated.exists()


def test_outputs_recording_no_min_size_are_not_taken_for_this_runs(setup, capsys):
    """Outputs of a version before --min-size may hold every speck: not silently reused."""
    from napari_unet.io import reruns

    checkpoint, image, out = setup
    assert cli_predict(image, checkpoint, out) == 0
    record = stored_provenance(out / "img_mask.tif")
    assert record["options"]["min_instance_size"] == 15
    older = {**record, "options": dict(record["options"])}
    del older["options"]["min_instance_size"]
    assert "min_instance_size not recorded, now 15" in reruns._difference(older, record)
    assert reruns._difference(record, record) is None


def _zarr_image(path, value):
    import zarr

    array = zarr.create_array(path, shape=(50, 60), chunks=(25, 30), dtype="uint16", overwrite=True)
    array[:] = np.random.default_rng(value).integers(0, 4000, (50, 60), dtype=np.uint16)
    return path


def _rewritten_in_place(store):
    import zarr

    zarr.open_array(store, mode="r+")[:] = 7  # new chunk files, the metadata untouched
    return store


def _recreated(store):
    return _zarr_image(store, 1)  # the same shape, chunks and dtype: metadata rewritten


def _another_folder(store):
    return _zarr_image(store.parent / "elsewhere" / store.name, 0)  # the same name and pixels


@pytest.mark.parametrize("change", [_rewritten_in_place, _recreated, _another_folder])
def test_a_changed_zarr_input_of_the_same_shape_is_not_skipped(setup, capsys, change):
    checkpoint, _, out = setup
    store = _zarr_image(out.parent / "in.zarr", 0)
    assert cli_predict(store, checkpoint, out) == 0
    assert cli_predict(store, checkpoint, out) == 0
    assert "skipped" in capsys.readouterr().out  # unchanged: nothing to redo
    before = _inodes(out)
    changed = change(store)
    assert cli_predict(changed, checkpoint, out) == 2
    error = capsys.readouterr().err
    assert "was made from another version of the input" in error and "--overwrite" in error
    assert _inodes(out) == before
    assert cli_predict(changed, checkpoint, out, "--overwrite") == 0


@pytest.mark.parametrize("zarr_format", [2, 3])
@pytest.mark.parametrize("in_group", [False, True], ids=["array", "group"])
def test_a_zarr_fingerprint_sees_chunks_rewritten_in_place(tmp_path, zarr_format, in_group):
    """zarr v2 keeps chunks beside ``.zarray`` (``0.0``), v3 in folders (``c/0/0``);
    an OME-Zarr image is array ``0`` of a group."""
    import zarr

    from napari_unet.io.reruns import store_fingerprint

    store = tmp_path / "in.zarr"
    if in_group:
        group = zarr.open_group(store, mode="w", zarr_format=zarr_format)
        array = group.create_array("0", shape=(50, 60), chunks=(25, 30), dtype="uint8")
    else:
        array = zarr.create_array(
            store, shape=(50, 60), chunks=(25, 30), dtype="uint8", zarr_format=zarr_format
        )
    array[:] = 1
    for path in [store, *store.rglob("*")]:  # written an hour ago (file times can be coarse)
        os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns - 3600 * 10**9))
    before = store_fingerprint(store)
    assert store_fingerprint(store) == before
    zarr.open_array(store / "0" if in_group else store, mode="r+")[20:30, 0:10] = 2
    assert store_fingerprint(store) != before


def test_records_of_older_versions_without_last_mask_or_store_are_not_reused(setup):
    """Outputs made before the last mask and a zarr input's fingerprint were recorded may
    have used another last mask or store: not silently reused (--overwrite redoes them)."""
    from napari_unet.io import reruns

    checkpoint, image, out = setup
    assert cli_predict(image, checkpoint, out) == 0
    record = stored_provenance(out / "img_mask.tif")
    assert record["last_mask"] is None and reruns._difference(record, record) is None
    older = {key: value for key, value in record.items() if key != "last_mask"}
    assert "before napari-unet recorded the last mask" in reruns._difference(older, record)
    store = {**record, "input": {**record["input"], "store": {"path": "/x.zarr"}}}
    assert "store, not recorded by an older napari-unet" in reruns._difference(record, store)

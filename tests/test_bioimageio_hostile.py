"""Hostile and broken bioimage.io packages are refused before anything large is built or read.

The same attacks as on checkpoints (tests/test_checkpoint_hostile.py), through a ``.zip``:
an architecture that would exhaust memory, weights that do not fit it or are not finite,
entries that inflate to gigabytes (declared, or hidden behind a small declared size),
weights outside the package, a file that is not a regular file.
"""

import io
import os
import zipfile

import pytest
import torch

import napari_unet as nu
from helpers import (
    HOSTILE_CONFIG,
    declare_size,
    inflating_rdf,
    package,
    refuse_building,
    tiny_state,
    with_weights_source,
)
from napari_unet.core.checkpoint import (
    MAX_METADATA_CHARS,
    MAX_TORCH_BYTES,
    CheckpointError,
    new_model,
)
from napari_unet.io import bioimageio as bioimageio_module
from napari_unet.io.bioimageio import MAX_PACKAGE_BYTES, load_bioimageio


def with_model_config(**changes):
    def edit(rdf):
        rdf["config"]["napari_unet"]["model_config"].update(changes)

    return edit


def with_architecture(**changes):
    def edit(rdf):
        rdf["config"].clear()
        rdf["weights"]["pytorch_state_dict"]["architecture"]["kwargs"].update(changes)

    return edit


@pytest.fixture
def no_network_built(monkeypatch):
    """Fail the test if a UNet is built (the package must be refused before that)."""
    refuse_building(monkeypatch, bioimageio_module, "package")


def test_the_tiny_package_loads(tmp_path):
    loaded = nu.load_model(package(tmp_path))
    assert loaded.config == HOSTILE_CONFIG
    for key, value in new_model(HOSTILE_CONFIG, seed=0).state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value)


@pytest.mark.parametrize(
    "edit, message",
    [
        (with_model_config(depth=50), "depth is 50; napari-unet accepts 0 to 8"),
        (with_model_config(base_features=10**9), "base_features is 1000000000"),
        (with_model_config(base_features=1024, depth=8), "parameters, above the limit"),
        (with_model_config(depth=2.5), "depth must be a whole number"),
        (with_architecture(base_features=10**9), "base_features is 1000000000"),
        (with_architecture(n_classes=10**9), "n_classes is 1000000000"),
        (with_model_config(base_features=4), "do not match the architecture"),
    ],
)
def test_insane_architectures_are_refused_before_building(
    tmp_path, no_network_built, edit, message
):
    with pytest.raises(CheckpointError, match=message):
        nu.load_model(package(tmp_path, rdf=edit))


def test_bad_normalization_is_refused(tmp_path):
    def edit(rdf):
        rdf["config"]["napari_unet"]["normalization"] = {"low": -5, "high": 120}

    with pytest.raises(CheckpointError, match="normalization percentiles must be numbers"):
        load_bioimageio(package(tmp_path, rdf=edit))


def test_config_that_is_not_a_mapping_is_refused(tmp_path):
    def edit(rdf):
        rdf["config"]["napari_unet"] = [1, 2]

    with pytest.raises(CheckpointError, match="config napari_unet must be a mapping"):
        load_bioimageio(package(tmp_path, rdf=edit))


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused(tmp_path, bad):
    state = tiny_state(**{"head.bias": torch.tensor([0.0, bad])})
    with pytest.raises(CheckpointError, match=r"head\.bias holds NaN or infinite values"):
        nu.load_model(package(tmp_path, state=state))


def test_weights_of_wrong_shapes_are_refused_before_building(tmp_path, no_network_built):
    state = tiny_state(**{"head.bias": torch.zeros(7)})
    with pytest.raises(CheckpointError, match=r"wrong shape \['head.bias'\]"):
        nu.load_model(package(tmp_path, state=state))


def test_state_dict_of_non_tensors_is_refused(tmp_path):
    with pytest.raises(CheckpointError, match="state_dict must map names to tensors"):
        nu.load_model(package(tmp_path, state={"head.bias": [1, 2]}))


def test_compressed_state_dict_archive_is_refused(tmp_path):
    buffer = io.BytesIO()
    torch.save(tiny_state(), buffer)
    deflated = io.BytesIO()
    with zipfile.ZipFile(buffer) as source:
        with zipfile.ZipFile(deflated, "w", zipfile.ZIP_DEFLATED) as target:
            for entry in source.infolist():
                target.writestr(entry.filename, source.read(entry))
    path = package(tmp_path, entries={"weights_state_dict.pt": deflated.getvalue()})
    with pytest.raises(CheckpointError, match="compressed entries"):
        nu.load_model(path)


@pytest.mark.parametrize(
    "entry, size, message",
    [
        (
            "rdf.yaml",
            MAX_METADATA_CHARS + 1,
            "entry 'rdf.yaml' unpacks to 67,108,865 bytes, above the limit of 67,108,864",
        ),
        ("weights_state_dict.pt", MAX_TORCH_BYTES + 1, "entry 'weights_state_dict.pt' unpacks"),
        ("test_output.npy", 2**32 - 1, "entry 'test_output.npy' unpacks to 4,294,967,295"),
    ],
)
def test_entries_declaring_too_much_are_refused_unread(
    tmp_path, monkeypatch, no_network_built, entry, size, message
):
    path = declare_size(package(tmp_path), entry, size)

    def refuse(*args, **kwargs):
        raise AssertionError("bioimageio.spec read a refused package")

    import bioimageio.spec

    monkeypatch.setattr(bioimageio.spec, "load_model_description", refuse)
    with pytest.raises(CheckpointError, match=message):
        nu.load_model(path)


def test_entries_declaring_too_much_together_are_refused(tmp_path):
    each = MAX_TORCH_BYTES
    bomb = {f"zeros{index}.bin": b"" for index in range(MAX_PACKAGE_BYTES // each + 1)}
    path = package(tmp_path, entries=bomb)
    for name in bomb:
        declare_size(path, name, each)
    with pytest.raises(CheckpointError, match=r"refused: unpacks to [\d,]+ bytes, above the limit"):
        nu.load_model(path)


def test_rdf_inflating_beyond_its_declared_size_is_refused(tmp_path):
    path = inflating_rdf(tmp_path)
    assert path.stat().st_size < 2**21  # 16 MiB of spaces, deflated
    with pytest.raises(CheckpointError, match=r"entry 'rdf\.yaml' is corrupt or inflates to more"):
        nu.load_model(path)


def test_weights_inflating_beyond_their_declared_size_are_refused(tmp_path):
    buffer = io.BytesIO()
    torch.save(tiny_state(), buffer)
    path = package(tmp_path, entries={"weights_state_dict.pt": buffer.getvalue() + bytes(2**24)})
    declare_size(path, "weights_state_dict.pt", len(buffer.getvalue()))
    with pytest.raises(
        CheckpointError, match=r"entry 'weights_state_dict\.pt' is corrupt or inflates to more"
    ):
        nu.load_model(path)


@pytest.mark.parametrize(
    "source", ["<tmp>/outside.pt", "../outside.pt", "missing.pt", "https://example.org/w.pt"]
)
def test_weights_outside_the_package_are_refused(tmp_path, source):
    torch.save(tiny_state(), tmp_path / "outside.pt")
    source = source.replace("<tmp>", str(tmp_path))
    path = package(tmp_path, rdf=with_weights_source(source))
    with pytest.raises(CheckpointError, match="are not a file inside the package"):
        load_bioimageio(path)


def test_a_package_that_is_not_a_regular_file_is_refused(tmp_path):
    fifo = tmp_path / "pipe.zip"
    os.mkfifo(fifo)
    keep_open = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)  # a blocking open would not hang
    try:
        for load in (load_bioimageio, nu.load_model):
            with pytest.raises(CheckpointError, match="not a regular file"):
                load(fifo)
    finally:
        os.close(keep_open)
    device = tmp_path / "device.zip"
    device.symlink_to("/dev/null")
    with pytest.raises(CheckpointError, match="not a regular file"):
        load_bioimageio(device)


def test_the_package_read_is_the_one_checked(tmp_path, monkeypatch):
    """A file put in place of the package after its checks is not what gets read."""

    def swap(rdf):
        rdf["config"]["napari_unet"]["description"] = "swapped in after the checks"

    swapped = package(tmp_path, name="swapped.zip", rdf=swap)
    path = package(tmp_path)
    check = bioimageio_module._open_package

    def check_then_swap(checked):
        archive = check(checked)
        os.replace(swapped, checked)
        return archive

    monkeypatch.setattr(bioimageio_module, "_open_package", check_then_swap)
    loaded = load_bioimageio(path)
    assert loaded.metadata["description"] == new_model(HOSTILE_CONFIG).metadata["description"]
    assert loaded.metadata["description"] != "swapped in after the checks"

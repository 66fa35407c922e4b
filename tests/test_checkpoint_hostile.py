"""Hostile and broken checkpoints are refused before anything large is allocated."""

import os
import re
import zipfile

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from helpers import HOSTILE_CONFIG, refuse_building, rewrite_metadata, tiny_model, torch_archive
from napari_unet import CheckpointError, load_model, save_model
from napari_unet.cli import main
from napari_unet.core import checkpoint as checkpoint_module
from napari_unet.core.checkpoint import checkpoint_info, new_model, read_checkpoint
from napari_unet.core.file_kinds import foreign_file_kind


@pytest.fixture
def saved(tmp_path):
    return save_model(new_model(HOSTILE_CONFIG, seed=0), tmp_path / "m.safetensors")


@pytest.fixture
def no_network_built(monkeypatch):
    """Fail the test if load_model builds a UNet (it must refuse before that)."""
    refuse_building(monkeypatch, checkpoint_module, "checkpoint")


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"depth": 50}, "depth is 50; napari-unet accepts 0 to 8"),
        ({"depth": 10**6}, "depth is 1000000"),
        ({"depth": 13, "base_features": 1}, "depth is 13"),
        ({"base_features": 10**9}, "base_features is 1000000000"),
        ({"n_classes": 10**9}, "n_classes is 1000000000"),
        ({"in_channels": 10**9}, "in_channels is 1000000000"),
        ({"base_features": 2**20, "depth": 0}, "base_features is 1048576"),
        ({"base_features": 1024, "depth": 8}, "parameters, above the limit"),
        ({"depth": 2.5}, "depth must be a whole number, got 2.5"),
        ({"base_features": 2.5}, "base_features must be a whole number"),
        ({"depth": True}, "depth must be a whole number"),
        ({"padding": 3}, "padding must be one of"),
        ({"batch_norm": "yes"}, "batch_norm must be true or false"),
    ],
)
def test_insane_architectures_are_refused_before_building(
    saved, no_network_built, changes, message
):
    _, metadata = read_checkpoint(saved)
    rewrite_metadata(saved, model_config={**metadata["model_config"], **changes})
    with pytest.raises(CheckpointError, match=message):
        load_model(saved)
    with pytest.raises(CheckpointError, match=message):
        checkpoint_info(saved)


def test_shapes_in_the_header_are_compared_before_tensors_are_read(saved, monkeypatch):
    _, metadata = read_checkpoint(saved)
    rewrite_metadata(saved, model_config={**metadata["model_config"], "base_features": 8})
    from safetensors import safe_open

    opened = safe_open(str(saved), framework="pt").__enter__()
    calls = []
    original = type(opened).get_tensor

    def counting(self, key):
        calls.append(key)
        return original(self, key)

    monkeypatch.setattr(type(opened), "get_tensor", counting)
    with pytest.raises(CheckpointError, match="do not match the architecture"):
        load_model(saved)
    assert calls == []


@pytest.mark.parametrize(
    "version, shown", [(float("inf"), "inf"), (None, "None"), ([1], r"\[1\]"), ("abc", "'abc'")]
)
def test_bad_format_version_is_one_clean_error(saved, version, shown, capsys):
    rewrite_metadata(saved, format_version=version)
    with pytest.raises(
        CheckpointError, match=f"format_version must be a whole number, got {shown}"
    ):
        load_model(saved)
    assert main(["info", str(saved)]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_deeply_nested_metadata_is_refused(saved):
    tensors, _ = read_checkpoint(saved)
    save_file(tensors, saved, metadata={"napari_unet": "[" * 200_000 + "]" * 200_000})
    with pytest.raises(CheckpointError, match="malformed: nested too deeply"):
        load_model(saved)


@pytest.mark.parametrize("norm", [{"low": -5, "high": 99}, {"low": 50, "high": 10}, [1, 2]])
def test_bad_normalization_is_refused_on_load(saved, norm):
    rewrite_metadata(saved, normalization=norm)
    with pytest.raises(CheckpointError, match="normalization"):
        load_model(saved)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused(tmp_path, bad, capsys):
    model = new_model(HOSTILE_CONFIG, seed=0)
    with torch.no_grad():
        model.head.weight[0, 0, 0, 0] = bad
    path = save_model(model, tmp_path / "broken.safetensors")
    with pytest.raises(CheckpointError, match=r"head\.weight holds NaN or infinite values"):
        load_model(path)
    image = tmp_path / "image.tif"
    import tifffile

    tifffile.imwrite(image, np.zeros((20, 20), np.uint8))
    status = main(["predict", str(image), "--model", str(path), "--output", str(tmp_path / "o")])
    assert status == 2
    assert "NaN or infinite" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_a_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "m.safetensors"
    os.mkfifo(fifo)
    keep_open = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)  # a blocking open would not hang
    try:
        for read in (load_model, checkpoint_info):
            with pytest.raises(CheckpointError, match="not a regular file"):
                read(fifo)
    finally:
        os.close(keep_open)


def test_compressed_torch_archive_is_not_inflated(tmp_path):
    path = torch_archive(tmp_path, {"big": torch.zeros(2**22)}, zipfile.ZIP_DEFLATED)
    assert path.stat().st_size < 2**20  # 16 MiB of zeros, deflated
    with pytest.raises(CheckpointError, match="compressed entries"):
        load_model(path)


def test_torch_archive_size_is_bounded(tmp_path, monkeypatch):
    path = torch_archive(tmp_path, {"big": torch.zeros(2**18)})
    monkeypatch.setattr(checkpoint_module, "MAX_TORCH_BYTES", 2**20)
    with pytest.raises(CheckpointError, match=r"unpacks to .* above the limit"):
        load_model(path)


def test_torch_state_dict_of_non_tensors_is_refused(tmp_path, capsys):
    path = torch_archive(tmp_path, {"head.weight": [1, 2, 3]})
    with pytest.raises(CheckpointError, match="state_dict must map names to tensors"):
        load_model(path)
    assert main(["info", str(path)]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_info_reads_no_weights_of_a_safetensors_file(saved, monkeypatch):
    from safetensors import safe_open

    opened = safe_open(str(saved), framework="pt").__enter__()

    def refuse(self, key):
        raise AssertionError(f"info read the weights of {key}")

    monkeypatch.setattr(type(opened), "get_tensor", refuse)
    info = checkpoint_info(saved)
    assert info["parameters"] == sum(p.numel() for p in new_model(HOSTILE_CONFIG).parameters())


@pytest.mark.parametrize(
    ("start", "kind"),
    [
        (b"\x89PNG\r\n\x1a\n", "a PNG image"),
        (b"II*\x00\x08\x00\x00\x00", "a TIFF image"),
        (b"\xff\xd8\xff\xe0", "a JPEG image"),
        (b"PK\x03\x04", "a zip archive"),
        (b"\x93NUMPY\x01\x00", "a NumPy array (.npy)"),
        ("# Notes\nslice 3 → nuclei\n".encode(), "a text file"),
    ],
)
def test_a_file_of_another_kind_is_named_when_opened_as_a_model(tmp_path, start, kind):
    path = tmp_path / "model.safetensors"
    path.write_bytes(start + bytes(64) if kind != "a text file" else start)
    with pytest.raises(CheckpointError, match=f"{re.escape(kind)}, not a model"):
        load_model(path)


def test_a_damaged_checkpoint_is_not_called_another_kind_of_file(tmp_path):
    path = save_model(tiny_model(), tmp_path / "m.safetensors")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert foreign_file_kind(path) is None
    with pytest.raises(CheckpointError, match="not a readable safetensors checkpoint"):
        load_model(path)

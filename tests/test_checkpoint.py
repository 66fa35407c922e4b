import json
import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import tiny_model
from napari_unet import CheckpointError, ModelConfig, load_model, predict, save_model
from napari_unet.core.checkpoint import checkpoint_info, new_model, read_checkpoint


@pytest.fixture
def small_model():
    return tiny_model(seed=1, n_classes=3)


def test_round_trip_rebuilds_model_from_file_alone(tmp_path, small_model):
    path = save_model(small_model, tmp_path / "m.safetensors", description="test model")
    loaded = load_model(path)
    assert loaded.config == small_model.config
    assert not loaded.training
    for key, value in small_model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value)
    assert loaded.metadata["description"] == "test model"
    assert loaded.metadata["class_names"] == ["background", "class 2", "class 3"]
    image = np.random.default_rng(0).random((40, 40))
    assert np.array_equal(predict(image, loaded), predict(image, small_model))


def _raw_header(path: Path) -> dict:
    """The ``napari_unet`` JSON of a safetensors file, read as the format says: an 8-byte
    little-endian length, a JSON header, its ``__metadata__`` strings."""
    data = path.read_bytes()
    length = int.from_bytes(data[:8], "little")
    return json.loads(json.loads(data[8 : 8 + length])["__metadata__"]["napari_unet"])


def test_metadata_has_documented_fields(tmp_path, small_model):
    from napari_unet import NormConfig, __version__
    from napari_unet.core.metadata import FORMAT_VERSION

    small_model.metadata["training_history"] = [{"iterations": 3}]
    path = save_model(small_model, tmp_path / "m.safetensors")
    info = checkpoint_info(path)
    header = _raw_header(path)
    assert FORMAT_VERSION == 1  # the format the module docstring documents
    expected = {
        "format_version": 1,
        "package_version": __version__,
        "model_config": small_model.config.to_dict(),
        "normalization": NormConfig().to_dict(),  # a new model's: the defaults
        "class_names": ["background", "class 2", "class 3"],  # background, then by label
        "description": "freshly initialised U-Net",
        "trained_on": None,
        "parent": None,
        "training_history": [{"iterations": 3}],
    }
    assert header == expected
    assert ModelConfig.from_dict(header["model_config"]) == small_model.config
    assert info == {**expected, "file": str(path), "parameters": info["parameters"]}
    assert info["parameters"] == sum(p.numel() for p in small_model.parameters())


def test_half_precision_is_smaller_and_close(tmp_path, small_model):
    full = save_model(small_model, tmp_path / "full.safetensors")
    half = save_model(small_model, tmp_path / "half.safetensors", half=True)
    assert half.stat().st_size < 0.6 * full.stat().st_size
    loaded = load_model(half)
    assert next(loaded.parameters()).dtype == torch.float32
    image = np.random.default_rng(0).random((40, 40))
    assert np.abs(predict(image, loaded) - predict(image, small_model)).max() < 1e-2


def test_save_is_atomic_and_leaves_no_temporary(tmp_path, small_model, monkeypatch):
    path = save_model(small_model, tmp_path / "m.safetensors")
    before = path.read_bytes()

    def broken_replace(*args):
        raise OSError("disk full")

    monkeypatch.setattr("os.replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        save_model(new_model(ModelConfig(base_features=2, depth=1)), path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]


def test_missing_file_names_it(tmp_path):
    with pytest.raises(CheckpointError, match=r"nope\.safetensors.*no such"):
        load_model(tmp_path / "nope.safetensors")


def test_truncated_file(tmp_path, small_model):
    path = save_model(small_model, tmp_path / "m.safetensors")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"m\.safetensors.*truncated"):
        load_model(path)


def test_not_a_checkpoint(tmp_path):
    text = tmp_path / "notes.safetensors"
    text.write_text("hello")
    with pytest.raises(CheckpointError, match=r"notes\.safetensors"):
        load_model(text)
    from safetensors.torch import save_file

    other = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(2)}, other)
    with pytest.raises(CheckpointError, match="not a napari-unet checkpoint"):
        load_model(other)


def test_weights_not_matching_config(tmp_path, small_model):
    path = save_model(small_model, tmp_path / "m.safetensors")
    tensors, metadata = read_checkpoint(path)
    metadata["model_config"]["base_features"] = 8
    from safetensors.torch import save_file

    save_file(tensors, path, metadata={"napari_unet": json.dumps(metadata)})
    with pytest.raises(CheckpointError, match="do not match the architecture"):
        load_model(path)


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


@pytest.mark.parametrize("suffix", [".pt", ".pth", ".safetensors", ".ckpt"])
def test_pickle_exploit_is_refused_and_runs_nothing(tmp_path, suffix):
    marker = tmp_path / "pwned"
    path = tmp_path / f"evil{suffix}"
    with open(path, "wb") as file:
        pickle.dump({"state_dict": _Exploit(marker), "napari_unet": "{}"}, file)
    torch.save({"state_dict": {"x": _Exploit(marker)}, "napari_unet": "{}"}, tmp_path / "evil2.pt")
    for candidate in (path, tmp_path / "evil2.pt"):
        with warnings.catch_warnings(record=True) as caught, pytest.raises(CheckpointError):
            warnings.simplefilter("always")
            load_model(candidate)
        assert [str(w.message) for w in caught] == []  # the refusal says it all, in one line
    assert not marker.exists()


def test_torch_file_with_plain_tensors_is_accepted(tmp_path, small_model):
    path = save_model(small_model, tmp_path / "m.safetensors")
    tensors, metadata = read_checkpoint(path)
    torch.save({"state_dict": tensors, "napari_unet": json.dumps(metadata)}, tmp_path / "m.pt")
    assert load_model(tmp_path / "m.pt").config == small_model.config


def test_paths_in_metadata_are_never_opened(tmp_path, small_model, monkeypatch):
    bait = tmp_path / "bait"
    small_model.metadata.update(
        parent=str(bait / "parent.safetensors"),
        source=str(bait),
        trained_on=str(bait / "data.tif"),
        file=str(bait / "x"),
    )
    path = save_model(small_model, tmp_path / "m.safetensors")
    opened = []
    real_open = open

    def watching_open(file, *args, **kwargs):
        opened.append(str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr("builtins.open", watching_open)
    model = load_model(path)
    save_model(model, tmp_path / "again.safetensors")
    assert not any("bait" in name for name in opened)
    assert not bait.exists()
    assert model.metadata["source"] == str(path)  # where it was really loaded from


def test_new_model_with_a_seed_leaves_the_global_random_state_alone():
    config = ModelConfig(base_features=4, depth=2)
    torch.manual_seed(123)
    expected = torch.rand(5)
    torch.manual_seed(123)
    first = new_model(config, seed=7)
    assert torch.equal(torch.rand(5), expected)  # the caller's stream goes on unchanged
    second = new_model(config, seed=7)
    torch.manual_seed(7)  # what new_model did before: the same weights as then
    reference = new_model(config, seed=None)
    for a, b, c in zip(
        first.state_dict().values(), second.state_dict().values(), reference.state_dict().values()
    ):
        assert torch.equal(a, b) and torch.equal(a, c)
    other = new_model(config, seed=8)
    assert not torch.equal(next(other.parameters()), next(first.parameters()))


def test_save_model_refuses_a_name_load_model_would_read_as_another_format(tmp_path):
    from helpers import tiny_model

    for name in ("m.pt", "m.pth", "m.zip", "m.tif"):
        with pytest.raises(ValueError, match=r"written as \.safetensors files"):
            save_model(tiny_model(), tmp_path / name)
        assert not (tmp_path / name).exists()
    assert load_model(save_model(tiny_model(), tmp_path / "m")).config == tiny_model().config


def test_a_file_is_recorded_by_its_absolute_path_a_bundled_model_by_name(
    tmp_path, small_model, monkeypatch
):
    save_model(small_model, tmp_path / "m.safetensors")
    monkeypatch.chdir(tmp_path)
    model = load_model("m.safetensors")  # as typed on a command line
    assert model.metadata["source"] == str(tmp_path / "m.safetensors")
    assert load_model("nuclei").metadata["source"] == "nuclei"

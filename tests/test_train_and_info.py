"""``train``'s inputs and descriptions, and ``info`` on a bioimage.io package."""

import json
import os

import numpy as np
import pytest
import tifffile

from helpers import NEW_NETWORK, tiny_model, train_files
from napari_unet import ModelConfig, load_model, save_model
from napari_unet.cli import main
from napari_unet.core import checkpoint as checkpoint_module
from napari_unet.core.checkpoint import checkpoint_info

# bioimageio.core reads the TorchScript weights with torch.jit.load (deprecated in torch 2.13)
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")

SMALL = ModelConfig(base_features=4, depth=2, padding="same")
HINT = "bioimage.io export/import needs bioimageio.core: pip install 'bioimageio.core>=0.11'"


NEW = [*NEW_NETWORK, "--iterations", "1"]


def test_train_refuses_a_three_slice_stack_it_would_take_for_rgb(tmp_path, capsys):
    stack = np.random.default_rng(0).integers(0, 4000, (3, 48, 48), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "im.tif", stack, imagej=True, metadata={"axes": "ZYX"})
    out = tmp_path / "m.safetensors"
    assert main(["train", *train_files(tmp_path, stack), *NEW, "--output", str(out)]) == 2
    error = capsys.readouterr().err
    assert "declares a stack axis (axes ZYX, shape (3, 48, 48))" in error
    assert "train takes 2-D images" in error and not out.exists()


def test_train_still_takes_rgb_and_unlabelled_axes(tmp_path):
    """No axes declared (an RGB TIFF, a plain one): train takes the planes and records them."""
    rgb = np.random.default_rng(0).integers(0, 255, (48, 48, 3), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "rgb.tif", rgb, photometric="rgb")
    tifffile.imwrite(tmp_path / "plain.tif", rgb[..., 0])
    train_files(tmp_path, rgb)  # the strokes
    labels = str(tmp_path / "lab.tif")
    runs = {  # image, extra options, the (C, Y, X) the run must record
        "rgb3": ("rgb.tif", ["--channels", "3"], (3, 48, 48)),
        "luminance": ("rgb.tif", [], (1, 48, 48)),  # RGB to a 1-channel model: its luminance
        "plain": ("plain.tif", [], (1, 48, 48)),
    }
    for name, (image, options, shape) in runs.items():
        out = tmp_path / f"{name}.safetensors"
        files = ["--images", str(tmp_path / image), "--labels", labels]
        assert main(["train", *files, *NEW, *options, "--output", str(out)]) == 0
        model = load_model(out)
        (run,) = model.info.training_history
        assert run.images == (shape,) and run.iterations == 1
        assert model.config.in_channels == shape[0]
        assert model.metadata["trained_on"] == str(tmp_path / image)


def test_train_refuses_a_file_with_two_stacking_axes(tmp_path, capsys):
    movie = np.zeros((2, 3, 48, 48), np.uint16)
    tifffile.imwrite(tmp_path / "im.tif", movie, imagej=True, metadata={"axes": "TZYX"})
    out = tmp_path / "m.safetensors"
    assert main(["train", *train_files(tmp_path, movie), *NEW, "--output", str(out)]) == 2
    assert "declares several stacking axes" in capsys.readouterr().err


def test_train_describes_what_a_new_and_a_fine_tuned_model_learned(tmp_path, capsys):
    new, tuned, named = (tmp_path / f"{n}.safetensors" for n in ("new", "tuned", "named"))
    files = train_files(tmp_path)
    assert main(["train", *files, *NEW, "--output", str(new), "--trained-on", "cells A"]) == 0
    capsys.readouterr()
    assert main(["info", str(new)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["description"] == "U-Net trained from scratch on cells A"
    again = ["--model", str(new), "--iterations", "1", "--trained-on", "cells B"]
    assert main(["train", *files, *again, "--output", str(tuned)]) == 0
    expected = "U-Net trained from scratch on cells A; fine-tuned on cells B"
    assert load_model(tuned).metadata["description"] == expected
    given = ["--model", str(new), "--iterations", "1", "--description", "my model"]
    assert main(["train", *files, *given, "--output", str(named)]) == 0
    assert load_model(named).metadata["description"] == "my model"


def test_failed_save_keeps_trained_on_and_description_in_the_copy(tmp_path, capsys, full_disk):
    out = full_disk
    arguments = ["train", *train_files(tmp_path), *NEW, "--trained-on", "cells A"]
    assert main([*arguments, "--output", str(out)]) == 2
    kept = capsys.readouterr().err.split("the trained weights were saved to ")[1].strip()
    metadata = load_model(kept).metadata
    os.remove(kept)
    os.rmdir(os.path.dirname(kept))
    assert metadata["trained_on"] == "cells A"
    assert metadata["description"] == "U-Net trained from scratch on cells A"


def test_info_reads_a_bioimageio_package(tmp_path, capsys, no_network):
    from napari_unet.io.bioimageio import export_bioimageio

    model = tiny_model()
    reference = checkpoint_info(save_model(model, tmp_path / "m.safetensors"))
    package = export_bioimageio(model, tmp_path / "m.zip", authors=["Test Author"])
    assert main(["info", str(package)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info.pop("file") == str(package)
    assert info.pop("learnt_from") == "nothing yet (random weights)"  # words, not metadata
    for key in ("format_version", "package_version", "file"):  # a package keeps no versions
        reference.pop(key)
    assert info == reference  # model_config, parameters and the metadata


def test_info_of_a_package_without_bioimageio_core_says_what_to_install(
    tmp_path, capsys, monkeypatch
):
    def load_without_bioimageio(path, device):
        raise ImportError(HINT)

    package = tmp_path / "model.zip"
    package.write_bytes(b"PK")
    formats = [(lambda path: str(path).endswith(".zip"), load_without_bioimageio)]
    monkeypatch.setattr(checkpoint_module, "_MODEL_FORMATS", formats)
    assert main(["info", str(package)]) == 2
    error = capsys.readouterr().err
    assert HINT in error and "Traceback" not in error

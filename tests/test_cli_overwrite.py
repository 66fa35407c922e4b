"""``train`` and ``export`` replace an existing output only when told to (``--overwrite``)."""

import pytest

from helpers import square_train_args, tiny_model, train_files
from napari_unet import load_model
from napari_unet.cli import main
from napari_unet.core.checkpoint import save_model


def test_train_refuses_an_existing_checkpoint_before_training(tmp_path, capsys):
    out = tmp_path / "model.safetensors"
    out.write_bytes(b"a checkpoint the user wants to keep")
    budget = ["--iterations", "2", "--seconds", "0"]
    assert main([*square_train_args(tmp_path), "--output", str(out), *budget]) == 2
    error = capsys.readouterr().err
    assert f"{out} exists; pass --overwrite to replace it" in error
    assert "iteration" not in error  # refused before any training
    assert out.read_bytes() == b"a checkpoint the user wants to keep"


def test_train_with_overwrite_replaces_the_checkpoint(tmp_path):
    out = tmp_path / "model.safetensors"
    old = save_model(tiny_model(), out)
    budget = ["--iterations", "2", "--seconds", "0", "--overwrite"]
    assert main([*square_train_args(tmp_path), "--output", str(out), *budget]) == 0
    trained = load_model(old)
    assert trained.config.padding == "same"  # the new network, not the one there before
    assert trained.metadata["training_history"][-1]["iterations"] == 2


def test_export_refuses_an_existing_zip(tmp_path, capsys):
    out = tmp_path / "package.zip"
    out.write_bytes(b"an earlier package")
    assert main(["export", "nuclei", str(out)]) == 2
    assert f"{out} exists; pass --overwrite to replace it" in capsys.readouterr().err
    assert out.read_bytes() == b"an earlier package"


def test_export_with_overwrite_replaces_the_zip(tmp_path, capsys):
    from napari_unet.io.bioimageio import is_bioimageio_package

    checkpoint = save_model(tiny_model(), tmp_path / "tiny.safetensors")
    out = tmp_path / "package.zip"
    out.write_bytes(b"an earlier package")
    assert main(["export", str(checkpoint), str(out), "--overwrite"]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    assert is_bioimageio_package(out)


@pytest.mark.parametrize("command", ["train", "export"])
def test_overwrite_is_documented_in_the_help(command, capsys):
    with pytest.raises(SystemExit) as exited:
        main([command, "--help"])
    assert exited.value.code == 0
    assert "--overwrite" in capsys.readouterr().out


def test_export_to_a_folder_is_refused_first_even_with_overwrite(tmp_path, capsys):
    folder = tmp_path / "out.zip"
    folder.mkdir()
    assert main(["export", "nuclei", str(folder), "--overwrite"]) == 2
    assert f"{folder} is a folder; give the zip's file name" in capsys.readouterr().err
    assert folder.is_dir() and not any(folder.iterdir())


def test_training_a_checkpoint_into_itself_names_the_old_file_as_parent(tmp_path):
    from napari_unet.io.reruns import model_checksum

    path = save_model(tiny_model(), tmp_path / "a.safetensors")
    before = model_checksum(path)
    budget = ["--iterations", "1", "--seconds", "0", "--overwrite"]
    args = ["train", *train_files(tmp_path), "--model", str(path), "--output", str(path), *budget]
    assert main(args) == 0
    parent = load_model(path).metadata["parent"]
    assert parent == f"{path} as it was before this run (SHA-256 {before[:12]}...)"
    assert model_checksum(path) != before

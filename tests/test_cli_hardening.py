"""The command line never loses work or damages files it was not asked to write."""

import os
import signal
import uuid
from collections import namedtuple

import numpy as np
import pytest
import tifffile

from helpers import train_args
from napari_unet import load_model
from napari_unet.cli import main
from napari_unet.io.outofcore import open_outputs


@pytest.fixture
def image(tmp_path):
    path = tmp_path / "img.tif"
    tifffile.imwrite(path, np.random.default_rng(0).integers(0, 4000, (40, 40), dtype=np.uint16))
    return path


def test_write_probe_never_follows_a_symlink(tmp_path, tiny_checkpoint, image):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    out = tmp_path / "out"
    out.mkdir()
    (out / ".napari-unet-write-test").symlink_to(victim)
    assert main(["predict", str(image), "--model", str(tiny_checkpoint), "--output", str(out)]) == 0
    assert victim.read_text(encoding="utf-8") == "precious"
    assert (out / ".napari-unet-write-test").is_symlink()


def test_sigterm_during_train_writes_the_best_weights(tmp_path, capsys, monkeypatch):
    from napari_unet.cli import train

    reports = []

    def terminate_at_second_report(self, fraction, detail=""):
        reports.append(detail)
        if len(reports) == 2:
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(train.ProgressBar, "update", terminate_at_second_report)
    previous = signal.getsignal(signal.SIGTERM)
    out = tmp_path / "stopped.safetensors"
    status = main([*train_args(tmp_path), "--output", str(out), "--iterations", "1000"])
    assert status == 128 + signal.SIGTERM
    assert "interrupted" in capsys.readouterr().out
    # the handler raises KeyboardInterrupt in the second report (test_cli.py): train
    # reports every iteration, so 2 were run, no more
    assert reports[1].startswith("it 2 ")
    assert load_model(out).metadata["training_history"][-1]["iterations"] == 2
    assert signal.getsignal(signal.SIGTERM) == previous


def test_sigterm_during_the_save_waits_for_it(tmp_path, monkeypatch):
    from napari_unet.core import checkpoint as checkpoint_module

    real_save = checkpoint_module.save_model

    def terminated_while_saving(model, path, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        return real_save(model, path, **kwargs)

    monkeypatch.setattr(checkpoint_module, "save_model", terminated_while_saving)
    out = tmp_path / "m.safetensors"
    assert main([*train_args(tmp_path), "--output", str(out), "--iterations", "2"]) == 0
    assert load_model(out).metadata["training_history"][-1]["iterations"] == 2


def test_train_removes_what_a_killed_save_left(tmp_path):
    out = tmp_path / "m.safetensors"
    leftover = tmp_path / f".m.safetensors.{uuid.uuid4().hex}.tmp"
    leftover.write_bytes(b"half a checkpoint")
    assert main([*train_args(tmp_path), "--output", str(out), "--iterations", "1"]) == 0
    assert not leftover.exists() and out.exists()


@pytest.mark.parametrize("output_format", ["tiff", "zarr"])
def test_sigterm_during_predict_leaves_no_temporaries_but_a_store_to_resume(
    tmp_path, tiny_checkpoint, capsys, output_format
):
    from napari_unet.cli import predict

    def terminate(self, path):
        def update(step):
            if step.done > 0:
                os.kill(os.getpid(), signal.SIGTERM)

        return update

    previous = signal.getsignal(signal.SIGTERM)
    image = tmp_path / "big.tif"
    tifffile.imwrite(image, np.random.default_rng(0).integers(0, 99, (200, 200), dtype=np.uint16))
    out = tmp_path / "out"
    arguments = ["predict", str(image), "--model", str(tiny_checkpoint), "--output", str(out)]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(predict._FileProgress, "start", terminate)
        status = main([*arguments, "--tile-size", "48", "--output-format", output_format])
    assert status == 128 + signal.SIGTERM
    assert "terminated" in capsys.readouterr().err
    kept = [".big_prediction.zarr.partial"] if output_format == "zarr" else []  # test_resume.py
    assert sorted(path.name for path in out.iterdir()) == kept  # no lock, no temporary
    assert signal.getsignal(signal.SIGTERM) == previous


def test_a_save_failing_everywhere_says_the_weights_are_lost(tmp_path, capsys, monkeypatch):
    import tempfile

    from napari_unet.core import checkpoint as checkpoint_module

    def full_disk(model, path, **kwargs):
        raise OSError(28, "No space left on device")

    def no_temporary_folder(prefix=""):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint_module, "save_model", full_disk)
    monkeypatch.setattr(tempfile, "mkdtemp", no_temporary_folder)
    out = tmp_path / "m.safetensors"
    assert main([*train_args(tmp_path), "--output", str(out), "--iterations", "1"]) == 2
    assert "the trained weights are lost" in capsys.readouterr().err


def test_train_output_that_is_a_folder_is_refused_before_training(tmp_path, capsys):
    folder = tmp_path / "models"
    folder.mkdir()
    status = main([*train_args(tmp_path), "--output", str(folder), "--iterations", "2"])
    assert status == 2
    error = capsys.readouterr().err
    assert "is a folder; give a file name" in error and "training" not in error.lower()


def test_train_refuses_a_full_disk_before_training(tmp_path, capsys, monkeypatch):
    import shutil

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9, 1000))
    status = main([*train_args(tmp_path), "--output", str(tmp_path / "m.safetensors")])
    assert status == 2
    assert "not enough space" in capsys.readouterr().err


def test_failed_save_keeps_the_weights_in_a_temporary_folder(tmp_path, capsys, full_disk):
    out = full_disk
    status = main([*train_args(tmp_path), "--output", str(out), "--iterations", "2"])
    assert status == 2 and not out.exists()
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert "No space left on device" in error
    kept = error.split("the trained weights were saved to ")[1]
    assert load_model(kept).metadata["training_history"][-1]["iterations"] == 2
    os.remove(kept)
    os.rmdir(os.path.dirname(kept))


def _wide_images():
    ramp = (np.arange(40 * 40) % 200).reshape(40, 40)
    rng = np.random.default_rng(3)
    return {
        "uint32": (3_000_000_000 + ramp).astype(np.uint32),
        "float64": 1e300 * (1 + 1e-3 * rng.random((40, 40))),
        "int64": (2**60 + ramp).astype(np.int64),
    }


@pytest.mark.parametrize("kind", ["uint32", "float64", "int64"])
def test_wide_types_are_normalised_before_the_cast_on_the_command_line(
    tmp_path, tiny_checkpoint, kind
):
    from napari_unet import predict

    image = _wide_images()[kind]
    stack = np.stack([image, image[::-1]])
    tifffile.imwrite(tmp_path / "plane.tif", image)
    tifffile.imwrite(tmp_path / "stack.tif", stack)
    out = tmp_path / "out"
    inputs = [str(tmp_path / "plane.tif"), str(tmp_path / "stack.tif")]
    assert main(["predict", *inputs, "--model", str(tiny_checkpoint), "--output", str(out)]) == 0
    model = load_model(tiny_checkpoint)
    expected = predict(image, model)
    assert np.allclose(tifffile.imread(out / "plane_prob.tif"), expected, atol=1e-6)
    stacked = tifffile.imread(out / "stack_prob.tif")
    assert np.allclose(stacked[1], predict(image[::-1], model), atol=1e-6)
    assert np.ptp(expected) > 1e-4  # the network did see contrast
    zarr_out = tmp_path / "zarr"
    arguments = [
        "--model",
        str(tiny_checkpoint),
        "--output",
        str(zarr_out),
        "--output-format",
        "zarr",
    ]
    assert main(["predict", inputs[0], *arguments]) == 0
    stored = open_outputs(zarr_out / "plane_prediction.zarr")["prob"][:]
    assert np.allclose(stored, expected, atol=1e-6)


def test_complex_images_are_refused(tmp_path, tiny_checkpoint, capsys):
    from napari_unet import predict

    image = np.ones((20, 20), np.complex64)
    with pytest.raises(ValueError, match="complex"):
        predict(image, load_model(tiny_checkpoint))
    tifffile.imwrite(tmp_path / "c.tif", image)
    status = main(
        [
            "predict",
            str(tmp_path / "c.tif"),
            "--model",
            str(tiny_checkpoint),
            "--output",
            str(tmp_path / "o"),
        ]
    )
    assert status == 2 and "complex" in capsys.readouterr().err


def test_predict_takes_nested_lists(tiny_checkpoint):
    from napari_unet import predict

    model = load_model(tiny_checkpoint)
    image = np.random.default_rng(1).random((30, 30))
    assert np.array_equal(predict(image.tolist(), model), predict(image, model))


def test_a_fifo_given_as_an_image_is_refused_without_blocking(tmp_path, tiny_checkpoint, capsys):
    from napari_unet.io.data import ImageReadError, read_image

    fifo = tmp_path / "pipe.tif"
    os.mkfifo(fifo)
    with pytest.raises(ImageReadError, match="not a regular file"):
        read_image(fifo)
    assert (
        main(["predict", str(fifo), "--model", str(tiny_checkpoint), "--output", str(tmp_path)])
        == 2
    )
    assert "pipe.tif: not a regular file" in capsys.readouterr().err


def test_train_names_a_missing_image_once(tmp_path, capsys):
    arguments = train_args(tmp_path)
    arguments[arguments.index("--images") + 1] = str(tmp_path / "absent.tif")
    assert main([*arguments, "--output", str(tmp_path / "m.safetensors")]) == 2
    error = capsys.readouterr().err
    assert error.count("absent.tif") == 1 and "file not found" in error


@pytest.mark.parametrize(
    ("extra", "said"),
    [
        (["--seed", "-3"], "--seed must be a whole number >= 0, got -3"),
        (["--iterations", "-1"], "--iterations must be a number >= 0 (0: no such budget), got -1"),
        (["--seconds", "nan"], "--seconds must be a number >= 0 (0: no such budget), got nan"),
        (["--learning-rate", "0"], "--learning-rate must be a number > 0, got 0.0"),
        (["--bn-recalibration", "2"], "the --new model has no batch norm (add --batch-norm)"),
    ],
)
def test_train_refuses_meaningless_numbers_naming_the_option(tmp_path, capsys, extra, said):
    from helpers import square_train_args

    out = tmp_path / "m.safetensors"
    assert main([*square_train_args(tmp_path), "--output", str(out), *extra]) == 2
    error = capsys.readouterr().err
    assert said in error and "training:" not in error  # before any training
    assert not out.exists()


def test_train_refuses_network_options_for_a_model_it_loads(tmp_path, capsys):
    from helpers import square_train_args

    data = square_train_args(tmp_path)[:5]  # train --images IMAGE --labels LABELS
    out = tmp_path / "m.safetensors"
    args = [*data, "--model", "nuclei", "--features", "4", "--batch-norm", "--output", str(out)]
    assert main(args) == 2
    error = capsys.readouterr().err
    assert "--features, --batch-norm: the network options are for a --new model" in error
    assert not out.exists()

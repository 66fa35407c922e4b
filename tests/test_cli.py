import json
import os
import sys

import numpy as np
import pytest
import tifffile

from helpers import square_train_args, tiny_model
from napari_unet import load_model, save_model
from napari_unet._words import percent
from napari_unet.cli import build_parser, main


@pytest.fixture
def image_files(tmp_path):
    from skimage.io import imsave

    rng = np.random.default_rng(0)
    tif = tmp_path / "first.tif"
    tifffile.imwrite(tif, rng.integers(0, 4000, (70, 90)).astype(np.uint16))
    png = tmp_path / "second.png"
    imsave(png, rng.integers(0, 255, (41, 33)).astype(np.uint8), check_contrast=False)
    return tif, png


def test_predict_writes_three_files_per_input(tmp_path, tiny_checkpoint, image_files, capsys):
    out = tmp_path / "out"
    args = [
        "predict",
        *map(str, image_files),
        "--model",
        str(tiny_checkpoint),
        "--output",
        str(out),
    ]
    assert main([*args, "--tile-size", "56", "--device", "cpu"]) == 0
    from skimage.io import imread

    from napari_unet import instance_labels, predict

    model = load_model(tiny_checkpoint)
    counts = []
    for path, shape in zip(image_files, ((70, 90), (41, 33))):
        stem = path.stem
        mask = tifffile.imread(out / f"{stem}_mask.tif")
        probabilities = tifffile.imread(out / f"{stem}_prob.tif")
        instances = tifffile.imread(out / f"{stem}_instances.tif")
        assert mask.shape == shape and mask.dtype == np.uint8 and set(np.unique(mask)) <= {1, 2}
        assert probabilities.shape == (2, *shape) and probabilities.dtype == np.float32
        assert instances.shape == shape and instances.dtype == np.uint32
        assert np.array_equal(mask, probabilities.argmax(0) + 1)
        expected = predict(imread(path), model, tile_size=56, device="cpu")
        np.testing.assert_allclose(probabilities, expected, rtol=0, atol=1e-6)
        np.testing.assert_array_equal(instances, instance_labels(mask))  # the core's defaults
        counts.append(int(instances.max()))
    output = capsys.readouterr().out
    for path, count in zip(image_files, counts):
        assert f"{path}: {count} objects" in output


def test_predict_instances_are_the_core_instances_of_its_mask(tmp_path, capsys):
    """With objects to find (the bundled nuclei model on synthetic nuclei), the written
    instances are :func:`instance_labels` of the written mask, at the core's defaults."""
    from napari_unet import instance_labels
    from napari_unet.io.data import synthetic_nuclei

    image, _ = synthetic_nuclei(
        shape=(96, 96), n_nuclei=6, rng=3, radius_range=(10.0, 16.0), photons=60.0
    )
    tifffile.imwrite(tmp_path / "cells.tif", image)
    out = tmp_path / "out"
    args = ["predict", str(tmp_path / "cells.tif"), "--model", "nuclei", "--output", str(out)]
    assert main([*args, "--device", "cpu"]) == 0
    mask = tifffile.imread(out / "cells_mask.tif")
    instances = tifffile.imread(out / "cells_instances.tif")
    np.testing.assert_array_equal(instances, instance_labels(mask))
    assert instances.max() >= 3  # objects were found: the comparison is not of empty images
    assert f"cells.tif: {instances.max()} objects" in capsys.readouterr().out


def test_predict_with_test_time_augmentation(tmp_path, tiny_checkpoint, image_files):
    from napari_unet import load_model, predict

    options = ["--model", str(tiny_checkpoint), "--tile-size", "56", "--device", "cpu"]
    plain, augmented = tmp_path / "plain", tmp_path / "tta"
    assert main(["predict", str(image_files[0]), *options, "--output", str(plain)]) == 0
    assert (
        main(["predict", str(image_files[0]), *options, "--output", str(augmented), "--tta"]) == 0
    )
    result = tifffile.imread(augmented / "first_prob.tif")
    expected = predict(
        tifffile.imread(image_files[0]),
        load_model(tiny_checkpoint),
        tile_size=56,
        device="cpu",
        test_time_augmentation=True,
    )
    np.testing.assert_allclose(result, expected, atol=1e-6)
    assert np.abs(result - tifffile.imread(plain / "first_prob.tif")).max() > 1e-4


def test_a_model_that_asks_for_test_time_augmentation_gets_it_unless_told_not(
    tmp_path, image_files
):
    from napari_unet import predict

    model = tiny_model()
    model.metadata["test_time_augmentation"] = True
    path = save_model(model, tmp_path / "tta.safetensors")
    assert load_model(path).info.test_time_augmentation is True
    options = ["--model", str(path), "--tile-size", "56", "--device", "cpu"]
    results = {}
    for flags in ([], ["--no-tta"]):
        out = tmp_path / ("no-tta" if flags else "default")
        assert main(["predict", str(image_files[0]), *options, "--output", str(out), *flags]) == 0
        results[bool(flags)] = tifffile.imread(out / "first_prob.tif")
    image = tifffile.imread(image_files[0])
    for refused in (False, True):
        expected = predict(
            image, model, tile_size=56, device="cpu", test_time_augmentation=not refused
        )
        np.testing.assert_allclose(results[refused], expected, atol=1e-6)
    assert np.abs(results[False] - results[True]).max() > 1e-4


def test_info_prints_metadata(tiny_checkpoint, capsys):
    assert main(["info", str(tiny_checkpoint)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["model_config"]["depth"] == 2 and info["format_version"] == 1


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"model": "missing.safetensors"}, "no such checkpoint"),
        ({"tile": "50"}, "nearest valid sizes"),
        ({"input": "broken.tif"}, "cannot read image"),
        ({"input": "absent.png"}, "absent.png"),
    ],
)
def test_bad_input_is_said_in_a_line_and_writes_nothing(
    tmp_path, tiny_checkpoint, image_files, capsys, change, message
):
    (tmp_path / "broken.tif").write_bytes(b"II*\x00garbage")
    out = tmp_path / "out"
    inputs = [str(image_files[0]), str(tmp_path / change.get("input", image_files[1].name))]
    model = str(tmp_path / change["model"]) if "model" in change else str(tiny_checkpoint)
    args = ["predict", *inputs, "--model", model, "--output", str(out)]
    status = main([*args, "--tile-size", change.get("tile", "56")])
    error = capsys.readouterr().err
    assert status == 2
    assert message in error and "Traceback" not in error
    lines = error.strip().splitlines()
    if "input" in change:  # one of two inputs: its line, then that nothing was predicted
        assert len(lines) == 2 and "1 of 2 inputs cannot be predicted" in lines[1]
    else:
        assert len(lines) == 1
    assert not out.exists() or not any(out.iterdir())


def test_train_new_model_writes_checkpoint(tmp_path, capsys):
    out = tmp_path / "trained.safetensors"
    budget = ["--iterations", "3", "--seconds", "0", "--lr-schedule", "cosine"]
    assert main([*square_train_args(tmp_path), "--output", str(out), *budget]) == 0
    assert f"wrote {out}" in capsys.readouterr().out.strip().splitlines()
    assert main(["info", str(out)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["training_history"][0]["iterations"] == 3
    assert info["training_history"][0]["train_config"]["lr_schedule"] == "cosine"
    assert info["model_config"]["padding"] == "same"


def test_train_says_how_many_pixels_changed_class(tmp_path, capsys):
    from napari_unet import predict
    from napari_unet.core.postprocess import class_mask

    out = tmp_path / "trained.safetensors"
    arguments = [*square_train_args(tmp_path), "--output", str(out), "--iterations", "20"]
    assert main([*arguments, "--learning-rate", "0.01", "--device", "cpu"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    printed = next(line for line in lines if line.startswith("on "))
    image = tifffile.imread(tmp_path / "im.tif")
    after = class_mask(predict(image, load_model(out)))
    # its first run: the untrained model's classes meant nothing, so the shares are said
    share = percent(np.count_nonzero(after == 1) / after.size, whole=True)
    strokes = tifffile.imread(tmp_path / "lab.tif")
    right = percent(np.mean(after[strokes > 0] == strokes[strokes > 0]), whole=True)
    agreement = f"the model's most probable class matches {right} of your 80 labelled pixels"
    assert printed.startswith(f"on {tmp_path / 'im.tif'}: {agreement}, which it trained on; ")
    assert f"; the model now calls {share} of the pixels background" in printed
    assert "changed class" not in printed and "before" not in printed
    again = tmp_path / "again.safetensors"
    second = [*square_train_args(tmp_path)[:5], "--model", str(out), "--output", str(again)]
    assert main([*second, "--iterations", "20", "--learning-rate", "0.01", "--device", "cpu"]) == 0
    printed = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("on "))
    after_again = class_mask(predict(image, load_model(again)))
    changed = int((after != after_again).sum())
    assert changed > 0
    now = percent(np.mean(after_again[strokes > 0] == strokes[strokes > 0]), whole=True)
    agreement = f"now matches {now} (before: {right}) of your 80 labelled pixels, which it"
    assert printed.startswith(f"on {tmp_path / 'im.tif'}: the model's most probable class ")
    assert f"{agreement} trained on; {changed:,} pixels (" in printed
    # a new model's threshold from its strokes is said when there is one
    trained = load_model(out).info
    threshold = trained.background_threshold
    said = [line for line in lines if line.startswith("background threshold")]
    expected = _threshold_line(threshold, "from the strokes", open_gaps=True)
    assert said == ([] if threshold == 0.5 else [expected])
    assert trained.close_gaps is (threshold == 0.5)


def _threshold_line(threshold: float, source: str, open_gaps: bool = False) -> str:
    gaps = " and leaves gaps open" if open_gaps else ""
    return f"background threshold {threshold:.2f} ({source}): Predict grows objects up to it{gaps}"


def test_train_says_a_threshold_set_or_carried(capsys):
    from napari_unet.cli.train import _print_threshold

    _print_threshold(0.5, 0.5)
    _print_threshold(0.85, 0.85)
    assert capsys.readouterr().out == ""
    _print_threshold(0.5, 0.8312, close_gaps=False)
    _print_threshold(0.85, 0.8712)
    assert capsys.readouterr().out.splitlines() == [
        _threshold_line(0.8312, "from the strokes", open_gaps=True),
        _threshold_line(0.8712, "matched to the decisions of the model before at 0.85"),
    ]
    _print_threshold(0.6685, 0.7104, close_gaps=False, from_strokes=True)  # a second new run
    assert capsys.readouterr().out.splitlines() == [
        _threshold_line(0.7104, "from the strokes; it was 0.67", open_gaps=True)
    ]
    _print_threshold(0.5, 0.7723, close_gaps=False, moved=0.692)  # all background before
    assert capsys.readouterr().out.splitlines() == [
        _threshold_line(0.7723, "from the strokes", open_gaps=True),
        "at 0.5 the model would call nearly every pixel background: its decision moved to "
        "where it is 0.69 sure of it, so objects start there (the shares and the threshold "
        "above are on the moved probabilities)",
    ]
    _print_threshold(
        0.8189, 0.5, at_chance=True
    )  # a new model's run ended at chance: defaults back
    assert capsys.readouterr().out == (
        "background threshold back to 0.50 from 0.82: the loss is still a guess's\n"
    )


@pytest.mark.parametrize(
    ("budget", "seconds", "iterations"),
    [([], 60.0, None), (["--iterations", "5000"], None, 5000), (["--seconds", "5"], 5.0, None)],
)
def test_train_budget_defaults(budget, seconds, iterations):
    from napari_unet.cli.train import _train_config

    args = build_parser().parse_args(
        ["train", "--images", "a.tif", "--labels", "b.tif", "--new", "--output", "o", *budget]
    )
    config = _train_config(args)
    assert (config.seconds, config.iterations) == (seconds, iterations)


def test_train_help_states_the_distillation_default_in_use(capsys):
    """The help once said "default 3" while TrainConfig's default was 10."""
    from napari_unet import TrainConfig
    from napari_unet.cli.train import _train_config

    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    args = build_parser().parse_args(
        ["train", "--images", "a.tif", "--labels", "b.tif", "--new", "--output", "o"]
    )
    used = _train_config(args).distillation
    assert used == TrainConfig.distillation
    assert f"unpainted pixels (default {used:g}; 0 = strokes only)" in help_text


def test_train_divergence_is_one_line_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "diverged.safetensors"
    budget = ["--iterations", "10", "--learning-rate", "1e30"]
    status = main([*square_train_args(tmp_path), "--output", str(out), *budget])
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert status == 2
    assert error.startswith("napari-unet train: error:") and "Lower the learning rate" in error
    assert error.endswith("No checkpoint was written.")
    assert not out.exists()


def test_train_keyboard_interrupt_from_elsewhere_writes_the_best_weights_so_far(
    tmp_path, capsys, monkeypatch
):
    """A KeyboardInterrupt that is not a third Ctrl-C (test_cli_interrupt.py) stops at
    once and still writes the best weights."""
    from napari_unet.cli import train

    reports = []

    def interrupt_at_second_report(self, fraction, detail=""):
        reports.append(detail)
        if len(reports) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(train.ProgressBar, "update", interrupt_at_second_report)
    out = tmp_path / "stopped.safetensors"
    status = main([*square_train_args(tmp_path), "--output", str(out), "--iterations", "100"])
    assert status == 130
    assert "interrupted" in capsys.readouterr().out
    history = load_model(out).metadata["training_history"]
    assert history[-1]["iterations"] == 2  # reports every iteration


def test_train_ctrl_c_before_the_first_iteration_exits_130(tmp_path, capsys, monkeypatch):
    import napari_unet.training.loop as loop

    def interrupted(*_args, **_kwargs):
        raise KeyboardInterrupt
        yield  # a generator, as finetune

    monkeypatch.setattr(loop, "finetune", interrupted)
    out = tmp_path / "stopped.safetensors"
    status = main([*square_train_args(tmp_path), "--output", str(out), "--iterations", "100"])
    assert status == 130 and not out.exists()
    assert "interrupted before the first iteration: nothing written" in capsys.readouterr().err


def test_train_with_empty_labels_fails_cleanly(tmp_path, tiny_checkpoint, capsys):
    tifffile.imwrite(tmp_path / "im.tif", np.zeros((40, 40), np.float32))
    tifffile.imwrite(tmp_path / "lab.tif", np.zeros((40, 40), np.uint8))
    args = ["train", "--images", str(tmp_path / "im.tif"), "--labels", str(tmp_path / "lab.tif")]
    out = tmp_path / "x.safetensors"
    status = main(
        [*args, "--model", str(tiny_checkpoint), "--output", str(out), "--iterations", "2"]
    )
    assert status == 2 and "paint at least one" in capsys.readouterr().err
    assert not out.exists()


def test_unwritable_output_folder(tmp_path, tiny_checkpoint, image_files, capsys):
    if os.geteuid() == 0:
        target = "/proc/napari-unet-out"  # not writable even for root
    else:
        target = str(tmp_path / "ro")
        os.mkdir(target, 0o500)
    args = ["predict", str(image_files[0]), "--model", str(tiny_checkpoint), "--output", target]
    assert main(args) == 2
    assert "napari-unet-out" in capsys.readouterr().err


def test_train_refuses_a_dense_truth_before_training_saying_how_to_convert_it(tmp_path, capsys):
    from helpers import square_train_args

    args = square_train_args(tmp_path)
    isbi = np.where(tifffile.imread(tmp_path / "im.tif") > 0, 255, 0).astype(np.uint8)
    tifffile.imwrite(tmp_path / "lab.tif", isbi)  # a ground truth, not strokes
    out = tmp_path / "m.safetensors"
    assert main([*args, "--output", str(out), "--iterations", "1"]) == 2
    error = capsys.readouterr().err
    assert f"{tmp_path / 'lab.tif'}: annotation 0 uses label 255" in error
    assert "annotation_from_binary" in error and "training:" not in error  # no bar started
    assert not out.exists()


def test_predict_batch_size_must_be_positive(tmp_path, tiny_checkpoint, image_files, capsys):
    args = [
        "predict",
        str(image_files[0]),
        "--model",
        str(tiny_checkpoint),
        "--output",
        str(tmp_path),
    ]
    assert main([*args, "--batch-size", "0"]) == 2
    assert "--batch-size must be at least 1" in capsys.readouterr().err


def test_a_reader_that_goes_away_is_not_bad_input(monkeypatch, capsys):
    import io

    class ClosedPipe(io.StringIO):
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(sys, "stdout", ClosedPipe())  # as `napari-unet info nuclei | head -1`
    assert main(["info", "nuclei"]) == 141
    assert "error" not in capsys.readouterr().err


def test_train_names_the_file_of_a_label_that_is_not_a_whole_number(tmp_path, capsys):
    args = square_train_args(tmp_path)
    labels = tifffile.imread(tmp_path / "lab.tif").astype(np.float32)
    labels[0, 0] = np.nan
    tifffile.imwrite(tmp_path / "lab.tif", labels)
    assert main([*args, "--output", str(tmp_path / "m.safetensors"), "--iterations", "1"]) == 2
    error = capsys.readouterr().err
    assert f"{tmp_path / 'lab.tif'}: annotation 0 holds non-integer values" in error


def test_predict_says_once_that_colour_images_are_read_as_luminance(
    tmp_path, tiny_checkpoint, capsys
):
    from skimage.io import imsave

    rng = np.random.default_rng(0)
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a.png", "b.png"):
        imsave(folder / name, rng.integers(0, 255, (48, 48, 3), dtype=np.uint8))
    tifffile.imwrite(folder / "c.tif", rng.random((48, 48), dtype=np.float32))  # grey
    args = ["predict", str(folder), "--model", str(tiny_checkpoint), "--output", str(tmp_path)]
    assert main(args) == 0
    notes = [line for line in capsys.readouterr().err.splitlines() if "luminance" in line]
    assert notes == [
        "napari-unet predict: note: a.png and 1 more read as luminance (0.299 R + 0.587 G + "
        "0.114 B): the model takes one channel"
    ]

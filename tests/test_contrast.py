"""An image skewed against the model's training images is noted (an inverted image)."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import FAST, cli_predict, disc_labels, discs_image, run, tiny_model
from napari_unet import finetune, load_model
from napari_unet.core.contrast import (
    MIN_COLOURFULNESS,
    SAMPLES,
    WINDOW,
    colourfulness,
    contrast_note,
    image_note,
    intensity_skewness,
    trained_skewness,
    training_skewness,
)
from napari_unet.io.data import load_dsb2018, load_isbi, write_tiff
from napari_unet.training.weights import annotation_from_instances


def sparse_bright(seed: int = 0) -> np.ndarray:
    """Few bright pixels on a dark background: strongly positive skewness."""
    image = np.random.default_rng(seed).normal(10.0, 1.0, (64, 80))
    image[::8, ::8] += 40.0
    return image


def reference_skewness(values: np.ndarray) -> float:
    """The textbook third standardised moment after clipping to the 1st-99th percentiles."""
    values = np.clip(values.ravel(), *np.percentile(values, [1, 99]))
    return float(np.mean((values - values.mean()) ** 3) / values.std() ** 3)


def test_skewness_against_a_reference_and_its_invariances():
    image = sparse_bright()
    reference = reference_skewness(image)
    assert intensity_skewness(image) == pytest.approx(reference, rel=1e-9)
    assert reference > 3
    assert intensity_skewness(-image) == pytest.approx(-reference, rel=1e-9)
    assert intensity_skewness(7.0 * image - 3.0) == pytest.approx(reference, rel=1e-9)
    # (C, Y, X): each channel standardised, so a per-channel normalisation changes nothing
    channels = np.stack([image, 100.0 * image + 5.0])
    assert intensity_skewness(channels) == pytest.approx(reference, rel=1e-9)
    assert intensity_skewness(np.full((5, 5), 3.0)) == 0.0
    with_nan = image.copy()
    with_nan[0, 0] = np.nan
    assert intensity_skewness(with_nan) == pytest.approx(
        reference_skewness(image.ravel()[1:]), rel=1e-9
    )
    with pytest.raises(ValueError, match=r"\(C, Y, X\), got shape \(2, 1, 64, 80\)"):
        intensity_skewness(channels[:, None])  # a stack, not a plane


def test_a_few_saturated_pixels_do_not_flip_the_sign():
    image, _ = load_dsb2018()
    inverted = image.max() - image.astype(np.float64)
    saturated = inverted.copy()
    chosen = np.random.default_rng(0).choice(saturated.size, saturated.size // 500, replace=False)
    saturated.flat[chosen] = 5 * inverted.max()  # 0.2 % of the pixels
    assert intensity_skewness(inverted) < -2
    assert intensity_skewness(saturated) == pytest.approx(intensity_skewness(inverted), abs=0.1)


class Recording:
    """An array-like that records the windows read from it."""

    def __init__(self, shape: tuple[int, int]) -> None:
        self.shape, self.read = shape, []

    def __getitem__(self, key):
        self.read.append(key)
        return np.zeros(self.shape)[key]


def test_a_huge_plane_is_read_in_its_central_window_only():
    plane = Recording((WINDOW + 1000, WINDOW + 10))
    assert intensity_skewness(plane) == 0.0
    ((_, rows, columns),) = plane.read
    assert (rows.start, rows.stop, rows.step) == (500, 500 + WINDOW, WINDOW // SAMPLES)
    assert (columns.start, columns.stop, columns.step) == (5, 5 + WINDOW, WINDOW // SAMPLES)
    small = Recording((300, 200))
    intensity_skewness(small)
    ((_, rows, columns),) = small.read
    assert (rows.start, rows.step, columns.start, columns.step) == (0, 1, 0, 1)


def test_a_training_run_records_its_images_skewness():
    model = tiny_model()
    assert trained_skewness(model) is None  # a new model: nothing recorded, no note
    assert contrast_note(model, -sparse_bright()) == ""
    images = [discs_image(seed=seed) for seed in (0, 1, 2)]
    annotations = [annotation_from_instances(disc_labels([1, 2, 3, 4]))] * 3
    list(finetune(model, images, annotations, FAST))
    recorded = model.metadata["training_history"][-1]["image_skewness"]
    assert recorded == pytest.approx(training_skewness(images), abs=1e-3)
    assert recorded == pytest.approx(np.median([intensity_skewness(i) for i in images]), abs=1e-3)
    assert trained_skewness(model) == recorded > 1


def test_the_bundled_nuclei_note_an_inverted_dsb_image_only():
    nuclei = load_model("nuclei")
    assert trained_skewness(nuclei) > 2  # fluorescence: bright nuclei on a dark background
    image, _ = load_dsb2018()
    assert contrast_note(nuclei, image) == ""
    note = contrast_note(nuclei, image.max() - image.astype(np.float32))
    assert "skewness -2.1 here, +2.9 there" in note and "invert the image" in note


def test_no_note_where_either_side_is_weakly_skewed():
    nuclei, membranes = load_model("nuclei"), load_model("em-membranes")
    (em_slice,), _ = load_isbi([17])
    dsb, _ = load_dsb2018()
    assert -1 < intensity_skewness(em_slice) < 0 < 1 < intensity_skewness(dsb)
    assert -1 < trained_skewness(membranes) < 0 < 1 < trained_skewness(nuclei)
    # opposite signs both times, but one side too weak to say anything
    assert contrast_note(nuclei, em_slice) == ""
    assert contrast_note(membranes, dsb) == ""
    assert contrast_note(membranes, 255.0 - em_slice) == ""


def stained() -> np.ndarray:
    """A bright-field immunohistochemistry crop (scikit-image's sample), (256, 256, 3)."""
    from skimage import data

    return data.immunohistochemistry()[:256, :256]


def luminance(rgb: np.ndarray) -> np.ndarray:
    return rgb[..., :3].astype(np.float64) @ np.array([0.299, 0.587, 0.114])


def test_colourfulness_of_grey_colour_and_one_coloured_channel():
    rgb = stained()
    assert colourfulness(np.moveaxis(rgb, -1, 0)) > 2 * MIN_COLOURFULNESS  # 0.31
    grey = np.stack([rgb[..., 0]] * 3)
    assert colourfulness(grey) == 0.0 and colourfulness(grey[:1]) == 0.0
    assert colourfulness(np.zeros((3, 8, 8))) == 0.0
    red = np.zeros((3, 20, 20))
    red[0, :, 10:] = 100.0  # half the pixels red, half black
    assert colourfulness(red) == pytest.approx(0.5)  # their median spread: 0 or 100 of 100


def test_a_stained_colour_image_is_noted_for_a_fluorescence_model_only():
    nuclei, membranes = load_model("nuclei"), load_model("em-membranes")
    rgb = stained()
    colours, plane = np.moveaxis(rgb, -1, 0), luminance(rgb)
    assert -1 < intensity_skewness(plane) < 1  # no contrast note: weakly skewed
    note = image_note(nuclei, plane, colours)
    assert note.startswith("The model learnt from one-channel images of bright objects")
    skewness = intensity_skewness(plane)
    assert f"(skewness {skewness:+.1f}, against +2.9 for the model's training images)" in note
    assert image_note(nuclei, plane) == ""  # no colours given: a grey image
    assert image_note(membranes, plane, colours) == ""  # it learnt no bright objects
    dsb, _ = load_dsb2018()
    blue = np.zeros((3, *dsb.shape), np.float32)
    blue[2] = dsb  # fluorescence in one colour: as skewed as ever, so not noted
    assert colourfulness(blue) > MIN_COLOURFULNESS
    assert image_note(nuclei, blue[2] * 0.114, blue) == ""
    grey = np.stack([plane] * 3)  # the stained crop's luminance as RGB: weakly skewed, grey
    assert image_note(nuclei, plane, grey) == ""


def test_predict_notes_the_inverted_file_by_its_middle_slice(tmp_path, capsys):
    image, _ = load_dsb2018()
    crop = image[:, :128]
    inverted = (image.max() - crop).astype(image.dtype)
    write_tiff(tmp_path / "as_taken.tif", crop)
    blank_first = np.stack([np.zeros_like(crop), inverted, inverted])  # out of the sample first
    write_tiff(tmp_path / "inverted.tif", blank_first, axes="ZYX")
    inputs = [tmp_path / "as_taken.tif", tmp_path / "inverted.tif"]
    assert cli_predict(inputs, "nuclei", tmp_path / "out", "--tile-size", "188") == 0
    noted = [line for line in capsys.readouterr().out.splitlines() if "skewed" in line]
    assert len(noted) == 1 and noted[0].startswith(f"{inputs[1]}: This image's intensities")


def test_predict_notes_a_stained_colour_file(tmp_path, capsys):
    import tifffile

    tifffile.imwrite(tmp_path / "stained.tif", stained(), photometric="rgb")
    out = tmp_path / "out"
    assert cli_predict([tmp_path / "stained.tif"], "nuclei", out, "--tile-size", "188") == 0
    noted = [line for line in capsys.readouterr().out.splitlines() if "colour image" in line]
    assert len(noted) == 1 and noted[0].startswith(f"{tmp_path / 'stained.tif'}: The model learnt")


@pytest.mark.gui
def test_the_predict_section_says_so_in_its_status(qtbot, dock, notifications):
    viewer, widget = dock
    model = tiny_model()
    model.metadata["training_history"] = [{"image_skewness": 1.25}]  # discs: bright on dark
    widget.model.use_model(model, "bright discs")
    predict = widget.predict
    run(qtbot, predict, predict.run_prediction)
    assert "Done" in predict.status.text() and "skewed" not in predict.status.text()
    viewer.add_image(-discs_image(), name="dark discs")
    predict.image_picker.value = viewer.layers["dark discs"]
    run(qtbot, predict, predict.run_prediction)
    assert "skewness -1.3 here, +1.2 there" in predict.status.text()
    warned = [str(note.message) for note in notifications if "skewed" in str(note.message)]
    assert len(warned) == 1 and warned[0].startswith("“dark discs”: This image's")
    assert "dark discs mask" in viewer.layers


@pytest.mark.gui
def test_the_predict_section_notes_a_stained_colour_image(qtbot, dock, notifications):
    viewer, widget = dock
    widget.model.use_model(load_model("nuclei"), "nuclei")
    viewer.add_image(stained(), name="stained", rgb=True)
    predict = widget.predict
    predict.image_picker.value = viewer.layers["stained"]
    run(qtbot, predict, predict.run_prediction)
    said = predict.status.text()
    assert "read as its luminance (0.299 R" in said and "this colour image's brightness" in said
    assert said.count("read as its luminance") == 1
    warned = [str(note.message) for note in notifications if "colour image" in str(note.message)]
    assert len(warned) == 1 and warned[0].startswith("“stained”: The model learnt")

"""An image skewed against the model's training images is noted (an inverted image)."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import FAST, cli_predict, disc_labels, discs_image, run, tiny_model
from napari_unet import finetune, load_model
from napari_unet.core.contrast import (
    WINDOW,
    contrast_note,
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


def test_skewness_against_a_reference_and_its_invariances():
    image = sparse_bright()
    values = image.ravel()
    reference = np.mean((values - values.mean()) ** 3) / values.std() ** 3
    assert intensity_skewness(image) == pytest.approx(reference, rel=1e-12)
    assert reference > 3
    assert intensity_skewness(-image) == pytest.approx(-reference, rel=1e-12)
    assert intensity_skewness(7.0 * image - 3.0) == pytest.approx(reference, rel=1e-9)
    channels = np.stack([image, image + 1.0])  # (C, Y, X): the channels' mean
    assert intensity_skewness(channels) == pytest.approx(reference, rel=1e-9)
    assert intensity_skewness(np.full((5, 5), 3.0)) == 0.0
    with_nan = image.copy()
    with_nan[0, 0] = np.nan
    assert np.isfinite(intensity_skewness(with_nan))


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
    assert (rows.start, rows.stop) == (500, 500 + WINDOW)
    assert (columns.start, columns.stop) == (5, 5 + WINDOW)


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
    assert "skewness -3.3 here, +3.0 there" in note and "invert the image" in note


def test_em_images_are_too_weakly_skewed_for_a_note_either_way():
    membranes = load_model("em-membranes")
    images, _ = load_isbi([17])
    assert abs(trained_skewness(membranes)) < 1
    assert contrast_note(membranes, images[0]) == ""
    assert contrast_note(membranes, 255.0 - images[0]) == ""


def test_predict_notes_the_inverted_file(tmp_path, capsys):
    image, _ = load_dsb2018()
    write_tiff(tmp_path / "as_taken.tif", image[:, :128])
    write_tiff(tmp_path / "inverted.tif", (image.max() - image)[:, :128].astype(image.dtype))
    inputs = [tmp_path / "as_taken.tif", tmp_path / "inverted.tif"]
    assert cli_predict(inputs, "nuclei", tmp_path / "out", "--tile-size", "188") == 0
    noted = [line for line in capsys.readouterr().out.splitlines() if "skewed" in line]
    assert len(noted) == 1 and noted[0].startswith(f"{inputs[1]}: This image's intensities")


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

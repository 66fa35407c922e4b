"""The share of the strokes Predict's mask keeps after a run, for a model with a background
threshold: measured in the Fine-tune job and printed by ``napari-unet train``."""

from __future__ import annotations

import numpy as np
import tifffile

from helpers import as_trained, square_train_args, tiny_model
from napari_unet import load_model, save_model
from napari_unet._words import percent
from napari_unet.cli import main
from napari_unet.evaluation.strokes import shown_classes


def test_the_classes_predict_shows_are_drawn_with_a_threshold_only():
    background = np.array([[0.8, 0.8, 0.95, 0.95], [0.1] * 4, [0.1] * 4], np.float32)
    after = np.stack([background, 1 - background])
    assert shown_classes(after, 0.5) is None  # Predict draws the most probable class
    shown = shown_classes(after, 0.9)
    assert shown[0].tolist() == [2, 2, 1, 1]  # below 0.9 sure: the object grows over it
    assert (shown[1:] == 2).all()


def test_train_says_what_predict_s_threshold_leaves_of_the_strokes(tmp_path, capsys, monkeypatch):
    from napari_unet.evaluation import strokes as stroke_words

    model = as_trained(tiny_model())
    model.metadata["background_threshold"] = 0.9
    start = save_model(model, tmp_path / "start.safetensors")
    real_shown = stroke_words.shown_classes

    def grown_over_the_background(probabilities, threshold):
        assert real_shown(probabilities, threshold) is not None  # a threshold: measured
        return np.full(probabilities.shape[1:], 2, np.uint8)  # every background stroke taken

    monkeypatch.setattr(stroke_words, "shown_classes", grown_over_the_background)
    files = square_train_args(tmp_path)[:5]
    out = tmp_path / "tuned.safetensors"
    arguments = [*files, "--model", str(start), "--output", str(out), "--iterations", "2"]
    assert main([*arguments, "--device", "cpu"]) == 0
    printed = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("on "))
    threshold = load_model(out).info.background_threshold
    strokes = tifffile.imread(tmp_path / "lab.tif")
    share = percent(np.count_nonzero(strokes == 2) / np.count_nonzero(strokes), whole=True)
    assert (
        f"which it trained on; Predict's mask, which draws background only where the model is "
        f"at least {percent(threshold, whole=True)} sure, matches {share} of them (before: "
        f"{share}); "
    ) in printed, printed

"""``napari-unet demo --gui``: the sample, the first strokes and the dock, ready to fine-tune."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from napari_unet import PredictConfig, load_model
from napari_unet._widgets import _demo_gui
from napari_unet._widgets._layers import ANNOTATION_BRUSH_SIZE
from napari_unet.cli import build_parser, demo
from napari_unet.io.volumes import segment_stack

pytestmark = pytest.mark.gui


def test_gui_demo_opens_with_strokes_where_the_model_errs(monkeypatch):
    shown = {}
    monkeypatch.setattr(_demo_gui, "show_demo", lambda image, strokes: shown.update(
        image=image, strokes=strokes))  # fmt: skip
    args = build_parser().parse_args(["demo", "--gui", "--size", "128", "--device", "cpu"])
    assert demo.run_demo(args) == {}
    strokes = shown["strokes"]
    assert shown["image"].shape == strokes.shape == (128, 128)
    assert strokes.any() and not strokes[:, 64:].any()  # only the left half is painted
    assert set(np.unique(strokes)) == {0, 1, 2}
    sample = demo.demo_sample(args.size, args.seed)
    assert np.array_equal(shown["image"], sample["image"])
    painted = strokes > 0
    assert np.array_equal(strokes[painted], sample["classes"][painted])  # the true class
    # the bundled model's mask, as predict makes it: every stroke is centred on an error
    config = PredictConfig(device="cpu")
    _, mask, _ = segment_stack(sample["image"], load_model(args.model), config=config)
    wrong = mask != sample["classes"]
    for label in (1, 2):
        each, count = ndimage.label(strokes == label)
        assert count and all(wrong[each == index].any() for index in range(1, count + 1))


def test_demo_layers_are_picked_for_fine_tuning(make_napari_viewer):
    viewer = make_napari_viewer()
    sample = demo.demo_sample(96)
    wrong = np.ones(sample["truth"].shape, np.uint8)  # a mask that misses every nucleus
    empty = np.zeros_like(wrong)
    strokes = demo.corrections(sample, wrong, empty, np.random.default_rng(0))
    annotations, widget = _demo_gui.add_demo(viewer, sample["image"], strokes)
    assert [layer.name for layer in viewer.layers] == ["nuclei", "nuclei annotations"]
    assert np.array_equal(annotations.data, strokes) and (strokes == 2).any()
    assert widget.finetune.image_picker.layer is viewer.layers["nuclei"]
    assert widget.finetune.annotation_picker.layer is annotations
    assert annotations.brush_size == ANNOTATION_BRUSH_SIZE  # as the Annotate section's layers

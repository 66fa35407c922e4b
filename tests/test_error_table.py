"""Every bad input of the reliability issue, with the message the user sees.

The table in docs/errors.md is checked against these cases; regenerate it with
``NAPARI_UNET_UPDATE_DOCS=1 python -m pytest tests/test_error_table.py``.
"""

import os
import re
from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_unet import ModelConfig, TrainConfig, finetune, load_model, predict, save_model
from napari_unet.checkpoint import new_model
from napari_unet.data import read_image, to_channels_first
from napari_unet.volumes import annotated_slices

DOC = Path(__file__).resolve().parents[1] / "docs" / "errors.md"
MODEL = new_model(ModelConfig(base_features=4, depth=2), seed=0)
IMAGE = np.random.default_rng(0).random((64, 64)).astype(np.float32)
ONE_ITERATION = TrainConfig(seconds=None, iterations=1, batch_size=1)


def _train(annotation, image=IMAGE, model=MODEL):
    next(finetune(model, [image], [annotation], ONE_ITERATION))


def _labels(value=0, shape=(64, 64)):
    return np.full(shape, value, np.uint8)


def _two_classes(corner=2):
    """Background with a painted square (label 2); ``corner`` at pixel (0, 0)."""
    labels = np.ones((64, 64), np.int16)
    labels[20:40, 20:40] = 2
    labels[0, 0] = corner
    return labels


DIVERGING = TrainConfig(seconds=None, iterations=10, batch_size=1, learning_rate=1e30)


def _file(tmp, name, payload):
    path = tmp / name
    path.write_bytes(payload)
    return path


def _truncated(tmp, name):
    full = tmp / f"full_{name}"
    if name.endswith(".tif"):
        tifffile.imwrite(full, np.arange(4096, dtype=np.uint16).reshape(64, 64))
    else:
        from skimage.io import imsave

        imsave(full, (np.arange(4096) % 255).astype(np.uint8).reshape(64, 64), check_contrast=False)
    return _file(tmp, name, full.read_bytes()[:200])


def _checkpoint(tmp, name, mutate):
    path = save_model(MODEL, tmp / name)
    data = path.read_bytes()
    return _file(tmp, name, mutate(data))


CASES = {
    "annotation empty": lambda tmp: _train(_labels(0)),
    "annotation with one class only": lambda tmp: _train(_labels(2)),
    "annotation shape differs from the image": lambda tmp: _train(_labels(1, (60, 64))),
    "label value above the model's classes": lambda tmp: _train(_labels(5)),
    "negative label value": lambda tmp: _train(_two_classes(corner=-1)),
    "annotation with fractional values": lambda tmp: _train(_two_classes().astype(float) / 2),
    "training diverges (learning rate far too high)": lambda tmp: list(
        finetune(
            new_model(ModelConfig(base_features=4, depth=2)), [IMAGE], [_two_classes()], DIVERGING
        )
    ),
    "annotations on a slice the image does not have": lambda tmp: annotated_slices(
        np.zeros((3, 32, 32)), np.pad(np.ones((1, 32, 32), np.uint8), ((4, 0), (0, 0), (0, 0)))
    ),
    "image with NaN": lambda tmp: predict(np.full((32, 32), np.nan), MODEL),
    "image with inf": lambda tmp: predict(np.full((32, 32), np.inf), MODEL),
    "grayscale image for a 3-channel model": lambda tmp: to_channels_first(IMAGE, 3),
    "4-channel image for a 3-channel model": lambda tmp: to_channels_first(
        np.zeros((4, 32, 32)), 3, rgb=False
    ),
    "invalid tile size": lambda tmp: predict(IMAGE, MODEL, tile_size=50),
    "image file missing": lambda tmp: read_image(tmp / "absent.tif"),
    "TIFF file truncated": lambda tmp: read_image(_truncated(tmp, "cut.tif")),
    "PNG file truncated": lambda tmp: read_image(_truncated(tmp, "cut.png")),
    "image file that is not an image": lambda tmp: read_image(_file(tmp, "x.png", b"hello")),
    "checkpoint missing": lambda tmp: load_model(tmp / "absent.safetensors"),
    "checkpoint truncated": lambda tmp: load_model(
        _checkpoint(tmp, "cut.safetensors", lambda data: data[: len(data) // 2])
    ),
    "checkpoint of another format": lambda tmp: load_model(_file(tmp, "m.safetensors", b"\0" * 64)),
    "pickle file named .pt": lambda tmp: load_model(
        _file(tmp, "m.pt", b"\x80\x04\x95\x0b\x00\x00\x00\x00\x00\x00\x00\x8c\x02os\x94.")
    ),
}


def _message(case, tmp_path):
    with pytest.raises(Exception) as caught:
        CASES[case](tmp_path)
    text = " ".join(str(caught.value).split())
    text = text.replace(str(tmp_path), "<folder>")
    text = re.sub(r"\(bundled: [^)]*\)", "(bundled: ...)", text)  # changes as models are added
    return type(caught.value).__name__, text


def _row(case, kind, message):
    return f"| {case} | `{kind}` | {message.replace('|', '/')} |"


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_gets_a_clear_message_listed_in_the_docs(case, tmp_path):
    kind, message = _message(case, tmp_path)
    assert kind != "Exception" and len(message) > 20
    if os.environ.get("NAPARI_UNET_UPDATE_DOCS"):
        return
    rows = DOC.read_text().splitlines()
    expected = _row(case, kind, message)
    found = next((row for row in rows if row.startswith(f"| {case} |")), None)
    # volatile parts (library versions' wording, offsets) are compared up to digits
    assert found is not None, f"docs/errors.md lacks a row for {case!r}"
    assert re.sub(r"\d+", "N", found) == re.sub(r"\d+", "N", expected)


def test_regenerate_table(tmp_path_factory):
    if not os.environ.get("NAPARI_UNET_UPDATE_DOCS"):
        assert DOC.exists()
        return
    rows = []
    for case in CASES:
        kind, message = _message(case, tmp_path_factory.mktemp("case"))
        rows.append(_row(case, kind, message))
    header = DOC.read_text().split("<!-- table -->")[0]
    DOC.write_text(
        header
        + "<!-- table -->\n| input | error | message |\n|---|---|---|\n"
        + "\n".join(rows)
        + "\n"
    )

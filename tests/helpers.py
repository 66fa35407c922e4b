"""Helpers shared by several test modules: synthetic images, tiny models, CLI arguments.

Test modules import them by name (``from helpers import tiny_model``): tests/ has no
``__init__.py``, so pytest's default ``prepend`` import mode puts it on ``sys.path`` when it
loads conftest.py, however pytest is started (``python -m pytest tests``,
``scripts/test.sh``); ``scripts/update_error_docs.py`` adds it itself. Fixtures go in
conftest.py (``dock``, ``notifications``, ``tiny_checkpoint``, ``no_network``), not here,
and test modules import nothing from one another.
"""

from __future__ import annotations

import functools
import io
import json
import os
import struct
import tempfile
import warnings
import zipfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import tifffile
import torch

from napari_unet import ModelConfig, TrainConfig, UNet
from napari_unet.config import TRAINED_ITERATIONS
from napari_unet.core.checkpoint import checkpoint_info, new_model, read_checkpoint, save_model
from napari_unet.core.postprocess import prediction_mask

# --- synthetic images -------------------------------------------------------------------

#: The centres of the discs of :func:`discs_image` (radius 12, in a 128 x 128 image).
CENTRES = [(30, 30), (30, 90), (70, 60), (100, 25), (100, 100), (64, 110)]


@contextmanager
def warnings_as_errors():
    """Any warning but a library's deprecation warning raises inside the block.

    Other libraries' deprecations are let through: scikit-image 0.26 sets an array's
    ``shape``, which NumPy 2.5 deprecates (seen on a GPU machine), and that is not what
    these tests check."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.simplefilter("default", DeprecationWarning)
        warnings.filterwarnings("error", category=DeprecationWarning, module="napari_unet")
        yield


def disc_masks(shape=(128, 128), centres=CENTRES) -> list[np.ndarray]:
    """One boolean mask of radius 12 per centre."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return [(yy - cy) ** 2 + (xx - cx) ** 2 < 12**2 for cy, cx in centres]


def discs_image(shape=(128, 128), seed=0, centres=CENTRES) -> np.ndarray:
    """Bright discs (radius 12) on a dark background, with noise."""
    image = np.zeros(shape, np.float32)
    for disc in disc_masks(shape, centres):
        image[disc] = 1.0
    return image + np.random.default_rng(seed).normal(0, 0.2, shape).astype(np.float32)


def disc_labels(values) -> np.ndarray:
    """The discs of :func:`discs_image`, disc ``i`` labelled ``values[i]``, the rest 0."""
    labels = np.zeros((128, 128), np.uint32)
    for disc, value in zip(disc_masks(), values):
        labels[disc] = value
    return labels


def random_discs(seed=0, size=96):
    """(image, truth, scribbles): eight discs of random places and radii (truth 2, the rest
    1), with noise; the scribbles are every sixth row of the truth."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    image = np.zeros((size, size), np.float32)
    truth = np.ones((size, size), np.uint8)
    for _ in range(8):
        cy, cx, radius = rng.integers(8, size - 8), rng.integers(8, size - 8), rng.integers(4, 8)
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 < radius**2
        image[disc], truth[disc] = 1.0, 2
    image += rng.normal(0, 0.2, image.shape).astype(np.float32)
    scribbles = np.zeros_like(truth)
    scribbles[::6] = truth[::6]
    return image, truth, scribbles


def membrane_image(seed: int, size: int = 96) -> np.ndarray:
    """Bright noisy cells between dark 4-px membranes every 24 px, (size, size) float32."""
    membrane = np.zeros((size, size), bool)
    for start in range(10, size, 24):
        membrane[start : start + 4, :] = True
        membrane[:, start : start + 4] = True
    noise = np.random.default_rng(seed).normal(0, 0.1, membrane.shape)
    return (np.where(membrane, 0.2, 0.8) + noise).astype(np.float32)


def membrane_strokes(size: int = 96) -> np.ndarray:
    """Strokes for :func:`membrane_image`: background (1) on two membranes, object (2) in
    the cells' middles."""
    strokes = np.zeros((size, size), np.uint8)
    strokes[11, 20:80] = 1
    strokes[40:80, 59] = 1
    for row in (23, 47, 71):
        for column in (23, 47, 71):
            strokes[row, column - 6 : column + 6] = 2
    return strokes


def touching_pair(band: float) -> np.ndarray:
    """(2, 40, 60) probabilities of two touching discs; ``band`` above their inside
    along the 3 px where they meet (the closing needs 0.2 for a new line)."""
    rows, columns = np.mgrid[:40, :60]
    inside = (np.hypot(rows - 20, columns - 20) <= 10) | (np.hypot(rows - 20, columns - 38) <= 10)
    background = np.where(inside, 0.05, 0.95).astype(np.float32)
    background[inside & (np.abs(columns - 29) <= 1)] = 0.05 + band
    return np.stack([background, 1 - background])


#: The masks of :func:`touching_pair` with and without a separating line.
SEPARATED = prediction_mask(touching_pair(0.3))
MERGED = prediction_mask(touching_pair(0.0))


# --- the GUI ----------------------------------------------------------------------------


def paint_strokes(labels: np.ndarray) -> None:
    """Foreground strokes across three discs, background strokes between them."""
    labels[28:33, 20:40] = 2
    labels[68:72, 50:70] = 2
    labels[98:102, 92:108] = 2
    labels[5:9, 5:120] = 1
    labels[48:52, 5:40] = 1
    labels[118:122, 40:90] = 1


def stroke_accuracy(model, image: np.ndarray, strokes: np.ndarray) -> float:
    """Share of painted pixels the model classifies as painted."""
    from napari_unet.core.inference import predict
    from napari_unet.core.postprocess import class_mask

    mask = class_mask(predict(image, model, device="cpu"))
    return float((mask == strokes)[strokes > 0].mean())


def annotate(viewer, widget):
    """A new annotation layer of the dock's image, painted with :func:`paint_strokes`."""
    layer = widget.annotate.create_annotation_layer()
    paint_strokes(layer.data)
    layer.refresh()
    return layer


def run(qtbot, widget, start, timeout=60_000):
    """Start a run with ``start()`` and wait for the widget's ``finished`` signal."""
    with qtbot.waitSignal(widget.finished, timeout=timeout):
        worker = start()
        assert worker is not None
    return worker


# --- models -----------------------------------------------------------------------------


def as_trained(model: UNet) -> UNet:
    """``model`` with a training history of :data:`TRAINED_ITERATIONS` iterations, as a
    bundled or saved model has: runs on it are fine-tunes (distilled, 1e-4, capped)."""
    model.metadata["training_history"] = [{"iterations": TRAINED_ITERATIONS}]
    return model


def tiny_model(seed=0, **config) -> UNet:
    """A fresh 4-feature, depth-2 network (``config`` changes other fields)."""
    return new_model(ModelConfig(base_features=4, depth=2, **config), seed=seed)


#: A four-iteration training of batches of two, seeded.
FAST = TrainConfig(seconds=None, iterations=4, batch_size=2, seed=0)


def seeded_unet(**options) -> UNet:
    """A 4-feature UNet built after ``torch.manual_seed(0)``, in eval mode, with
    normalisation metadata (``options`` are fields of its config)."""
    torch.manual_seed(0)
    model = UNet(ModelConfig(base_features=4, **options)).eval()
    model.metadata = {"normalization": {"low": 1.0, "high": 99.8}}
    return model


# --- the command line -------------------------------------------------------------------

#: ``train``'s options for a fresh small network.
NEW_NETWORK = ["--new", "--features", "4", "--depth", "2", "--padding", "same"]


def train_files(tmp_path, image=None):
    """``--images``/``--labels`` of a 48 x 48 image (or ``image``) and its 2-D strokes.

    The random image is written to ``im.tif``; a given ``image`` is there already.
    """
    if image is None:
        image = np.random.default_rng(0).random((48, 48)).astype(np.float32)
        tifffile.imwrite(tmp_path / "im.tif", image)
    labels = np.ones((48, 48), np.uint8)
    labels[10:30, 10:30] = 2
    tifffile.imwrite(tmp_path / "lab.tif", labels)
    return ["--images", str(tmp_path / "im.tif"), "--labels", str(tmp_path / "lab.tif")]


def train_args(tmp_path):
    """Arguments of ``napari-unet train`` on :func:`train_files` and a fresh small network."""
    return ["train", *train_files(tmp_path), *NEW_NETWORK]


def square_train_args(tmp_path):
    """Arguments of ``napari-unet train`` on a 64 x 64 image of a bright square, strokes
    across it and above it, and a fresh small network."""
    image = np.zeros((64, 64), np.float32)
    image[20:40, 20:40] = 1
    labels = np.zeros((64, 64), np.uint8)
    labels[5, :] = 1
    labels[30, 22:38] = 2
    tifffile.imwrite(tmp_path / "im.tif", image)
    tifffile.imwrite(tmp_path / "lab.tif", labels)
    files = ["--images", str(tmp_path / "im.tif"), "--labels", str(tmp_path / "lab.tif")]
    return ["train", *files, *NEW_NETWORK]


#: The tile size :func:`cli_predict` asks for.
CLI_TILE = 56


def cli_predict(inputs, checkpoint, output, *options):
    """``napari-unet predict`` of ``inputs`` (one path or several) with :data:`CLI_TILE`
    tiles on the CPU, then ``options``; its exit status."""
    from napari_unet.cli import main

    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    arguments = ["predict", *map(str, inputs), "--model", str(checkpoint), "--output", str(output)]
    return main([*arguments, "--tile-size", str(CLI_TILE), "--device", "cpu", *options])


# --- hostile checkpoints and packages ---------------------------------------------------


def rewrite_metadata(path, text=None, model_config=None, **changes):
    """Rewrite the checkpoint ``path`` with its tensors and changed metadata: ``changes``
    replace entries, ``model_config`` updates that entry, ``text`` replaces it all."""
    from safetensors.torch import save_file

    tensors, metadata = read_checkpoint(path)
    metadata.update(changes)
    metadata["model_config"].update(model_config or {})
    save_file(tensors, path, metadata={"napari_unet": text or json.dumps(metadata)})
    return path


def refuse_building(monkeypatch, module, refused: str) -> None:
    """Fail the test if ``module`` builds a UNet (``refused``: what it must refuse first)."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"a network was built from a refused {refused}")

    monkeypatch.setattr(module, "UNet", refuse)


#: The network of the hostile checkpoints and packages (2 features, depth 1).
HOSTILE_CONFIG = ModelConfig(depth=1, base_features=2)


def torch_archive(tmp_path, state_dict, compression=zipfile.ZIP_STORED):
    """A .pt file of ``state_dict`` with its entries rewritten with ``compression``."""
    reference = save_model(new_model(HOSTILE_CONFIG), tmp_path / "ref.safetensors")
    metadata = checkpoint_info(reference)
    buffer = io.BytesIO()
    torch.save({"state_dict": state_dict, "napari_unet": json.dumps(metadata)}, buffer)
    path = tmp_path / "m.pt"
    with zipfile.ZipFile(buffer) as source, zipfile.ZipFile(path, "w", compression) as target:
        for entry in source.infolist():
            target.writestr(entry.filename, source.read(entry))
    return path


@functools.cache
def _exported() -> bytes:
    """The bytes of a package of a tiny model (exported once per session)."""
    from napari_unet.io.bioimageio import export_bioimageio

    folder = Path(tempfile.mkdtemp(prefix="napari-unet-test-"))
    path = export_bioimageio(new_model(HOSTILE_CONFIG, seed=0), folder / "tiny.zip")
    data = path.read_bytes()
    path.unlink()
    folder.rmdir()
    return data


def package(tmp, name="tiny.zip", rdf=None, entries=None, state=None):
    """A copy of the tiny package; ``rdf`` edits its rdf.yaml (a dict), ``entries`` adds or
    replaces entries (name -> bytes), ``state`` replaces its state dict."""
    from bioimageio.spec.utils import read_yaml, write_yaml

    path = tmp / name
    path.write_bytes(_exported())
    if rdf is None and entries is None and state is None:
        return path
    replaced = dict(entries or {})
    if rdf is not None:
        with zipfile.ZipFile(path) as archive:
            content = read_yaml(archive.open("rdf.yaml"))
        rdf(content)
        stream = io.StringIO()
        write_yaml(content, stream)
        replaced["rdf.yaml"] = stream.getvalue().encode()
    if state is not None:
        buffer = io.BytesIO()
        torch.save(state, buffer)
        replaced["weights_state_dict.pt"] = buffer.getvalue()
    original = path.read_bytes()
    with zipfile.ZipFile(io.BytesIO(original)) as source:
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as target:
            for entry in source.infolist():
                if entry.filename not in replaced:
                    target.writestr(entry.filename, source.read(entry))
            for entry_name, data in replaced.items():
                target.writestr(entry_name, data)
    return path


def declare_size(path, name, size):
    """Rewrite the uncompressed size ``name`` declares (local and central headers)."""
    data = bytearray(path.read_bytes())
    encoded = name.encode()
    for signature, size_at, name_length_at, name_at in (
        (b"PK\x03\x04", 22, 26, 30),
        (b"PK\x01\x02", 24, 28, 46),
    ):
        start = data.find(signature)
        while start >= 0:
            (length,) = struct.unpack_from("<H", data, start + name_length_at)
            if data[start + name_at : start + name_at + length] == encoded:
                struct.pack_into("<I", data, start + size_at, size)
            start = data.find(signature, start + 4)
    path.write_bytes(bytes(data))
    return path


def tiny_state(**changes):
    """The tiny package's state dict with ``changes`` (name -> tensor)."""
    return {**new_model(HOSTILE_CONFIG, seed=0).state_dict(), **changes}


def with_weights_source(source):
    """An rdf edit (for :func:`package`) pointing the weights at ``source``."""

    def edit(rdf):
        rdf["weights"]["pytorch_state_dict"]["source"] = source
        rdf["weights"]["pytorch_state_dict"].pop("sha256", None)

    return edit


def inflating_rdf(tmp):
    """rdf.yaml declaring its own size but inflating by 16 MiB (a comment of spaces)."""
    with zipfile.ZipFile(package(tmp)) as archive:
        text = archive.read("rdf.yaml")
    path = package(tmp, entries={"rdf.yaml": text + b"#" + b" " * 2**24 + b"\n"})
    return declare_size(path, "rdf.yaml", len(text))

"""Every bad input of the reliability issue, with the message the user sees.

The table in docs/errors.md is checked against these cases (:data:`CASES`); regenerate it
with ``python scripts/update_error_docs.py``, which renders it with :func:`message_of`,
:func:`table_row` and :func:`with_table` from here.
"""

import math
import os
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch

from helpers import (
    declare_size,
    inflating_rdf,
    package,
    rewrite_metadata,
    tiny_model,
    tiny_state,
    torch_archive,
    with_weights_source,
)
from napari_unet import ModelConfig, TrainConfig, finetune, load_model, predict, save_model
from napari_unet.config import NormConfig, PredictConfig
from napari_unet.core.checkpoint import MAX_TORCH_BYTES, new_model
from napari_unet.core.normalization import normalization_stats
from napari_unet.evaluation.metrics import evaluate
from napari_unet.io.bioimageio import load_bioimageio
from napari_unet.io.data import read_image, to_channels_first
from napari_unet.io.volumes import annotated_slices

DOC = Path(__file__).resolve().parents[1] / "docs" / "errors.md"
MODEL = tiny_model()
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


def _with_metadata(tmp, **changes):
    """Load a checkpoint of MODEL whose metadata got ``changes`` (see rewrite_metadata)."""
    return load_model(rewrite_metadata(save_model(MODEL, tmp / "m.safetensors"), **changes))


def _nan_weights(tmp):
    model = tiny_model()
    with torch.no_grad():
        model.head.bias[0] = float("nan")
    return load_model(save_model(model, tmp / "nan.safetensors"))


def _torch_file(tmp, state_dict, compression=zipfile.ZIP_STORED):
    return load_model(torch_archive(tmp, state_dict, compression))


def _fifo(tmp):
    os.mkfifo(tmp / "pipe.safetensors")
    return load_model(tmp / "pipe.safetensors")


def _cli(tmp, *argv):
    """Run a sub-command's handler; its CliError (or other error) propagates."""
    from napari_unet.cli import build_parser

    args = build_parser().parse_args([str(part) for part in argv])
    args.handler(args)


def _cli_train(tmp, *options, image=None):
    tifffile.imwrite(tmp / "im.tif", IMAGE if image is None else image)
    tifffile.imwrite(tmp / "lab.tif", _two_classes())
    files = ["--images", tmp / "im.tif", "--labels", tmp / "lab.tif", "--iterations", "1"]
    new = ["--new", "--features", "4", "--depth", "2"]
    _cli(tmp, "train", *files, *new, "--output", tmp / "m.safetensors", *options)


def _predict_file(tmp, array, *options):
    tifffile.imwrite(tmp / "in.tif", array)
    checkpoint = save_model(MODEL, tmp / "m.safetensors")
    _cli(tmp, "predict", tmp / "in.tif", "--model", checkpoint, "--output", tmp / "out", *options)


def _evaluate_huge_label(tmp):
    labels = np.ones((8, 8), np.int64)
    labels[0, 0] = 2**40
    tifffile.imwrite(tmp / "pred.tif", labels)
    tifffile.imwrite(tmp / "truth.tif", np.ones((8, 8), np.uint8))
    _cli(
        tmp,
        "evaluate",
        "--pred",
        tmp / "pred.tif",
        "--truth",
        tmp / "truth.tif",
        "--kind",
        "semantic",
    )


def _evaluate(tmp, kind, array):
    tifffile.imwrite(tmp / "pred.tif", array)
    _cli(tmp, "evaluate", "--pred", tmp / "pred.tif", "--truth", tmp / "pred.tif", "--kind", kind)


def _evaluate_membranes(tmp, *options):
    instances = np.zeros((8, 8), np.uint8)
    instances[1:3, 1:3], instances[5:7, 5:7] = 1, 2
    tifffile.imwrite(tmp / "pred.tif", instances)
    tifffile.imwrite(tmp / "truth.tif", np.where(instances > 0, 0, 255).astype(np.uint8))
    _cli(tmp, "evaluate", "--pred", tmp / "pred.tif", "--truth", tmp / "truth.tif", *options)


def _bioimageio(tmp, **changes):
    """Load a bioimage.io package of a tiny model, changed by ``changes``."""
    return load_model(package(tmp, **changes))


def _bioimageio_fifo(tmp):
    os.mkfifo(tmp / "pipe.zip")
    return load_bioimageio(tmp / "pipe.zip")


def _bioimageio_bomb(tmp):
    """Three empty entries, each declaring 1.06 GiB (the most one entry may)."""
    names = [f"zeros{index}.bin" for index in range(3)]
    path = package(tmp, entries=dict.fromkeys(names, b""))
    for name in names:
        declare_size(path, name, MAX_TORCH_BYTES)
    return load_model(path)


#: A pickle that would import os (refused by torch.load(weights_only=True)).
PICKLE = b"\x80\x04\x95\x0b\x00\x00\x00\x00\x00\x00\x00\x8c\x02os\x94."
PNG_START = b"\x89PNG\r\n\x1a\n" + bytes(56)  # the signature of a PNG image


def _foreign_bioimageio(rdf):
    rdf["config"].clear()
    rdf["weights"]["pytorch_state_dict"]["architecture"]["callable"] = "OtherNet"


def _export(tmp, output="m.zip", test_image=IMAGE):
    tifffile.imwrite(tmp / "test.tif", test_image)
    checkpoint = save_model(MODEL, tmp / "m.safetensors")
    _cli(tmp, "export", checkpoint, tmp / output, "--test-image", tmp / "test.tif")


def _folder(path):
    """``path``, made a folder."""
    path.mkdir()
    return path


def _existing(path):
    """``path``, written: an output the user has not said may be replaced."""
    path.write_bytes(b"kept")
    return path


def _rerun_with_another_model(tmp):
    _predict_file(tmp, IMAGE)
    other = tiny_model(seed=5)
    from napari_unet.io.batch import PredictOptions, predict_file

    save_model(other, tmp / "other.safetensors")
    predict_file(tmp / "in.tif", tmp / "other.safetensors", tmp / "out", PredictOptions())


CASES = {
    "annotation empty": lambda tmp: _train(_labels(0)),
    "annotation with one class only": lambda tmp: _train(_labels(2)),
    "annotation shape differs from the image": lambda tmp: _train(_labels(1, (60, 64))),
    "label value above the model's classes": lambda tmp: _train(_labels(5)),
    "negative label value": lambda tmp: _train(_two_classes(corner=-1)),
    "annotation with fractional values": lambda tmp: _train(_two_classes().astype(float) / 2),
    "training diverges (learning rate far too high)": lambda tmp: list(
        finetune(tiny_model(), [IMAGE], [_two_classes()], DIVERGING)
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
    "pickle file named .pt": lambda tmp: load_model(_file(tmp, "m.pt", PICKLE)),
    "an image opened as a model": lambda tmp: load_model(_file(tmp, "m.png", PNG_START)),
    "a text file opened as a model": lambda tmp: load_model(_file(tmp, "notes.txt", b"x = 1\n")),
    "checkpoint format_version inf": lambda tmp: _with_metadata(tmp, format_version=math.inf),
    "checkpoint format_version null": lambda tmp: _with_metadata(tmp, format_version=None),
    "checkpoint format_version a list": lambda tmp: _with_metadata(tmp, format_version=[1]),
    "checkpoint format_version text": lambda tmp: _with_metadata(tmp, format_version="abc"),
    "checkpoint format_version from the future": lambda tmp: _with_metadata(tmp, format_version=99),
    "checkpoint depth 2.5": lambda tmp: _with_metadata(tmp, model_config={"depth": 2.5}),
    "checkpoint base_features 2.5": lambda tmp: _with_metadata(
        tmp, model_config={"base_features": 2.5}
    ),
    "checkpoint depth 50 (would exhaust memory)": lambda tmp: _with_metadata(
        tmp, model_config={"depth": 50}
    ),
    "checkpoint features 10^9 (would exhaust memory)": lambda tmp: _with_metadata(
        tmp, model_config={"base_features": 10**9}
    ),
    "checkpoint of a network above the parameter limit": lambda tmp: _with_metadata(
        tmp, model_config={"base_features": 1024, "depth": 8}
    ),
    "checkpoint whose weights do not fit its architecture": lambda tmp: _with_metadata(
        tmp, model_config={"base_features": 8}
    ),
    "checkpoint metadata nested 200000 deep": lambda tmp: _with_metadata(
        tmp, text="[" * 200_000 + "]" * 200_000
    ),
    "checkpoint normalisation percentiles out of range": lambda tmp: _with_metadata(
        tmp, normalization={"low": -5, "high": 120}
    ),
    "checkpoint with NaN weights": _nan_weights,
    "checkpoint that is a FIFO": _fifo,
    ".pt whose state_dict is not tensors": lambda tmp: _torch_file(tmp, {"head.bias": [1, 2]}),
    ".pt with compressed entries (could inflate to any size)": lambda tmp: _torch_file(
        tmp, {"head.bias": torch.zeros(2)}, zipfile.ZIP_DEFLATED
    ),
    "complex image": lambda tmp: predict(np.ones((32, 32), np.complex64), MODEL),
    "empty (0x0) image": lambda tmp: predict(np.zeros((0, 0)), MODEL),
    "tile_size 48.0": lambda tmp: predict(IMAGE, MODEL, tile_size=48.0),
    "PredictConfig batch_size 0": lambda tmp: PredictConfig(batch_size=0),
    "PredictConfig min_instance_size -1": lambda tmp: PredictConfig(min_instance_size=-1),
    "new model with 2.5 base features": lambda tmp: new_model(ModelConfig(base_features=2.5)),
    "normalisation percentiles out of range (API)": lambda tmp: normalization_stats(
        IMAGE, NormConfig(low=-5, high=99)
    ),
    "train --threads -1": lambda tmp: _cli_train(tmp, "--threads", "-1"),
    "train --w0 nan": lambda tmp: _cli_train(tmp, "--w0", "nan"),
    "train --sigma 0": lambda tmp: _cli_train(tmp, "--sigma", "0"),
    "train --patch-size 4996": lambda tmp: _cli_train(tmp, "--patch-size", "4996"),
    "train --patch-size 50 (not a valid input size)": lambda tmp: _cli_train(
        tmp, "--patch-size", "50"
    ),
    "train --depth 50": lambda tmp: _cli_train(tmp, "--depth", "50"),
    "train --output that is a folder": lambda tmp: _cli_train(tmp, "--output", tmp),
    "train --output named like an image": lambda tmp: _cli_train(tmp, "--output", tmp / "a.tif"),
    "train --output named like a package": lambda tmp: _cli_train(tmp, "--output", tmp / "a.zip"),
    "train --output that exists, without --overwrite": lambda tmp: _cli_train(
        tmp, "--output", _existing(tmp / "kept.safetensors")
    ),
    "train image whose channels do not fit the model": lambda tmp: _cli_train(
        tmp, image=np.zeros((2, 64, 64), np.float32)
    ),
    "train annotation of another size than its image": lambda tmp: _cli_train(
        tmp, image=np.zeros((60, 64), np.float32)
    ),
    "predict --tile-size 99999999999999999999": lambda tmp: _predict_file(
        tmp, IMAGE, "--tile-size", "99999999999999999999"
    ),
    "predict a 5-D TIFF": lambda tmp: _predict_file(tmp, np.zeros((2, 2, 2, 16, 16), np.uint8)),
    "predict --threads 0": lambda tmp: _predict_file(tmp, IMAGE, "--threads", "0"),
    "predict --min-size -1": lambda tmp: _predict_file(tmp, IMAGE, "--min-size", "-1"),
    "predict over outputs of another model": _rerun_with_another_model,
    "evaluate --kind semantic with a label of 2^40": _evaluate_huge_label,
    "evaluate(kind='semantic') with a label of 2^40 (API)": lambda tmp: evaluate(
        np.full((8, 8), 2**40, np.int64), np.ones((8, 8), np.uint8), kind="semantic"
    ),
    "evaluate --kind semantic with NaN labels": lambda tmp: _evaluate(
        tmp, "semantic", np.full((8, 8), np.nan, np.float32)
    ),
    "evaluate --kind membranes with a 3-D stack": lambda tmp: _evaluate(
        tmp, "membranes", np.ones((5, 8, 8), np.uint8)
    ),
    "evaluate --kind instances with a class mask": lambda tmp: _evaluate(
        tmp, "instances", np.pad(np.full((4, 4), 2, np.uint8), 2, constant_values=1)
    ),
    "evaluate --kind semantic with a membrane map as truth": lambda tmp: _evaluate_membranes(
        tmp, "--kind", "semantic"
    ),
    "train --batch-size 99999999999": lambda tmp: _cli_train(tmp, "--batch-size", "99999999999"),
    "predict --workers 99999999999999999999": lambda tmp: _predict_file(
        tmp, IMAGE, "--workers", "99999999999999999999"
    ),
    "bioimage.io package of another model (not exported by napari-unet)": lambda tmp: _bioimageio(
        tmp, rdf=_foreign_bioimageio
    ),
    "bioimage.io package with depth 50 (would exhaust memory)": lambda tmp: _bioimageio(
        tmp, rdf=lambda rdf: rdf["config"]["napari_unet"]["model_config"].update(depth=50)
    ),
    "bioimage.io package whose weights do not fit its architecture": lambda tmp: _bioimageio(
        tmp, state={"head.bias": torch.zeros(2)}
    ),
    "bioimage.io package with NaN weights": lambda tmp: _bioimageio(
        tmp, state=tiny_state(**{"head.bias": torch.tensor([0.0, math.nan])})
    ),
    "bioimage.io package whose weights lie outside it": lambda tmp: _bioimageio(
        tmp, rdf=with_weights_source("../w.pt")
    ),
    "bioimage.io package whose rdf.yaml declares 4 GiB (zip bomb)": lambda tmp: load_model(
        declare_size(package(tmp), "rdf.yaml", 2**32 - 1)
    ),
    "bioimage.io package whose rdf.yaml inflates beyond its declared size": lambda tmp: load_model(
        inflating_rdf(tmp)
    ),
    "bioimage.io package that is a FIFO (load_bioimageio)": _bioimageio_fifo,
    "bioimage.io package that is not a zip (load_bioimageio)": lambda tmp: load_bioimageio(
        _file(tmp, "m.zip", b"PK not a zip")
    ),
    "bioimage.io package whose config napari_unet is a list": lambda tmp: _bioimageio(
        tmp, rdf=lambda rdf: rdf["config"].update(napari_unet=[1, 2])
    ),
    "bioimage.io package whose entries declare 3.2 GiB together (zip bomb)": _bioimageio_bomb,
    "bioimage.io package whose weights declare more than they hold": lambda tmp: load_model(
        declare_size(package(tmp), "weights_state_dict.pt", 10**6)
    ),
    "bioimage.io package whose weights are a pickle": lambda tmp: _bioimageio(
        tmp, entries={"weights_state_dict.pt": PICKLE}
    ),
    "export --test-image smaller than the model's input": lambda tmp: _export(
        tmp, test_image=np.zeros((30, 30), np.float32)
    ),
    "export to a name not ending in .zip": lambda tmp: _export(tmp, output="m.txt"),
    "export to a folder": lambda tmp: _export(tmp, output=_folder(tmp / "out.zip").name),
    "export to a zip that exists, without --overwrite": lambda tmp: _export(
        tmp, output=_existing(tmp / "kept.zip").name
    ),
}


def message_of(case, folder):
    """(exception type name, one-line message) that ``CASES[case]`` raises, with what changes
    between runs and machines (``folder``, bundled names, checksums) written as placeholders."""
    with pytest.raises(Exception) as caught:
        CASES[case](folder)
    text = " ".join(str(caught.value).split())
    text = text.replace(str(folder), "<folder>")
    text = re.sub(r"\(bundled: [^)]*\)", "(bundled: ...)", text)  # changes as models are added
    text = re.sub(r"[0-9a-f]{12}\.\.\.", "<sha256>...", text)  # checksums change with versions
    return type(caught.value).__name__, text


def table_row(case, kind, message):
    return f"| {case} | `{kind}` | {message.replace('|', '/')} |"


TABLE_MARK = "<!-- table -->"
TABLE_HEADER = "| input | error | message |\n|---|---|---|\n"


def with_table(doc_text, rows):
    """``doc_text`` with everything after :data:`TABLE_MARK` replaced by a table of ``rows``."""
    return doc_text.split(TABLE_MARK)[0] + TABLE_MARK + "\n" + TABLE_HEADER + "\n".join(rows) + "\n"


def documented_cases(doc_text):
    """The case names of the table's rows, in the order they appear."""
    table = doc_text.split(TABLE_MARK)[1].split(TABLE_HEADER, 1)[1]
    return [line[2:].split(" | `")[0] for line in table.splitlines() if line.startswith("| ")]


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_gets_a_clear_message_listed_in_the_docs(case, tmp_path):
    kind, message = message_of(case, tmp_path)
    assert kind != "Exception" and len(message) > 20
    rows = DOC.read_text(encoding="utf-8").splitlines()
    expected = table_row(case, kind, message)
    found = next((row for row in rows if row.startswith(f"| {case} |")), None)
    # volatile parts (library versions' wording, offsets) are compared up to digits
    assert found is not None, f"docs/errors.md lacks a row for {case!r}"
    assert re.sub(r"\d+", "N", found) == re.sub(r"\d+", "N", expected)


def test_the_docs_list_every_case_once_and_nothing_else():
    # in the order scripts/update_error_docs.py writes them: no stale or hand-added rows
    assert documented_cases(DOC.read_text(encoding="utf-8")) == list(CASES)


def test_a_regenerated_table_lists_the_rows_given():
    text = with_table(
        "# Title\n\nintro\n" + TABLE_MARK + "\n| old | `E` | stale |\n", ["| a | `E` | m |"]
    )
    assert text == "# Title\n\nintro\n" + TABLE_MARK + "\n" + TABLE_HEADER + "| a | `E` | m |\n"
    assert documented_cases(text) == ["a"]

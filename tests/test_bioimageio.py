"""bioimage.io export and import, checked by bioimageio.core's own model test, offline."""

import json
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import torch

import napari_unet as nu
from helpers import tiny_model
from napari_unet.cli import main
from napari_unet.core.checkpoint import CheckpointError, new_model
from napari_unet.io.bioimageio import (
    ARCHITECTURE_CALLABLE,
    CONFIG_KEY,
    export_bioimageio,
    is_bioimageio_package,
    load_bioimageio,
)
from napari_unet.io.synthetic import synthetic_nuclei

pytestmark = [
    # bioimageio.core reads the TorchScript weights with torch.jit.load (deprecated in torch 2.13)
    pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning"),
    pytest.mark.usefixtures("no_network"),  # export, test and import must work offline
]


@pytest.fixture
def keep_global_rng():
    """bioimageio.core's test reseeds numpy and torch; restore their state afterwards."""
    numpy_state, torch_state = np.random.get_state(), torch.get_rng_state()  # noqa: NPY002
    yield
    np.random.set_state(numpy_state)  # noqa: NPY002
    torch.set_rng_state(torch_state)


@pytest.fixture(scope="module")
def nuclei_zip(tmp_path_factory):
    path = tmp_path_factory.mktemp("bioimageio") / "nuclei.zip"
    return export_bioimageio(nu.load_model("nuclei"), path, authors=["Test Author"])


def _bioimageio_test(path):
    from bioimageio.core import test_model

    summary = test_model(path)
    failed = [(d.loc, d.name, [e.msg for e in d.errors]) for d in summary.details if d.errors]
    return summary, failed


def _read_rdf(path):
    from bioimageio.spec.utils import read_yaml

    with zipfile.ZipFile(path) as archive:
        return read_yaml(archive.open("rdf.yaml"))


def _rewrite_rdf(source, target, edit):
    from bioimageio.spec.utils import write_yaml

    rdf = _read_rdf(source)
    edit(rdf)
    with zipfile.ZipFile(source) as original, zipfile.ZipFile(target, "w") as copy:
        for name in original.namelist():
            if name != "rdf.yaml":
                copy.writestr(name, original.read(name))
        with copy.open("rdf.yaml", "w") as stream:
            write_yaml(rdf, stream)
    return target


def test_exported_nuclei_passes_the_bioimageio_test_command(nuclei_zip, tmp_path):
    """``bioimageio test OUT.zip``, bioimageio.core's own model test, as a user runs it."""
    summary_path = tmp_path / "summary.json"
    command = [sys.executable, "-m", "bioimageio.core", "test", str(nuclei_zip)]
    result = subprocess.run(
        [*command, "--summary", str(summary_path)], capture_output=True, text=True
    )
    summary = json.loads(summary_path.read_text(encoding="utf-8"))
    failed = [d for d in summary["details"] if d["status"] == "failed"]
    assert result.returncode == 0 and summary["status"] == "passed", failed
    reproduced = {
        d["loc"][-1] for d in summary["details"] if d["name"].startswith("Reproduce test outputs")
    }
    assert reproduced == {"pytorch_state_dict", "torchscript"}
    with zipfile.ZipFile(nuclei_zip) as archive:
        names = set(archive.namelist())
    assert {"rdf.yaml", "README.md", "cover.png", "unet_architecture.py"} <= names


def test_rdf_describes_the_valid_geometry_and_normalisation(nuclei_zip):
    model = nu.load_model("nuclei")
    rdf = _read_rdf(nuclei_zip)
    (source,), (target,) = rdf["inputs"], rdf["outputs"]
    y_in = next(axis for axis in source["axes"] if axis.get("id") == "y")
    y_out = next(axis for axis in target["axes"] if axis.get("id") == "y")
    assert y_in["size"] == {"min": model.min_input_size, "step": 2**model.config.depth}
    assert y_out["size"]["offset"] == -2 * model.halo and "halo" not in y_out
    scale_range = next(step for step in source["preprocessing"] if step["id"] == "scale_range")
    assert scale_range["kwargs"]["min_percentile"] == model.metadata["normalization"]["low"]
    assert scale_range["kwargs"]["max_percentile"] == model.metadata["normalization"]["high"]
    assert scale_range["kwargs"]["axes"] == ["y", "x"]
    with zipfile.ZipFile(nuclei_zip) as archive:
        test_input = np.load(archive.open("test_input.npy"))
        test_output = np.load(archive.open("test_output.npy"))
    assert model.is_valid_input_size(test_input.shape[-1])
    assert test_output.shape[-2:] == model.output_shape(test_input.shape)
    np.testing.assert_allclose(test_output.sum(axis=1), 1.0, atol=1e-5)


def test_loaded_package_predicts_like_the_original(nuclei_zip):
    original = nu.load_model("nuclei")
    loaded = nu.load_model(nuclei_zip)
    assert loaded.config == original.config
    for key in ("normalization", "class_names", "description", "training_history"):
        assert loaded.metadata[key] == original.metadata[key]
    assert loaded.metadata["source"] == str(nuclei_zip)
    image = synthetic_nuclei((230, 270), rng=3)[0]
    difference = np.abs(nu.predict(image, loaded) - nu.predict(image, original)).max()
    assert difference < 1e-4


def test_the_package_keeps_the_parent_files_name_not_its_folders(tmp_path):
    model = nu.load_model("nuclei")
    model.metadata["parent"] = "/home/me/lab/cells.safetensors as it was before this run"
    path = export_bioimageio(model, tmp_path / "cells.zip", authors=["Test Author"])
    stored = _read_rdf(path)["config"][CONFIG_KEY]
    assert stored["parent"] == "cells.safetensors as it was before this run"
    assert "source" not in stored and str(tmp_path) not in str(_read_rdf(path))


def test_same_padding_model_describes_its_halo_and_round_trips(tmp_path, keep_global_rng):
    """Also the architecture file's other branches: batch norm, bilinear up-sampling."""
    config = nu.ModelConfig(
        depth=2, base_features=4, padding="same", batch_norm=True, upsampling="bilinear"
    )
    model = new_model(config, seed=1)
    image = synthetic_nuclei((150, 140), rng=2)[0]
    path = export_bioimageio(model, tmp_path / "same.zip", test_image=image)
    summary, failed = _bioimageio_test(path)
    assert summary.status == "passed", failed
    (target,) = _read_rdf(path)["outputs"]
    y_out = next(axis for axis in target["axes"] if axis.get("id") == "y")
    assert y_out["halo"] == model.halo and y_out["size"].get("offset", 0) == 0
    with zipfile.ZipFile(path) as archive:
        test_input = np.load(archive.open("test_input.npy"))
    assert test_input.shape == (1, 1, 140, 140)  # the centre, at the largest valid size
    np.testing.assert_array_equal(test_input[0, 0], image[5:145])
    loaded = load_bioimageio(path)
    assert np.abs(nu.predict(image, loaded) - nu.predict(image, model)).max() < 1e-4


def test_test_image_smaller_than_the_model_input_is_refused(tmp_path):
    model = tiny_model()
    with pytest.raises(ValueError, match="smaller than the model's smallest test input"):
        export_bioimageio(model, tmp_path / "x.zip", test_image=np.zeros((30, 30)))
    assert not (tmp_path / "x.zip").exists() and not list(tmp_path.iterdir())


def test_package_without_napari_unet_config_loads_from_the_architecture(nuclei_zip, tmp_path):
    path = _rewrite_rdf(nuclei_zip, tmp_path / "plain.zip", lambda rdf: rdf["config"].clear())
    loaded = load_bioimageio(path)
    original = nu.load_model("nuclei")
    assert loaded.config == original.config
    assert loaded.metadata["class_names"] == original.metadata["class_names"]
    assert loaded.info.normalization == original.info.normalization  # clip step read too
    assert loaded.info.normalization.clip == 5.0
    for key, value in original.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value)

    def without_clip(rdf):
        rdf["config"].clear()
        steps = rdf["inputs"][0]["preprocessing"]
        rdf["inputs"][0]["preprocessing"] = [step for step in steps if step["id"] != "clip"]

    unclipped = load_bioimageio(_rewrite_rdf(nuclei_zip, tmp_path / "raw.zip", without_clip))
    assert unclipped.info.normalization.clip is None  # clipped only where the package says so

    def one_sided(rdf):
        rdf["config"].clear()
        step = next(s for s in rdf["inputs"][0]["preprocessing"] if s["id"] == "clip")
        step["kwargs"] = {"min": 0.0, "max": 1.0}

    with pytest.raises(CheckpointError, match=r"its clip step \[0.0, 1.0\] is not symmetric"):
        load_bioimageio(_rewrite_rdf(nuclei_zip, tmp_path / "one_sided.zip", one_sided))


def test_other_bioimageio_models_are_refused(nuclei_zip, tmp_path):
    def foreign(rdf):
        rdf["config"].clear()
        rdf["weights"]["pytorch_state_dict"]["architecture"]["callable"] = "OtherNet"

    assert ARCHITECTURE_CALLABLE != "OtherNet"
    path = _rewrite_rdf(nuclei_zip, tmp_path / "foreign.zip", foreign)
    assert is_bioimageio_package(path)
    with pytest.raises(CheckpointError, match="not one exported by napari-unet"):
        nu.load_model(path)


def test_cli_export_writes_a_package(tmp_path, capsys):
    checkpoint = nu.save_model(tiny_model(), tmp_path / "tiny.safetensors")
    out = tmp_path / "tiny.zip"
    args = ["export", str(checkpoint), str(out), "--format", "bioimageio", "--name", "tiny U-Net"]
    assert main([*args, "--author", "A. Person", "--author", "B. Person"]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    assert is_bioimageio_package(out)
    rdf = _read_rdf(out)
    assert rdf["name"] == "tiny U-Net"
    assert [author["name"] for author in rdf["authors"]] == ["A. Person", "B. Person"]
    assert main(["export", str(checkpoint), str(tmp_path / "tiny.txt")]) == 2
    assert "is a .zip file" in capsys.readouterr().err
    notes = tmp_path / "notes.txt"
    notes.write_text("not pixels")
    args = ["export", str(checkpoint), str(tmp_path / "t.zip"), "--test-image", str(notes)]
    assert main(args) == 2
    assert f"--test-image {notes}: not an image format napari-unet reads" in capsys.readouterr().err


def test_the_package_readme_says_what_napari_unet_adds_to_the_network():
    from napari_unet.io._bioimageio_rdf import _readme

    em = nu.load_model("em-membranes")  # asks for the 4 rotations and its own threshold
    text = _readme(em, em.info, "em", "EM membranes", 188)
    assert "over its 4 rotations (test-time augmentation)" in text
    threshold = em.info.background_threshold
    assert f"calls a pixel membrane only where its probability exceeds {threshold:g}" in text
    assert "closes gaps in the boundaries" in text
    plain = nu.load_model("nuclei")  # neither: only the closing and the filling
    text = _readme(plain, plain.info, "n", "nuclei", 188)
    assert "closes gaps in the boundaries" in text
    assert "joins to each object what it encloses" in text
    assert "test-time augmentation" not in text and "exceeds" not in text
    assert "mirrors each image edge by the 44-pixel halo" in text  # 44 is not 0 mod 8
    assert "max-pools fall 4 pixels off those of a pass over the image itself" in text
    plain.metadata.update(background_threshold=0.82, close_gaps=False)  # a new model's rules
    text = _readme(plain, plain.info, "n", "nuclei", 188)
    assert "closes gaps" not in text and "exceeds 0.82" in text


def test_the_package_readme_puts_fine_tunes_before_what_their_start_held_out():
    from napari_unet.io._bioimageio_rdf import _readme

    em = nu.load_model("em-membranes")
    held_out = "held out, never used: ISBI slices 17-19"
    assert f"Trained on: {em.info.trained_on}." in _readme(em, em.info, "em", "EM", 188)
    em.metadata["training_history"] = [{"iterations": 100, "image_layer": "17"}]
    text = _readme(em, em.info, "em", "EM", 188)
    said = "Trained on: strokes on “17” in napari (1 run), fine-tuning a model trained on: "
    assert said in text and text.index(said) < text.index(held_out)


def _sparse_image():
    """200 x 200 uint16, zero but for 30 pixels: its 1st and 99.8th percentiles are equal."""
    image = np.zeros((200, 200), np.uint16)
    image.ravel()[np.random.default_rng(0).choice(image.size, 30, replace=False)] = 500
    return image


def _bioimageio_expected_output(model, path):
    """The test output that ``bioimageio test`` expects, from the package's own rdf.yaml."""
    (source,) = _read_rdf(path)["inputs"]
    kwargs = next(step for step in source["preprocessing"] if step["id"] == "scale_range")["kwargs"]
    with zipfile.ZipFile(path) as archive:
        test_input = np.load(archive.open("test_input.npy")).astype(np.float64)
        test_output = np.load(archive.open("test_output.npy"))
    percentiles = [kwargs["min_percentile"], kwargs["max_percentile"]]
    low, high = np.percentile(test_input, percentiles, axis=(-2, -1), keepdims=True)
    eps = kwargs.get("eps", 1e-6)  # bioimage.io's scale_range: eps > 0, 1e-6 by default
    scaled = ((test_input - low) / (high - low + eps)).astype(np.float32)
    for step in source["preprocessing"]:
        if step["id"] == "clip":  # after scale_range, as the package lists them
            scaled = np.clip(scaled, step["kwargs"]["min"], step["kwargs"]["max"])
    network_input = torch.from_numpy(scaled)
    with torch.no_grad():
        expected = torch.softmax(model(network_input), dim=1).numpy()
    return test_output, expected


@pytest.mark.parametrize("kind", ["sparse", "tiny range"])
def test_test_output_is_normalised_as_bioimageio_for_flat_and_tiny_ranges(tmp_path, kind):
    """Where napari-unet's normalisation and bioimage.io's scale_range differ."""
    model = nu.load_model("nuclei")
    if kind == "sparse":
        image = _sparse_image()
    else:  # a range of 1e-3, where bioimage.io's eps (1e-6) is not negligible
        image = synthetic_nuclei((200, 200), rng=4)[0].astype(np.float64)
        image = (image - image.min()) / (image.max() - image.min()) * 1e-3
    path = export_bioimageio(model, tmp_path / "package.zip", test_image=image)
    test_output, expected = _bioimageio_expected_output(model, path)
    np.testing.assert_allclose(test_output, expected, atol=1e-5)


def test_sparse_test_image_passes_the_bioimageio_test(tmp_path, keep_global_rng):
    """The reviewer's case: 30 bright pixels; the package failed, export still exited 0."""
    model = tiny_model()
    path = export_bioimageio(model, tmp_path / "sparse.zip", test_image=_sparse_image())
    summary, failed = _bioimageio_test(path)
    assert summary.status == "passed", failed


def test_unknown_licence_is_refused_at_once_with_a_short_message(tmp_path, capsys):
    model = tiny_model()
    with pytest.raises(ValueError, match=r"unknown \(or deprecated\) SPDX licence 'FOO-1'"):
        export_bioimageio(model, tmp_path / "x.zip", license="FOO-1")
    assert not list(tmp_path.iterdir())
    missing = tmp_path / "missing.safetensors"  # the licence is checked before the model is read
    assert main(["export", str(missing), str(tmp_path / "x.zip"), "--license", "FOO-1"]) == 2
    error = capsys.readouterr().err
    assert "SPDX licence 'FOO-1'; e.g. MIT, CC-BY-4.0, BSD-3-Clause" in error
    assert len(error) < 300 and error.count("\n") == 1


def test_pydantic_validation_errors_are_shortened_on_the_command_line():
    from bioimageio.spec.model import v0_5

    from napari_unet.cli._common import MAX_VALIDATION_CHARS, one_line

    with pytest.raises(ValueError) as caught:
        v0_5.LicenseId("FOO-1")
    assert len(str(caught.value)) > 10_000  # pydantic lists every SPDX identifier
    text = one_line(caught.value)
    assert len(text) <= MAX_VALIDATION_CHARS and "\n" not in text
    assert text.startswith("invalid value (Input should be '0BSD'") and text.endswith("...")
    assert one_line(ValueError("short\nmessage")) == "short message"

import json
import re

import numpy as np
import pytest
import tifffile

from napari_unet import load_model, predict
from napari_unet.cli import main
from napari_unet.core.checkpoint import bundled_models


@pytest.mark.parametrize("name", ["em-membranes", "nuclei"])
def test_bundled_model_is_small_documented_and_runs(name):
    path = bundled_models()[name]
    assert path.stat().st_size <= 10 * 2**20
    model = load_model(name)
    assert model.config.padding == "valid"
    assert model.metadata["trained_on"] and "held out" in model.metadata["trained_on"]
    assert len(model.metadata["class_names"]) == model.config.n_classes == 2
    assert model.metadata["training_history"]
    probabilities = predict(np.random.default_rng(0).random((50, 70)), model)
    assert probabilities.shape == (2, 50, 70) and np.isfinite(probabilities).all()


def test_bundled_nuclei_says_what_the_training_script_says():
    """The checkpoint's provenance is the recipe of the script that reproduces it.

    (``em-membranes`` comes from ``benchmarks/bench_width.py``, as the README says.)
    """
    import importlib
    import importlib.util
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "scripts" / "train_bundled.py"
    spec = importlib.util.spec_from_file_location("train_bundled", script)
    train_bundled = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(train_bundled)
    recipe = train_bundled.RECIPES["nuclei"]
    metadata = load_model("nuclei").metadata
    for key in ("trained_on", "description", "class_names"):
        assert metadata[key] == recipe[key], key
    for module_name, function in re.findall(r"(napari_unet[\w.]*)\.(\w+)", recipe["trained_on"]):
        assert callable(getattr(importlib.import_module(module_name), function))
    # run without --output, the script writes to the current folder, never over a bundled file
    bundled = {path.resolve() for path in train_bundled.MODELS.glob("*.safetensors")}
    for name in train_bundled.RECIPES:
        output = train_bundled.default_output(name)
        assert not output.is_absolute() and output.resolve() not in bundled


def test_models_command_lists_bundled_models(capsys):
    assert main(["models"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert set(lines) == {"em-membranes", "nuclei"}
    assert lines["em-membranes"].endswith(
        "(Predict: averages its 4 rotations; membrane only above p = 0.85; gaps in boundaries "
        "closed)"
    )
    assert lines["nuclei"].endswith("(Predict: gaps in boundaries closed)")


def test_the_models_summary_says_when_a_model_leaves_gaps_open():
    from napari_unet.cli.info import _predict_defaults

    said = _predict_defaults({"background_threshold": 0.82, "close_gaps": False})
    assert said == " (Predict: background only above p = 0.82; gaps in boundaries left open)"
    assert _predict_defaults({"close_gaps": True}) == " (Predict: gaps in boundaries closed)"


def test_bundled_name_accepted_where_a_path_is(tmp_path, capsys):
    tifffile.imwrite(tmp_path / "cells.tif", np.random.default_rng(0).random((60, 60)))
    args = ["predict", str(tmp_path / "cells.tif"), "--model", "nuclei", "--output"]
    assert main([*args, str(tmp_path / "out")]) == 0
    assert tifffile.imread(tmp_path / "out" / "cells_mask.tif").shape == (60, 60)
    assert main(["info", "em-membranes"]) == 0
    assert json.loads(capsys.readouterr().out.split("\n", 1)[1])["class_names"][0] == "membrane"


def test_demo_writes_everything(tmp_path, capsys):
    out = tmp_path / "demo"
    args = ["demo", "--output", str(out), "--size", "160", "--seconds", "2", "--device", "cpu"]
    assert main([*args, "--rounds", "2"]) == 0
    for name in (
        "mask.tif",
        "instances.tif",
        "probabilities.tif",
        "weight_map.tif",
        "finetuned.safetensors",
        "demo.png",
        "summary.json",
        "scribbles.tif",
    ):
        assert (out / name).stat().st_size > 0, name
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert 0 <= summary["before"]["f1"] <= 1 and 0 <= summary["after"]["f1"] <= 1
    assert summary["iterations"] >= 1
    assert [row["round"] for row in summary["rounds"]] == [0, 1, 2]
    assert summary["rounds"][1]["painted_pixels"] <= summary["rounds"][2]["painted_pixels"]
    assert summary["after"] == summary["rounds"][2]["held_out"]
    strokes = tifffile.imread(out / "scribbles.tif")
    assert strokes.max() > 0 and not strokes[:, 80:].any()  # the right half is never painted
    mask = tifffile.imread(out / "mask.tif")
    assert mask.shape == (160, 160) and set(np.unique(mask)) <= {1, 2}
    weights = tifffile.imread(out / "weight_map.tif")
    assert weights.dtype == np.float32 and weights.max() > 1.5  # border term between nuclei
    assert load_model(out / "finetuned.safetensors").metadata["parent"] == "nuclei"
    printed = capsys.readouterr().out
    assert "round 2:" in printed and "right half (never painted)" in printed
    wrote = printed.strip().splitlines()[-1]
    assert wrote.startswith(f"wrote {out}/: ")
    assert sorted(wrote.split(": ", 1)[1].split()) == sorted(p.name for p in out.iterdir())


def test_demo_refuses_zero_rounds(tmp_path, capsys):
    assert main(["demo", "--output", str(tmp_path / "demo"), "--rounds", "0"]) == 2
    assert "--rounds must be at least 1, got 0" in capsys.readouterr().err
    assert not (tmp_path / "demo").exists()


def test_demo_refuses_a_sample_too_small_to_paint(tmp_path, capsys):
    assert main(["demo", "--output", str(tmp_path / "demo"), "--size", "50"]) == 2
    assert "--size must be at least 96 px, got 50" in capsys.readouterr().err
    assert not (tmp_path / "demo").exists()

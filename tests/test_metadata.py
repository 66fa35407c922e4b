"""ModelMetadata: the typed metadata reads and writes checkpoints' JSON exactly as before."""

import json

import pytest
from safetensors import safe_open
from safetensors.torch import save_file

from napari_unet import ModelConfig, NormConfig, WeightConfig, __version__
from napari_unet.core.checkpoint import (
    METADATA_KEY,
    bundled_models,
    load_model,
    new_model,
    read_checkpoint,
    save_model,
)
from napari_unet.core.metadata import ModelMetadata, TrainingRun

SMALL = ModelConfig(base_features=4, depth=2, n_classes=3)


def _header_text(path) -> str:
    with safe_open(str(path), framework="pt") as file:
        return file.metadata()[METADATA_KEY]


def _defaults_before(config: ModelConfig) -> dict:
    """``default_metadata`` as it was written before ModelMetadata."""
    foreground = [f"class {label}" for label in range(2, config.n_classes + 1)]
    if config.n_classes == 2:
        foreground = ["foreground"]
    return {
        "normalization": NormConfig().to_dict(),
        "class_names": ["background", *foreground],
        "description": "freshly initialised U-Net",
        "trained_on": None,
        "parent": None,
        "training_history": [],
    }


def _loaded_before(header: dict, source: str) -> dict:
    """``model.metadata`` as ``load_model`` built it before ModelMetadata."""
    metadata = json.loads(json.dumps(header))
    config = ModelConfig.from_dict(metadata.pop("model_config"))
    for key in ("format_version", "package_version"):
        metadata.pop(key, None)
    return {**_defaults_before(config), **metadata, "source": source}


def _saved_before(metadata: dict, config: ModelConfig) -> dict:
    """The JSON ``save_model`` wrote before ModelMetadata."""
    header = dict(metadata)
    header.update(format_version=1, package_version=__version__, model_config=config.to_dict())
    return header


def _same(a: dict, b: dict) -> None:
    """Equal as JSON text: same keys, same order, same values."""
    assert json.dumps(a) == json.dumps(b)


@pytest.mark.parametrize("name", sorted(bundled_models()))
def test_bundled_models_round_trip_unchanged(name, tmp_path):
    path = bundled_models()[name]
    text = _header_text(path)
    header = json.loads(text)
    info = ModelMetadata.from_dict(header)
    assert json.dumps(info.to_header()) == text  # byte for byte
    model = load_model(name)
    assert info.model_config == model.config  # the architecture the weights were loaded into
    assert info.model_config.to_dict() == header["model_config"]
    assert info.format_version == header["format_version"] == 1
    _same(model.metadata, _loaded_before(header, name))
    assert model.info.class_names == tuple(header["class_names"])
    assert model.info.normalization == NormConfig.from_dict(header["normalization"])
    assert len(model.info.training_history) == len(header["training_history"])
    saved = save_model(model, tmp_path / "copy.safetensors")
    assert _header_text(saved) == json.dumps(_saved_before(model.metadata, model.config))
    reloaded = load_model(saved)
    _same(reloaded.metadata, {**model.metadata, "source": str(saved)})


def test_bundled_em_model_keeps_the_keys_it_does_not_type():
    info = load_model("em-membranes").info
    kept = {"selected_on", "held_out_test", "background_threshold_chosen_on"}
    assert set(info.extra) == kept | {"normalization"}  # written before clip: kept as read
    assert info.normalization.clip == NormConfig().clip  # the field it lacks: the default
    assert info.background_threshold == 0.85  # typed (scripts/calibrate_bundled.py)
    assert info.test_time_augmentation is True  # typed (scripts/bundle_candidate.py --tta)
    runs = info.training_history
    recorded = json.loads(_header_text(bundled_models()["em-membranes"]))["training_history"]
    assert len(runs) == len(recorded)
    for run, raw in zip(runs, recorded):
        assert run.iterations == raw["iterations"] and type(run.iterations) is int
        assert run.distilled is raw["distilled"]  # a JSON boolean stays a bool
        assert run.bn_recalibration_passes == raw["bn_recalibration_passes"]
    assert info.trained_weight_config == WeightConfig.from_dict(runs[-1].weight_config)


def test_bundled_nuclei_model_reads_runs_of_an_older_version():
    runs = load_model("nuclei").info.training_history
    recorded = json.loads(_header_text(bundled_models()["nuclei"]))["training_history"]
    assert "bn_recalibration_passes" not in recorded[0] and "distilled" not in recorded[0]
    assert runs[0].bn_recalibration_passes is None  # older runs recorded fewer keys
    assert "bn_recalibration_passes" not in runs[0].to_dict()
    assert runs[0].distilled is None
    assert [run.iterations for run in runs] == [raw["iterations"] for raw in recorded]
    assert all(type(run.iterations) is int for run in runs)


def test_a_value_kept_as_read_gives_way_to_a_change():
    """A header written before ``clip`` existed is written back as read, until changed;
    so is any typed key of an unexpected form."""
    header = {"normalization": {"low": 1.0, "high": 99.8}}
    info = ModelMetadata.from_dict(header)
    assert info.to_dict()["normalization"] == {"low": 1.0, "high": 99.8}  # as read
    changed = info.replace(normalization=NormConfig(clip=None))
    assert changed.to_dict()["normalization"] == {"low": 1.0, "high": 99.8, "clip": None}
    odd = ModelMetadata.from_dict({"normalization": [1, 99]})  # unreadable: the default
    assert odd.to_dict()["normalization"] == [1, 99]
    text = ModelMetadata.from_dict({"background_threshold": "0.85"})  # any key kept as read
    assert text.to_dict()["background_threshold"] == "0.85"
    calibrated = text.replace(background_threshold=0.8)  # e.g. a fine-tune's calibration
    assert calibrated.to_dict()["background_threshold"] == 0.8


def test_an_old_format_header_loads_and_saves_as_before(tmp_path):
    """No format_version, keys missing or in another order, a key this version does not know."""
    reference = save_model(new_model(SMALL), tmp_path / "ref.safetensors")
    tensors, _ = read_checkpoint(reference)
    header = {
        "model_config": SMALL.to_dict(),
        "class_names": ["bg", "a", "b"],
        "lab_notebook": {"page": 12, "note": None},
        "normalization": {"low": 2, "high": 99.0},
        "training_history": [{"iterations": 3, "loss": 0.5, "images": [[1, 64, 64]]}],
    }
    old = tmp_path / "old.safetensors"
    save_file(tensors, str(old), metadata={METADATA_KEY: json.dumps(header)})
    assert json.dumps(ModelMetadata.from_dict(header).to_header()) != json.dumps(header)
    model = load_model(old)
    _same(model.metadata, _loaded_before(header, str(old)))
    info = model.info
    assert info.format_version is None and info.trained_on is None
    assert info.normalization == NormConfig(low=2, high=99.0)
    assert info.extra == {  # both written back as read: normalization lacks clip
        "lab_notebook": {"page": 12, "note": None},
        "normalization": {"low": 2, "high": 99.0},
    }
    assert info.training_history[0].images == ((1, 64, 64),)
    assert info.training_history[0].extra == {"loss": 0.5}
    saved = save_model(model, tmp_path / "new.safetensors")
    assert _header_text(saved) == json.dumps(_saved_before(model.metadata, model.config))


def test_a_new_model_has_the_default_metadata():
    for n_classes in (2, 3):
        config = SMALL.replace(n_classes=n_classes)
        _same(new_model(config).metadata, _defaults_before(config))
    assert ModelMetadata.new(SMALL) == ModelMetadata.of(new_model(SMALL)).replace(model_config=None)


@pytest.mark.parametrize(
    "key, value",
    [
        ("normalization", {"low": 1.0, "high": 99.8, "clip": True}),
        ("normalization", {"high": 99.0}),
        ("normalization", "percentile"),
        ("class_names", None),
        ("training_history", {"not": "a list"}),
        ("training_history", [{"iterations": 1}, 7]),
        ("description", None),
    ],
)
def test_values_of_an_unexpected_form_are_written_back_as_read(key, value):
    metadata = {**_defaults_before(SMALL), key: value}
    info = ModelMetadata.from_dict(metadata, SMALL)
    _same(info.to_dict(), metadata)
    assert isinstance(info.normalization, NormConfig)
    assert isinstance(info.class_names, tuple) and isinstance(info.training_history, tuple)


def test_the_source_is_dropped_once_trained_from():
    info = ModelMetadata.from_dict({"source": "nuclei", "parent": None}, SMALL)
    assert info.to_dict()["source"] == "nuclei"
    assert "source" not in info.replace(source=None).to_dict()


def test_the_latest_valid_weight_config_is_the_trained_one():
    runs = (
        TrainingRun(weight_config={"w0": 3.0, "sigma": 2.0, "class_balance": False}),
        TrainingRun(weight_config={"w0": 10.0, "sigma": 0.0}),  # refused since
        TrainingRun(iterations=4),
    )
    info = ModelMetadata(training_history=runs)
    assert info.trained_weight_config == WeightConfig(w0=3.0, sigma=2.0, class_balance=False)
    assert ModelMetadata().trained_weight_config == WeightConfig()


def test_a_training_run_written_from_fields_keeps_the_recorded_order():
    run = TrainingRun(date="2026-01-01T00:00:00+00:00", iterations=2, images=((1, 8, 8),))
    assert list(run.to_dict()) == ["date", "iterations", "images"]
    assert run.to_dict()["images"] == [[1, 8, 8]]
    assert TrainingRun.from_dict(run.to_dict()) == run


@pytest.mark.parametrize(
    "key, default",
    [
        ("background_threshold", 0.5),
        ("close_gaps", True),
        ("test_time_augmentation", False),
        ("test_time_transforms", "dihedral"),
    ],
)
def test_a_default_stored_explicitly_is_written_back(key, default):
    read = ModelMetadata.from_dict({key: default})
    assert read.to_dict()[key] == default
    assert key not in ModelMetadata.from_dict({}).to_dict()


def test_a_model_that_leaves_gaps_open_says_so_and_a_bad_flag_is_kept_unused():
    info = ModelMetadata.from_dict({"close_gaps": False}, SMALL)
    assert info.close_gaps is False
    assert info.to_dict()["close_gaps"] is False
    odd = ModelMetadata.from_dict({"close_gaps": "no"}, SMALL)
    assert odd.close_gaps is True  # not a bool: written back as read, not obeyed
    assert odd.to_dict()["close_gaps"] == "no"

"""``napari-unet info`` (a checkpoint's metadata) and ``napari-unet models`` (the bundled ones)."""

from __future__ import annotations

import argparse
import sys

from ._common import CliError, print_json


def add_parsers(commands: argparse._SubParsersAction) -> None:
    """Register ``info`` and ``models``."""
    info = commands.add_parser("info", help="print a checkpoint's metadata as JSON")
    info.add_argument(
        "checkpoint", help="bundled model name, checkpoint path or bioimage.io package (.zip)"
    )
    info.set_defaults(handler=run_info)
    models = commands.add_parser("models", help="list the bundled models")
    models.set_defaults(handler=run_models)


def run_info(args: argparse.Namespace) -> None:
    """``napari-unet info``: metadata as JSON."""
    from ..core.checkpoint import checkpoint_info

    try:
        info = checkpoint_info(args.checkpoint)
    except ImportError as error:  # a bioimage.io package without bioimageio.core
        raise CliError(str(error)) from error
    print_json(_with_learnt_from(info))


def _with_learnt_from(info: dict) -> dict:
    """``info`` with "learnt_from" after "trained_on": what the model learnt from in words,
    as the Model section says it (a model trained only in napari has no ``trained_on``,
    but its runs name their image layers)."""
    from ..core.metadata import ModelMetadata
    from ..core.trained_on import trained_on_words

    if "trained_on" not in info and "training_history" not in info:
        return info  # no napari-unet metadata to read it from
    words = trained_on_words(ModelMetadata.from_dict(info))
    said = {}
    for key, value in info.items():
        said[key] = value
        if key == "trained_on":
            said["learnt_from"] = words
    return said if "learnt_from" in said else {**said, "learnt_from": words}


def run_models(args: argparse.Namespace) -> None:
    """``napari-unet models``: one line per bundled model."""
    from ..core.checkpoint import bundled_models, checkpoint_info

    models = bundled_models()
    if not models:
        print("no bundled models installed", file=sys.stderr)
    for name in models:
        info = checkpoint_info(name)
        print(f"{name:16s} {info.get('description', '')}{_predict_defaults(info)}")


def _predict_defaults(metadata: dict) -> str:
    """What Predict does by default for a model beyond one pass and the most probable class
    (its test-time augmentation, background threshold and gap closing), as " (...)"."""
    from ..core.engine import TEST_TIME_TRANSFORM_WORDS
    from ..core.metadata import ModelMetadata

    info = ModelMetadata.from_dict(metadata)
    said = []
    if info.test_time_augmentation:
        said.append(f"averages its {TEST_TIME_TRANSFORM_WORDS[info.test_time_transforms]}")
    if info.background_threshold != 0.5:
        background = info.class_names[0] if info.class_names else "background"
        said.append(f"{background} only above p = {info.background_threshold:g}")
    said.append(f"gaps in boundaries {'closed' if info.close_gaps else 'left open'}")
    return f" (Predict: {'; '.join(said)})"

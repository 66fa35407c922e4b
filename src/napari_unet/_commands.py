"""Handlers of the ``napari-unet`` sub-commands (see :mod:`napari_unet.cli`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from ._progress import ProgressBar
from .cli import CliError, print_json


def _load(name_or_path: str, device: str = "cpu"):
    from .checkpoint import load_model
    from .devices import resolve_device

    return load_model(name_or_path, device=resolve_device(device))


def _writable_folder(folder: Path) -> Path:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise CliError(f"cannot create output folder {folder}: {error.strerror}") from error
    probe = folder / ".napari-unet-write-test"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise CliError(f"output folder {folder} is not writable: {error.strerror}") from error
    return folder


def segment_image(
    image,
    model,
    *,
    tile_size=None,
    batch_size=4,
    device="auto",
    progress=None,
    instances="components",
):
    """Probabilities, class mask and instance labels of one 2D image (the CLI's core)."""
    from .inference import predict
    from .postprocess import class_mask, instance_labels

    probabilities = predict(
        image, model, tile_size=tile_size, batch_size=batch_size, device=device, progress=progress
    )
    mask = class_mask(probabilities)
    labels = instance_labels(mask, method=instances).astype(np.uint32)
    return probabilities, mask, labels


def run_predict(args: argparse.Namespace) -> None:
    """``napari-unet predict``: write <stem>_mask.tif, _prob.tif, _instances.tif per input."""
    from .data import read_image, to_channels_first, write_tiff
    from .inference import default_tile_size

    model = _load(args.model, args.device)
    if args.tile_size is not None:
        model.check_input_size(args.tile_size)
    tile_size = args.tile_size or default_tile_size(model)
    channels = model.config.in_channels
    # read and check every input before computing or writing anything
    images = [(path, to_channels_first(read_image(path), channels)) for path in args.inputs]
    output = _writable_folder(args.output)
    for path, image in images:
        bar = ProgressBar(f"{path.name}")
        probabilities, mask, labels = segment_image(
            image,
            model,
            tile_size=tile_size,
            batch_size=args.batch_size,
            device=args.device,
            progress=lambda p, bar=bar: bar.update(
                p.done / max(p.total, 1), f"{p.done}/{p.total} tiles"
            ),
            instances=args.instances,
        )
        bar.close()
        stem = path.stem
        write_tiff(output / f"{stem}_prob.tif", probabilities.astype(np.float32))
        write_tiff(output / f"{stem}_mask.tif", mask.astype(np.uint8))
        write_tiff(output / f"{stem}_instances.tif", labels)
        print(f"{path}: {int(labels.max())} objects -> {output / stem}_{{mask,prob,instances}}.tif")


def _training_inputs(args: argparse.Namespace, in_channels: int):
    from .data import read_image, to_channels_first

    if len(args.images) != len(args.labels):
        raise CliError(f"got {len(args.images)} --images but {len(args.labels)} --labels")
    images = [to_channels_first(read_image(path), in_channels) for path in args.images]
    labels = [read_image(path) for path in args.labels]
    return images, labels


def _new_or_loaded_model(args: argparse.Namespace):
    from .checkpoint import new_model
    from .config import ModelConfig

    if args.model:
        return _load(args.model)
    config = ModelConfig(
        in_channels=args.channels,
        n_classes=args.classes,
        depth=args.depth,
        base_features=args.features,
        padding=args.padding,
        batch_norm=args.batch_norm,
        upsampling=args.upsampling,
    )
    return new_model(config, seed=args.seed)


def run_train(args: argparse.Namespace) -> None:
    """``napari-unet train``: fine-tune and write a checkpoint."""
    from .checkpoint import save_model
    from .config import AugmentConfig, TrainConfig, WeightConfig
    from .training import finetune

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    model = _new_or_loaded_model(args)
    images, labels = _training_inputs(args, model.config.in_channels)
    _writable_folder(args.output.parent if str(args.output.parent) else Path("."))
    config = TrainConfig(
        seconds=args.seconds or None,
        iterations=args.iterations,
        batch_size=args.batch_size,
        patch_size=args.patch_size,
        seed=args.seed,
        device=args.device,
        learning_rate=args.learning_rate or (1e-3 if args.new else 3e-4),
    )
    bar = ProgressBar("training")
    steps = finetune(
        model,
        images,
        labels,
        config,
        augment=AugmentConfig(elastic=not args.no_elastic),
        weights=WeightConfig(w0=args.w0, sigma=args.sigma),
        report_every=5,
    )
    for step in steps:
        bar.update(step.fraction, f"it {step.iteration} loss {step.smoothed_loss:.4f}")
    bar.close()
    extra = {"trained_on": args.trained_on or ", ".join(str(p) for p in args.images)}
    if args.description:
        extra["description"] = args.description
    save_model(model, args.output, half=args.half, **extra)
    print(f"wrote {args.output}")


def run_info(args: argparse.Namespace) -> None:
    """``napari-unet info``: metadata as JSON."""
    from .checkpoint import checkpoint_info

    print_json(checkpoint_info(args.checkpoint))


def run_models(args: argparse.Namespace) -> None:
    """``napari-unet models``: one line per bundled model."""
    from .checkpoint import bundled_models, checkpoint_info

    models = bundled_models()
    if not models:
        print("no bundled models installed", file=sys.stderr)
    for name in models:
        info = checkpoint_info(name)
        print(f"{name:16s} {info.get('description', '')}")


def run_evaluate(args: argparse.Namespace) -> None:
    """``napari-unet evaluate``: metrics as JSON."""
    from .data import read_image
    from .metrics import evaluate

    prediction, truth = read_image(args.pred), read_image(args.truth)
    if prediction.shape != truth.shape:
        raise CliError(
            f"prediction shape {prediction.shape} differs from truth shape {truth.shape}"
        )
    print_json(evaluate(prediction, truth, kind=args.kind))


def run_demo(args: argparse.Namespace) -> None:
    """``napari-unet demo``."""
    from .demo import run_demo as demo

    demo(args)

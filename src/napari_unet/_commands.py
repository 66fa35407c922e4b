"""Handlers of the ``napari-unet`` sub-commands (see :mod:`napari_unet.cli`)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ._progress import ProgressBar
from .cli import EXIT_BAD_INPUT, CliError, print_json

if TYPE_CHECKING:
    from .batch import FileResult
    from .config import TrainConfig
    from .inference import Progress


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


def run_predict(args: argparse.Namespace) -> int:
    """``napari-unet predict``: outputs per input as :mod:`napari_unet.batch` describes.

    Every input's header is checked against the model before anything is
    computed or written (a bad one: one line, exit 2). A file failing later is
    reported on one line and the others go on; the exit status is then 2.
    """
    from .batch import PredictOptions, cached_model, check_outputs, run_batch
    from .inference import default_tile_size
    from .inputs import expand_inputs, probe_input

    inputs = expand_inputs(args.inputs)
    if not inputs:
        raise CliError(f"no images or zarr stores found in {', '.join(map(str, args.inputs))}")
    for name in ("workers", "threads", "batch_size"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise CliError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
    model = cached_model(args.model, args.device)
    if args.tile_size is not None:
        model.check_input_size(args.tile_size)
    options = PredictOptions(
        tile_size=args.tile_size or default_tile_size(model),
        batch_size=args.batch_size,
        device=args.device,
        test_time_augmentation=args.tta,
        instances=args.instances,
        axes=args.axes,
        output_format=args.output_format,
        overwrite=args.overwrite,
        threads=args.threads,
    )
    for path in inputs:
        probe_input(path, model.config.in_channels, args.axes, args.output_format)
    check_outputs(inputs, args.output)
    output = _writable_folder(args.output)
    on_cluster = args.scheduler is not None or bool(args.workers and len(inputs) > 1)
    bars = _FileProgress()
    results = run_batch(
        inputs,
        args.model,
        output,
        options,
        scheduler=args.scheduler,
        workers=args.workers if on_cluster else None,
        report=bars.report,
        progress=None if on_cluster else bars.start,
    )
    return EXIT_BAD_INPUT if any(result.status == "failed" for result in results) else 0


class _FileProgress:
    """One progress bar per file (in-process runs) and one line per finished file."""

    def __init__(self) -> None:
        self.bar: ProgressBar | None = None

    def start(self, path: str) -> Callable[[Progress], None]:
        name = Path(path).name

        def update(step: Progress) -> None:
            if self.bar is None:
                self.bar = ProgressBar(name)
            if step.stage == "instances":
                detail = f"instances {step.done}/{step.total}"
            elif getattr(step, "n_slices", 1) > 1:
                detail = f"slice {step.slice_index + 1}/{step.n_slices}, {step.done}/{step.total}"
            else:
                detail = f"{step.done}/{step.total} tiles"
            self.bar.update(step.done / max(step.total, 1), detail)

        return update

    def report(self, result: FileResult) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if result.status == "failed":
            print(f"napari-unet predict: error: {result.path}: {result.error}", file=sys.stderr)
        elif result.status == "skipped":
            print(f"{result.path}: skipped, outputs exist ({result.outputs[0]}, ...)")
        elif len(result.outputs) == 1:
            print(f"{result.path}: {result.n_objects} objects -> {result.outputs[0]}")
        else:
            stem = result.outputs[0][: -len("_prob.tif")]
            print(
                f"{result.path}: {result.n_objects} objects -> {stem}_{{mask,prob,instances}}.tif"
            )


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


def run_train(args: argparse.Namespace) -> int:
    """``napari-unet train``: fine-tune and write a checkpoint.

    Ctrl-C stops training and still writes the best weights so far (exit status
    130); a diverging run (non-finite loss or gradient) writes nothing.
    """
    from .checkpoint import save_model
    from .config import AugmentConfig, WeightConfig
    from .training import TrainingError, finetune

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    model = _new_or_loaded_model(args)
    images, labels = _training_inputs(args, model.config.in_channels)
    _writable_folder(args.output.parent if str(args.output.parent) else Path("."))
    steps = finetune(
        model,
        images,
        labels,
        _train_config(args),
        augment=AugmentConfig(elastic=not args.no_elastic),
        weights=WeightConfig(w0=args.w0, sigma=args.sigma, class_balance=not args.no_class_balance),
        report_every=5,
    )
    runs_before = len(model.metadata.get("training_history", []))
    bar = ProgressBar("training")
    status = 0
    try:
        for step in steps:
            bar.update(step.fraction, f"it {step.iteration} loss {step.smoothed_loss:.4f}")
    except KeyboardInterrupt:
        steps.close()  # restores the best weights and records the run
        status = 130
    except TrainingError as error:
        raise CliError(str(error)) from error
    finally:
        bar.close()
    if len(model.metadata.get("training_history", [])) == runs_before:
        raise CliError("interrupted before the first iteration: nothing written")
    extra = {"trained_on": args.trained_on or ", ".join(str(p) for p in args.images)}
    if args.description:
        extra["description"] = args.description
    save_model(model, args.output, half=args.half, **extra)
    stopped = " (interrupted: the best weights so far)" if status else ""
    print(f"wrote {args.output}{stopped}")
    return status


def _train_config(args: argparse.Namespace) -> TrainConfig:
    """The TrainConfig of ``napari-unet train``: 60 s unless an iteration count is given."""
    from .config import TrainConfig

    seconds = args.seconds if args.seconds is not None else (None if args.iterations else 60.0)
    default_rate = 1e-3 if args.new else 3e-4
    return TrainConfig(
        seconds=seconds or None,
        iterations=args.iterations,
        batch_size=args.batch_size,
        patch_size=args.patch_size,
        seed=args.seed,
        device=args.device,
        learning_rate=default_rate if args.learning_rate is None else args.learning_rate,
        lr_schedule=args.lr_schedule,
        bn_recalibration=args.bn_recalibration,
    )


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

"""Handlers of the ``napari-unet`` sub-commands (see :mod:`napari_unet.cli`)."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import tempfile
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
    try:  # a fresh name, opened O_EXCL | O_NOFOLLOW: never an existing file or symlink
        descriptor, probe = tempfile.mkstemp(prefix=".napari-unet-write-test-", dir=folder)
        os.close(descriptor)
        os.unlink(probe)
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
            print(
                f"{result.path}: skipped, outputs exist from the same model, options and input "
                f"({result.outputs[0]}, ...)"
            )
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

    The destination is checked before training (a file name in a writable
    folder with room for the weights). Ctrl-C or SIGTERM (what a cluster
    scheduler sends) stops training and still writes the best weights so far
    (exit status 130, or 143 for SIGTERM); a diverging run (non-finite loss or
    gradient) writes nothing. When the checkpoint cannot be written, the
    weights are written to a new temporary folder and the message says where.
    """
    from .config import AugmentConfig, WeightConfig
    from .training import finetune

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    _check_train_output(args.output)
    model = _new_or_loaded_model(args)
    _check_free_space(args.output, model, args.half)
    images, labels = _training_inputs(args, model.config.in_channels)
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
    signals: list[int] = []
    with _sigterm_interrupts(signals):  # kept through the save: a second SIGTERM waits
        status = _follow_training(steps, signals)
        if len(model.metadata.get("training_history", [])) == runs_before:
            raise CliError("interrupted before the first iteration: nothing written")
        extra = {"trained_on": args.trained_on or ", ".join(str(p) for p in args.images)}
        if args.description:
            extra["description"] = args.description
        _save_or_keep(model, args.output, args.half, extra)
    stopped = " (interrupted: the best weights so far)" if status else ""
    print(f"wrote {args.output}{stopped}")
    return status


def _follow_training(steps, signals: list[int]) -> int:
    """Run the ``finetune`` generator with a progress bar; returns the exit status."""
    from .training import TrainingError

    bar = ProgressBar("training")
    try:
        for step in steps:
            bar.update(step.fraction, f"it {step.iteration} loss {step.smoothed_loss:.4f}")
    except KeyboardInterrupt:
        steps.close()  # restores the best weights and records the run
        return 128 + signal.SIGTERM if signals else 130
    except TrainingError as error:
        raise CliError(str(error)) from error
    finally:
        bar.close()
    return 0


@contextlib.contextmanager
def _sigterm_interrupts(received: list[int]):
    """Within the block, the first SIGTERM raises KeyboardInterrupt (as Ctrl-C does).

    Later ones are only recorded in ``received``, so the best weights are still
    saved. Outside the main thread (no signal handlers there) nothing changes.
    """

    def handler(signum, frame):
        received.append(signum)
        if len(received) == 1:
            raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _check_train_output(output: Path) -> None:
    """Refuse a ``train --output`` that cannot take a checkpoint, before training."""
    if output.is_dir():
        raise CliError(
            f"--output {output} is a folder; give a file name, e.g. {output / 'model.safetensors'}"
        )
    if output.suffix.lower() in (".pt", ".pth"):
        raise CliError(f"--output {output}: checkpoints are written as .safetensors files")
    _writable_folder(output.parent if str(output.parent) else Path("."))


def _check_free_space(output: Path, model, half: bool) -> None:
    """Refuse to train when the destination's disk lacks room for the checkpoint."""
    import shutil

    needed = sum(value.numel() for value in model.state_dict().values()) * (2 if half else 4)
    needed += 2**20  # header and metadata
    free = shutil.disk_usage(output.parent if str(output.parent) else ".").free
    if free < needed:
        raise CliError(
            f"not enough space for {output}: the checkpoint needs about {needed / 2**20:.1f} MiB, "
            f"{free / 2**20:.1f} MiB are free"
        )


def _save_or_keep(model, output: Path, half: bool, extra: dict) -> None:
    """Save the checkpoint; when that fails, save it in a new temporary folder and say so."""
    from .checkpoint import save_model

    try:
        save_model(model, output, half=half, **extra)
        return
    except OSError as error:
        reason = error
    kept = Path(tempfile.mkdtemp(prefix="napari-unet-")) / output.name
    try:
        save_model(model, kept, half=half)
    except OSError as error:
        raise CliError(
            f"cannot write {output} ({reason}), nor a copy in {kept.parent} ({error}): "
            "the trained weights are lost"
        ) from error
    raise CliError(f"cannot write {output} ({reason}); the trained weights were saved to {kept}")


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

"""Handlers of the ``napari-unet`` sub-commands (see :mod:`napari_unet.cli`)."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ._progress import ProgressBar
from ._train_command import (  # noqa: F401  (run_train: handler of `train`)
    Termination,
    _train_config,
    run_train,
    sigterm_interrupts,
)
from .cli import EXIT_BAD_INPUT, CliError, print_json

if TYPE_CHECKING:
    from .core.inference import Progress
    from .io.batch import FileResult


def _load(name_or_path: str, device: str = "cpu"):
    from .core.checkpoint import load_model
    from .core.devices import resolve_device

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
    from .core.inference import predict
    from .core.postprocess import class_mask, instance_labels

    probabilities = predict(
        image, model, tile_size=tile_size, batch_size=batch_size, device=device, progress=progress
    )
    mask = class_mask(probabilities)
    labels = instance_labels(mask, method=instances).astype(np.uint32)
    return probabilities, mask, labels


def run_predict(args: argparse.Namespace) -> int:
    """``napari-unet predict``: outputs per input as :mod:`napari_unet.io.batch` describes.

    Every input's header is checked against the model before anything is
    computed or written (a bad one: one line, exit 2). A file failing later is
    reported on one line and the others go on; the exit status is then 2.
    """
    from .io.batch import cached_model, check_outputs, run_batch
    from .io.inputs import expand_inputs, probe_input

    inputs = expand_inputs(args.inputs)
    if not inputs:
        raise CliError(f"no images or zarr stores found in {', '.join(map(str, args.inputs))}")
    for name in ("workers", "threads", "batch_size"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise CliError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
    most = 4 * (os.cpu_count() or 1)
    if args.workers is not None and args.workers > most:
        raise CliError(f"--workers {args.workers}: at most {most} here (4 per CPU)")
    model = cached_model(args.model, args.device)
    options = _predict_options(args, model)
    for path in inputs:
        probe_input(path, model.config.in_channels, args.axes, args.output_format)
    check_outputs(inputs, args.output)
    output = _writable_folder(args.output)
    on_cluster = args.scheduler is not None or bool(args.workers and len(inputs) > 1)
    bars = _FileProgress()
    termination = Termination()
    try:
        with sigterm_interrupts(termination):
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
    except KeyboardInterrupt:
        if not termination.received:
            raise
        print("napari-unet predict: terminated; unfinished outputs removed", file=sys.stderr)
        return 128 + signal.SIGTERM
    return EXIT_BAD_INPUT if any(result.status == "failed" for result in results) else 0


def _predict_options(args: argparse.Namespace, model):
    """The PredictOptions of ``napari-unet predict`` (the tile size checked first)."""
    from .core.inference import default_tile_size
    from .io.batch import PredictOptions

    if args.tile_size is not None:
        if not 1 <= args.tile_size <= 2**16:
            raise CliError(f"--tile-size must be between 1 and {2**16}, got {args.tile_size}")
        model.check_input_size(args.tile_size)
    return PredictOptions(
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


def run_info(args: argparse.Namespace) -> None:
    """``napari-unet info``: metadata as JSON."""
    from .core.checkpoint import checkpoint_info

    print_json(checkpoint_info(args.checkpoint))


def run_models(args: argparse.Namespace) -> None:
    """``napari-unet models``: one line per bundled model."""
    from .core.checkpoint import bundled_models, checkpoint_info

    models = bundled_models()
    if not models:
        print("no bundled models installed", file=sys.stderr)
    for name in models:
        info = checkpoint_info(name)
        print(f"{name:16s} {info.get('description', '')}")


def run_evaluate(args: argparse.Namespace) -> None:
    """``napari-unet evaluate``: metrics as JSON."""
    from .evaluation.metrics import evaluate
    from .io.data import read_image

    prediction, truth = read_image(args.pred), read_image(args.truth)
    if prediction.shape != truth.shape:
        raise CliError(
            f"prediction shape {prediction.shape} differs from truth shape {truth.shape}"
        )
    if args.kind == "membranes" and prediction.ndim != 2:
        raise CliError(
            f"--kind membranes takes 2-D (Y, X) maps; {args.pred} has {prediction.shape}"
        )
    if args.kind == "semantic":  # class masks; a label of 2**40 would size 8 TiB of counts
        for path, mask in ((args.pred, prediction), (args.truth, truth)):
            _check_class_mask(path, mask)
    print_json(evaluate(prediction, truth, kind=args.kind))


def _check_class_mask(path: Path, mask: np.ndarray) -> None:
    """Refuse a ``--kind semantic`` input that is not a class mask of whole labels 0..255."""
    from .evaluation.metrics import check_class_mask

    try:
        check_class_mask(mask, f"{path}: --kind semantic")
    except ValueError as error:
        raise CliError(str(error)) from error


def run_demo(args: argparse.Namespace) -> None:
    """``napari-unet demo``."""
    from .demo import run_demo as demo

    demo(args)

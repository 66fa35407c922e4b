"""The ``napari-unet train`` command: checks, training with a progress bar, the save."""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
from pathlib import Path

from ..config import NEW_MODEL_CONFIG, TrainConfig, WeightConfig
from ._common import CliError, Termination, sigterm_interrupts
from ._interrupts import (
    INTERRUPTED,
    QUIT_PRESS,
    WRITING_NOTICE,
    CtrlC,
    ctrl_c_notices,
    ctrl_c_stops,
    to_stderr,
)
from ._progress import ProgressBar
from ._train_arguments import (
    ARCHITECTURE_OPTIONS,
    add_train_arguments,
    check_numbers,
    check_train_output,
)
from ._train_inputs import training_inputs
from ._train_words import (
    _not_learnt_text,
    _print_threshold,
    cut_short_note,
    floor_note,
)

__all__ = ["add_parser", "run_train"]


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Register ``train``."""
    parser = commands.add_parser(
        "train",
        help="fine-tune (or train from scratch) on annotations",
        epilog="Ctrl-C stops after the iteration under way and saves the best weights so far "
        "(exit status 130); a second Ctrl-C skips setting the background threshold and the "
        "comparison, a third quits without saving.",
    )
    add_train_arguments(parser)
    parser.set_defaults(handler=run_train)


def _load(name_or_path: str, device: str = "cpu"):
    from ..core.checkpoint import load_model
    from ..core.devices import resolve_device

    return load_model(name_or_path, device=resolve_device(device))


def _new_or_loaded_model(args: argparse.Namespace):
    from ..core._limits import check_model_config
    from ..core.checkpoint import new_model

    if args.model:
        model = _load(args.model)
        _name_a_replaced_parent(model, args.output)
        _check_batch_norm(args.bn_recalibration, model, args.model)
        return model
    given = {name: getattr(args, option) for name, option in ARCHITECTURE_OPTIONS.items()}
    values = {
        name: getattr(NEW_MODEL_CONFIG, name) if value is None else value
        for name, value in given.items()
    }
    try:
        config = check_model_config(values)
    except ValueError as error:
        message = str(error)
        for name, flag in _ARCHITECTURE_FLAGS.items():
            message = message.replace(f"model_config {name}", flag)
        raise CliError(f"--new: {message.replace('model_config: ', '')}") from error
    model = new_model(config, seed=args.seed)
    _check_batch_norm(args.bn_recalibration, model, "the --new model")
    return model


def _check_batch_norm(passes: int, model, name: str) -> None:
    """Refuse ``--bn-recalibration`` for a model without batch norm: it would do nothing."""
    if passes and not model.config.batch_norm:
        raise CliError(
            f"--bn-recalibration re-estimates batch-norm statistics; {name} has no batch norm"
            + (" (add --batch-norm)" if name == "the --new model" else "")
        )


def _name_a_replaced_parent(model, output: Path) -> None:
    """With ``--output`` the file ``--model`` was read from (``--overwrite``), the run's
    parent would name the new file itself: name the old one by its checksum instead."""
    from ..io.reruns import model_checksum

    source = model.metadata.get("source")
    if not source or not output.exists() or not Path(source).exists():
        return
    if Path(source).resolve() == output.resolve():
        digest = model_checksum(output)
        model.metadata["source"] = f"{source} as it was before this run (SHA-256 {digest[:12]}...)"


_ARCHITECTURE_FLAGS = {
    name: f"--{option.replace('_', '-')}" for name, option in ARCHITECTURE_OPTIONS.items()
}


def _check_patch_size(patch_size: int | None, model, images) -> None:
    """Refuse a patch that is invalid, or larger than what covers the largest image.

    A larger patch holds only mirrored borders, yet its memory grows with its
    area (4996 px patches on small images exhausted the memory).
    """
    from ..training.sampling import default_patch_size

    if patch_size is None:
        return
    try:
        model.check_input_size(patch_size)
    except ValueError as error:
        raise CliError(f"--patch-size: {error}") from error
    largest = max(max(image.shape[-2:]) for image in images)
    margin = 2 * model.halo if model.config.padding == "same" else 0
    useful = max(default_patch_size(model), model.smallest_valid_input_covering(largest + margin))
    if patch_size > useful:
        raise CliError(
            f"--patch-size {patch_size} is larger than needed: {useful} already covers the "
            f"largest image ({largest} px) with its context; a larger patch adds only mirrored "
            "borders, and memory"
        )


def run_train(args: argparse.Namespace) -> int:
    """``napari-unet train``: fine-tune and write a checkpoint.

    The destination is checked before training (a file name in a writable folder with
    room for the weights). Ctrl-C stops after the iteration under way and ends the run
    as usual with the best weights so far; a second skips the threshold's calibration
    and the comparison, a third quits unsaved unless the file is being written
    (:mod:`._interrupts`; exit status 130). SIGTERM (a cluster scheduler's) stops at
    once and writes the best weights (143). A diverging run writes nothing. A
    checkpoint that cannot be written goes to a new temporary folder, named.
    """
    from ..training.loop import sets_threshold
    from ..training.schedule import learning_floor

    model, images, labels, before = _model_and_inputs(args)
    calibrates = sets_threshold(model)
    ctrl_c = CtrlC(ctrl_c_notices(calibrates), WRITING_NOTICE)
    config = _train_config(args)
    floor = learning_floor(config, model)  # iterations it trains on past its time budget for
    past = (config.seconds, floor) if floor and config.seconds else None
    steps = _training_steps(args, model, images, labels, config, ctrl_c)
    threshold_before = model.info.background_threshold
    with ctrl_c_stops(ctrl_c):
        status, written = _train_and_save(args, model, steps, ctrl_c, past)
        if not written:  # no iteration ran
            return status or ctrl_c.status
        skipped = calibrates and ctrl_c.cancelled  # the threshold's calibration was cut
        if not status:  # not stopped at once (SIGTERM)
            first = (args.images[0], images[0], labels[0])
            _print_comparison(model, first, before, args, ctrl_c)
        _print_threshold_of(model, threshold_before, skipped)
    return status or ctrl_c.status


def _model_and_inputs(args: argparse.Namespace):
    """The checked options' model, training images and labels, and the model's class mask
    of the first image before training with the classes Predict draws then
    (:func:`~napari_unet.evaluation.strokes.shown_classes`); the output checked first."""
    check_numbers(args)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    check_train_output(args.output, args.overwrite)
    model = _new_or_loaded_model(args)
    _check_free_space(args.output, model, args.half)
    images, labels = training_inputs(args, model.config.in_channels, model.config.n_classes)
    _check_patch_size(args.patch_size, model, images)
    from ..core.postprocess import class_mask
    from ..evaluation.strokes import shown_classes

    before = _probabilities(model, images[0], args.device)
    shown = shown_classes(before, model.info.background_threshold)  # before the run sets it
    return model, images, labels, (class_mask(before), shown)


def _training_steps(args: argparse.Namespace, model, images, labels, config, ctrl_c: CtrlC):
    """The fine-tuning generator of ``model`` on ``images`` and ``labels``, stopped and
    cancelled through ``ctrl_c``, reporting every iteration."""
    from ..config import AugmentConfig
    from ..training.loop import finetune

    return finetune(
        model,
        images,
        labels,
        config,
        augment=AugmentConfig(elastic=not args.no_elastic),
        weights=WeightConfig(w0=args.w0, sigma=args.sigma, class_balance=args.class_balance),
        stop=ctrl_c.stop_requested,  # polled every iteration
        cancel=ctrl_c.cancel_requested,
        report_every=1,
    )


def _print_threshold_of(model, threshold_before, skipped: bool) -> None:
    """:func:`_print_threshold` for ``model`` after its training (``skipped``: its
    calibration was cut)."""
    from ..training.distillation import learning_before_last_run
    from ..training.history import loss_at_chance

    info, learning = model.info, learning_before_last_run(model)
    at_chance = learning and loss_at_chance(model)
    moved = info.training_history[-1].moved_decision if info.training_history else None
    _print_threshold(
        threshold_before, info.background_threshold, info.close_gaps, skipped, at_chance,
        moved, from_strokes=learning,
    )  # fmt: skip


def _train_and_save(
    args: argparse.Namespace,
    model,
    steps,
    ctrl_c: CtrlC,
    past: tuple[float, int] | None = None,
) -> tuple[int, bool]:
    """Train (following ``steps``, the ``finetune`` generator; ``past``: the time budget a new
    model may train on past and the iterations it must reach, or None) and save; returns the exit
    status of a stop that ended training at once (130, 143; else 0) and whether the
    checkpoint was written (not when no iteration ran)."""
    from ..core.metadata import trained_description

    runs_before = len(model.info.training_history)
    termination = Termination()
    with sigterm_interrupts(termination):  # kept through the save, which SIGTERM waits for
        status = _follow_training(steps, past, termination, ctrl_c)
        termination.armed = False
        if len(model.info.training_history) == runs_before:
            if not (status or ctrl_c.presses):
                raise CliError("stopped before the first iteration: nothing written")
            print("interrupted before the first iteration: nothing written", file=sys.stderr)
            return status, False
        trained_on = args.trained_on or ", ".join(str(p) for p in args.images)
        description = args.description or trained_description(
            model.metadata.get("description"), trained_on, args.new
        )
        extra = {"trained_on": trained_on, "description": description}
        with ctrl_c.writing_file():  # a Ctrl-C waits for the file to be complete
            _save_or_keep(model, args.output, args.half, extra)
    stopped = " (interrupted: the best weights so far)" if status or ctrl_c.presses else ""
    print(f"wrote {args.output}{stopped}")
    if not stopped and cut_short_note(model):
        print(cut_short_note(model))
    return status, True


def _probabilities(model, image, device: str, stop=None):
    """The class probabilities ``model`` predicts for ``image`` (to tell what training
    changed); raises :class:`~napari_unet.core.inference.Cancelled` once ``stop`` is set."""
    from ..core.inference import default_tile_size, predict

    return predict(image, model, tile_size=default_tile_size(model), device=device, stop=stop)


def _print_comparison(model, first, before, args: argparse.Namespace, ctrl_c) -> None:
    """Print how many pixels of the first image (``first``: its path, pixels and strokes)
    changed class since ``before`` (its class mask and Predict's classes before the run)
    and how many of its strokes the model agrees with, and whether a new model has not
    learnt yet; a second Ctrl-C skips this."""
    from ..core.inference import Cancelled
    from ..core.postprocess import class_mask
    from ..evaluation.review import class_changes, class_names, with_strokes
    from ..evaluation.strokes import shown_classes
    from ..training.history import not_learnt_yet

    path, image, strokes = first
    try:
        after = _probabilities(model, image, args.device, stop=ctrl_c.cancel_requested)
        if ctrl_c.cancel_requested():  # pressed during its last tile: skipped, as it said
            raise Cancelled
    except Cancelled:
        print(f"comparison of {path} with the model before skipped (Ctrl-C)")
        return
    shown = (shown_classes(after, model.info.background_threshold), before[1])  # Predict's
    changes = class_changes(before[0], class_mask(after), strokes, shown)
    first_run = len(model.info.training_history) == 1  # "before" was random weights
    if first_run:
        said = changes.describe_shares(class_names(model))
    else:
        said = changes.describe(class_names(model))
    threshold = (class_names(model).get(1, "background"), model.info.background_threshold)
    said = with_strokes(
        said, changes.strokes, first_run=first_run, pixels="labelled", threshold=threshold
    )
    print(f"on {path}: {said}")
    if not_learnt_yet(model, changes):
        print(_not_learnt_text(model, changes, path))


def _follow_training(
    steps, past: tuple[float, int] | None, termination: Termination, ctrl_c: CtrlC
) -> int:
    """Run the ``finetune`` generator with a progress bar (``ctrl_c`` prints above it, and
    a note once the run goes on past ``past = (seconds, floor)``, a new model's time budget,
    before its ``floor`` of iterations);
    returns the exit status of a stop that ended it at once: SIGTERM (143) or a
    KeyboardInterrupt not from :class:`CtrlC` (130). Its third press is raised again."""
    from ..training.loop import TrainingError

    bar = ProgressBar("training")
    ctrl_c.say = bar.note
    try:
        for step in steps:
            if past is not None and step.elapsed > past[0] and step.iteration < past[1]:
                bar.note(floor_note(past[0]))
                past = None
            bar.update(step.fraction, f"it {step.iteration} loss {step.smoothed_loss:.4f}")
    except KeyboardInterrupt:
        termination.armed = False
        if ctrl_c.presses >= QUIT_PRESS and not termination.received:
            raise  # no save promised
        steps.close()  # restores the best weights and records the run
        return 128 + signal.SIGTERM if termination.received else INTERRUPTED
    except TrainingError as error:
        raise CliError(f"{error} No checkpoint was written.") from error
    finally:
        bar.close()
        ctrl_c.say = to_stderr
    return 0


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
    from ..core.checkpoint import save_model

    try:
        save_model(model, output, half=half, **extra)
        return
    except OSError as error:
        reason = error
    try:
        kept = Path(tempfile.mkdtemp(prefix="napari-unet-")) / output.name
        save_model(model, kept, half=half, **extra)
    except OSError as error:
        raise CliError(
            f"cannot write {output} ({reason}), nor a copy in {tempfile.gettempdir()} "
            f"({error}): the trained weights are lost"
        ) from error
    raise CliError(f"cannot write {output} ({reason}); the trained weights were saved to {kept}")


def _train_config(args: argparse.Namespace) -> TrainConfig:
    """The TrainConfig of ``napari-unet train``: ``TIME_BUDGET_SECONDS`` (60 s) unless an
    iteration count is given.

    A trained model also stops after ``FINETUNE_ITERATIONS`` (100) unless ``--iterations``
    says otherwise; ``--iterations 0`` leaves it the time budget alone.
    """
    from ..config import TIME_BUDGET_SECONDS, TrainConfig

    default = None if args.iterations else TIME_BUDGET_SECONDS
    seconds = args.seconds if args.seconds is not None else default
    no_iteration_budget = args.iterations == 0
    return TrainConfig(
        seconds=seconds or None,
        iterations=None if no_iteration_budget else args.iterations,
        finetune_iterations=None if no_iteration_budget else TrainConfig.finetune_iterations,
        batch_size=args.batch_size,
        patch_size=args.patch_size,
        seed=args.seed,
        device=args.device,
        learning_rate=args.learning_rate,  # None: TrainConfig's rule (new or trained model)
        lr_schedule=args.lr_schedule,
        bn_recalibration=args.bn_recalibration,
        distillation_border=args.distillation_border,
        **({} if args.distillation is None else {"distillation": args.distillation}),
    )

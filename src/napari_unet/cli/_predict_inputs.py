"""Which inputs ``napari-unet predict`` runs on: listing, sharding, the up-front check."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from ._common import CliError, one_line

__all__ = ["MAX_REPORTED", "check_inputs", "parse_shard", "selected_inputs", "shard_of"]

#: At most this many bad inputs are named by the up-front check.
MAX_REPORTED = 20


def parse_shard(text: str) -> tuple[int, int] | str:
    """``--shard``: ``I/N`` (1 <= I <= N) or ``slurm`` (read when the inputs are chosen)."""
    if text.strip().lower() == "slurm":
        return "slurm"
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected I/N (this task's number, from 1, and the number of tasks) or slurm, "
            f"got {text!r}"
        ) from None
    if not 1 <= index <= count:
        raise argparse.ArgumentTypeError(f"expected 1 <= I <= N in I/N, got {text!r}")
    return index, count


def shard_of(shard: tuple[int, int] | str | None) -> tuple[int, int] | None:
    """(I, N) of ``--shard``, with ``slurm`` read from the job array's environment.

    Raises
    ------
    CliError
        ``slurm`` outside a SLURM job array, or an array whose task ids are not
        consecutive (``--array=1-20:2``).
    """
    if shard != "slurm":
        return shard if isinstance(shard, tuple) else None
    names = ("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_MIN", "SLURM_ARRAY_TASK_COUNT")
    try:
        task, first, count = (int(os.environ[name]) for name in names)
    except (KeyError, ValueError):
        raise CliError(
            f"--shard slurm: {', '.join(names)} are not set; run it in a SLURM job array "
            "(sbatch --array=...), or give --shard I/N"
        ) from None
    last = os.environ.get("SLURM_ARRAY_TASK_MAX", str(first + count - 1))
    if not 0 <= task - first < count or last != str(first + count - 1):  # a gap: 1-19:2
        raise CliError(
            f"--shard slurm: task {task} is not among {count} consecutive tasks from {first}; "
            "use an array of consecutive ids (--array=0-9), or give --shard I/N"
        )
    return task - first + 1, count


def selected_inputs(args: argparse.Namespace, inputs: list[Path]) -> list[Path]:
    """This task's share of ``inputs``: every N-th from the I-th (``--shard I/N``).

    The N tasks of a job array list the same inputs in the same order, so they take
    disjoint shares that together cover every input.
    """
    shard = shard_of(args.shard)
    if shard is None:
        return inputs
    index, count = shard
    chosen = inputs[index - 1 :: count]
    print(f"shard {index}/{count}: {len(chosen)} of {len(inputs)} inputs")
    return chosen


def check_inputs(args: argparse.Namespace, inputs: list[Path], in_channels: int) -> None:
    """Every input's header against the model, before anything is predicted.

    One input, bad: its error, as raised. Bad inputs among several: each on its own line
    on stderr (the first :data:`MAX_REPORTED`), then a :class:`CliError` counting them
    and saying that nothing was predicted.
    """
    from ..io.inputs import probe_input

    problems: list[BaseException] = []
    colour: list[Path] = []  # RGB(A) files a one-channel model reads as their luminance
    channels: list[Any] = []  # planes nobody named, taken as a multichannel model's channels
    slices: list[Any] = []  # 2 to 4 planes nobody named, taken as slices: may be channels
    for path in inputs:
        try:
            info = probe_input(path, in_channels, args.axes, args.output_format)
            _check_watershed(args, info)
            _note_rgb_planes(info, in_channels, given_axes=args.axes)
            if in_channels == 1 and "S" in info.axes:
                colour.append(path)
            if in_channels > 1 and info.guessed and "C" in info.axes:
                channels.append(info)
            if in_channels == 1 and info.guessed and _few_planes(info):
                slices.append(info)
        except (ValueError, OSError) as bad:
            problems.append(bad)
    if colour and not problems:
        others = f" and {len(colour) - 1} more" if len(colour) > 1 else ""
        print(
            f"napari-unet predict: note: {colour[0].name}{others} read as luminance (0.299 R + "
            "0.587 G + 0.114 B): the model takes one channel",
            file=sys.stderr,
        )
    if channels and not problems:
        _note_guessed_channels(channels, in_channels)
    if slices and not problems:
        _note_guessed_slices(slices)
    if len(problems) == 1 and len(inputs) == 1:
        raise problems[0]
    if problems:
        for error in problems[:MAX_REPORTED]:
            print(f"napari-unet predict: error: {one_line(error)}", file=sys.stderr)
        more = len(problems) - MAX_REPORTED
        raise CliError(
            f"{len(problems)} of {len(inputs)} inputs cannot be predicted"
            + (f" ({more} more not shown)" if more > 0 else " (above)")
            + "; nothing was predicted: move "
            + ("it" if len(problems) == 1 else "them")
            + " out of the way, or list the others"
        )


def _note_guessed_channels(infos: list[Any], in_channels: int) -> None:
    """Say on stderr that planes nobody named were taken as the model's channels: a file
    of as many z-planes, saved without axes, looks the same."""
    first = infos[0]
    others = f" (and {len(infos) - 1} more)" if len(infos) > 1 else ""
    print(
        f"napari-unet predict: note: {first.path.name} {tuple(first.shape)}{others} is read "
        f"as {first.axes}: no axes in the file, so its {in_channels} planes along C are taken "
        f"as the model's {in_channels} channels, in that order; if they are slices, give the "
        "axes with --axes",
        file=sys.stderr,
    )


def _few_planes(info: Any) -> bool:
    """Whether ``info`` is 2 to 4 planes read as slices (a file's channels look the same)."""
    return info.axes == "ZYX" and 2 <= info.shape[0] <= 4


def _note_guessed_slices(infos: list[Any]) -> None:
    """Say on stderr that a few planes nobody named are predicted as slices: a file of as
    many channels, saved without axes, looks the same (the dock says so too)."""
    first = infos[0]
    others = f" (and {len(infos) - 1} more)" if len(infos) > 1 else ""
    print(
        f"napari-unet predict: note: {first.path.name} {tuple(first.shape)}{others} is read "
        f"as ZYX: no axes in the file, so its {first.shape[0]} planes are predicted as "
        "slices; if they are channels, predict the one this model was made for (one file "
        f"per channel), or use a model of {first.shape[0]} channels with --axes CYX",
        file=sys.stderr,
    )


def _note_rgb_planes(info: Any, in_channels: int, given_axes: str | None) -> None:
    """Say on stderr when three planes along a channel axis nobody named are averaged to
    luminance for a one-channel model: (T, 3, Y, X) read as ZCYX may be z-planes."""
    if given_axes or in_channels != 1 or "C" not in info.axes:
        return
    if info.shape[info.axes.index("C")] != 3:
        return
    print(
        f"napari-unet predict: note: {info.path.name} {tuple(info.shape)} is read as "
        f"{info.axes}: its 3 planes along C are taken as RGB and averaged to luminance for "
        "this one-channel model; if they are not colours, give the axes with --axes",
        file=sys.stderr,
    )


def _check_watershed(args: argparse.Namespace, info: Any) -> None:
    """``--instances watershed`` refused up front where the outputs go to a zarr store
    and a slice is too large to label in memory."""
    from ..io.outofcore import check_instance_method

    if info.output_format != "zarr":
        return
    plane = (int(info.shape[info.axes.index("Y")]), int(info.shape[info.axes.index("X")]))
    try:
        check_instance_method(args.instances, plane, advice="use --instances components")
    except ValueError as refusal:
        raise ValueError(f"{info.path}: {refusal}") from refusal

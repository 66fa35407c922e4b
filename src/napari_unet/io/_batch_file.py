"""One input of a batch (see :mod:`napari_unet.io.batch`): what its outputs record, and
its prediction written to them while the run holds their lock."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core.checkpoint import resolve_checkpoint
from ..core.contrast import image_note
from ..core.devices import torch_threads
from ..core.inference import Progress, resolved_tile_size, uses_test_time_augmentation
from ..core.model import UNet
from ..evaluation.review import object_changes
from .axes import ImagePlane, slice_count
from .data import write_tiff
from .inputs import InputInfo, open_input, probe_input
from .last_masks import LastMask, find_last_mask, lineage_record
from .locks import OutputsLock, check_held
from .outofcore import predict_to_zarr
from .outputs import OUTPUT_KINDS, output_axes, output_paths
from .reruns import PROVENANCE_KEY, provenance
from .volumes import segment_stack

if TYPE_CHECKING:
    from .batch import PredictOptions

__all__ = ["FilePlan", "file_plan", "predict_input"]


@dataclass(frozen=True)
class FilePlan:
    """How one input is predicted (see :func:`file_plan`).

    Attributes
    ----------
    options : PredictOptions
        As the run uses them: tile size and test-time augmentation resolved, so the
        outputs record what was done.
    info : InputInfo
        The input's axes and output format (:func:`~napari_unet.io.inputs.probe_input`).
    outputs : tuple of pathlib.Path
        The output paths.
    record : dict
        The provenance the outputs get (:mod:`napari_unet.io.reruns`).
    """

    options: PredictOptions
    info: InputInfo
    outputs: tuple[Path, ...]
    record: dict[str, Any]


def file_plan(
    path: str | os.PathLike,
    checkpoint: str | os.PathLike,
    output: str | os.PathLike,
    options: PredictOptions,
    model: UNet,
) -> FilePlan:
    """How ``path`` is predicted with ``model`` into the folder ``output``."""
    requested_tile_size = options.tile_size_requested or options.tile_size
    options = options.replace(
        tile_size=resolved_tile_size(model, options.tile_size),
        test_time_augmentation=uses_test_time_augmentation(model, options),
    )
    info = probe_input(Path(path), model.config.in_channels, options.axes, options.output_format)
    outputs = output_paths(path, output, info.output_format)
    record = provenance(resolve_checkpoint(checkpoint), options, Path(path), info, outputs)
    record.update(lineage_record(model), tile_size_requested=requested_tile_size)
    return FilePlan(options, info, outputs, record)


def predict_input(
    path: str | os.PathLike,
    stem: str,
    model: UNet,
    plan: FilePlan,
    progress: Callable[[Progress], None] | None,
    lock: OutputsLock,
) -> tuple[int | None, str | None, str | None, str]:
    """Predict the input ``path`` (output stem ``stem``) and write its outputs, while this
    run holds ``lock``; returns the instance count, which objects the new mask split or
    joined against the last mask, the last mask's note (which was kept, or why none) and
    a note when the image's contrast runs against the model's training images, or a colour
    image may not be what it learnt from (:func:`~napari_unet.core.contrast.image_note`, on
    its middle slice; "" if not)."""
    options, info = plan.options, plan.info
    lazy = info.output_format == "zarr"
    # the last mask is read before any output is replaced: it may be in the output folder
    strokes = dict(options.strokes).get(stem)
    last = find_last_mask(stem, model, options.last_masks, strokes, info.output_format)
    with open_input(Path(path), lazy, info.axes) as image, torch_threads(options.threads):
        middle = slice_count(image.shape, info.axes) // 2  # it speaks for the stack
        in_channels = model.config.in_channels
        colours = None  # an RGB image that a one-channel model reads as its luminance
        if "S" in info.axes and in_channels == 1:
            colours = ImagePlane(image, info.axes, middle, 3)
        contrast = image_note(model, ImagePlane(image, info.axes, middle, in_channels), colours)
        count, changes = predict_and_write(image, model, plan, progress, last, lock)
    return count, changes, last.note, contrast


def predict_and_write(
    image: Any,
    model: UNet,
    plan: FilePlan,
    progress: Callable[[Progress], None] | None,
    last: LastMask,
    lock: OutputsLock,
) -> tuple[int | None, str | None]:
    """Predict ``image`` and write the outputs of ``plan``, while this run still holds
    ``lock``; returns the instance count and, with a last mask, which objects the new
    mask split or joined against it."""
    info, outputs, options, record = plan.info, plan.outputs, plan.options, plan.record
    if info.output_format == "zarr":
        predict_to_zarr(
            image,
            model,
            outputs[0],
            axes=info.axes,
            config=options,
            progress=progress,
            provenance=record,
            before_publish=lambda: check_held(lock),
            resume=not options.overwrite,  # the earlier run's kept tiles are overwritten too
        )
        return stored_count(outputs[0]), None
    results = segment_stack(
        image,
        model,
        axes=info.axes,
        config=options,
        progress=progress,
        previous=last.previous,
        annotation=last.annotation,
    )
    check_held(lock)
    stack = "Z" in info.axes
    described = {PROVENANCE_KEY: record, "class_names": list(model.info.class_names)}
    for kind, out, array in zip(OUTPUT_KINDS, outputs, results):  # instances last: "finished"
        write_tiff(out, array, metadata=described, axes=output_axes(kind, stack))
    changes = None if last.previous is None else object_changes(last.previous, results[1])
    return int(results[2].max()), None if changes is None else changes.describe()


def stored_count(store: Path) -> int | None:
    """The instance count a zarr store of :func:`predict_to_zarr` records (None: none)."""
    import zarr

    attributes: Any = zarr.open_group(str(store), mode="r").attrs["napari_unet"]  # ours: a dict
    return attributes.get("n_instances")


def kept_tiles_note(
    path: str | os.PathLike, output: str | os.PathLike, output_format: str, *, skipped: bool
) -> str | None:
    """What becomes of the tiles an interrupted run kept for the zarr store of ``path``,
    in words (None: none were kept). A zarr store up to date (``skipped``) needs them no
    more: they are removed. A run writing TIFF files leaves them for a later zarr run."""
    from ._resume import discard_kept_partial, kept_partial

    store = output_paths(path, output, "zarr")[0]
    if output_format == "zarr" and skipped:
        removed = discard_kept_partial(store)
        return (
            f"removed the tiles an interrupted run kept in {removed}: the outputs are up to date"
            if removed
            else None
        )
    partial = kept_partial(store) if output_format != "zarr" else None  # zarr: resumed
    if partial is None:
        return None
    return (
        f"the tiles an interrupted run kept in {partial} are left for a run with "
        "--output-format zarr, which resumes them; delete that folder if none will"
    )

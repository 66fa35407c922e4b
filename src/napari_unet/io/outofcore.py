"""Out-of-core prediction: inputs read tile by tile, outputs written to a zarr store.

A store written by :func:`predict_to_zarr` is a zarr group holding

``prob``
    (C, Y, X) or (Z, C, Y, X) float32 class probabilities, one chunk per tile.
``mask``
    (Y, X) or (Z, Y, X) uint8 class mask (1 = background, 2.. = classes).
``instances``
    (Y, X) or (Z, Y, X) uint32 instance labels, numbered as
    :func:`napari_unet.io.volumes.stack_instances` numbers them (absent when
    ``instances=None``).

and, in its attributes under ``"napari_unet"``, how the input was read (axes,
channel rule), the model and the tile size. The store is written under a
temporary name and renamed when complete, so a store at the final path is
always whole. Given a provenance record (the CLI's), an interrupted run keeps its
unfinished store, whose written tiles the next run resumes (:mod:`._resume`).

Instances with ``method="components"`` never need a whole slice in memory: the
mask is labelled chunk by chunk, components touching across chunk borders are
merged, and the result is renumbered exactly as
:func:`napari_unet.core.postprocess.instance_labels` numbers a mask held in memory
(class by class, in raster order of each object's first pixel; 4-connectivity).
``method="watershed"`` loads one slice at a time and is refused for slices
above :data:`OUT_OF_CORE_THRESHOLD` pixels. Gaps in the mask's boundaries
(``close_boundaries``) are closed before labelling, one chunk plus a halo at a time
(:func:`~napari_unet.io.chunked_refine.close_gaps_chunked`), objects are grown up to
the background threshold from a snapshot of the mask in a scratch array of the store
(:func:`~napari_unet.io.chunked_refine.grow_objects_chunked`), and with ``fill_holes``
what the objects enclose joins them the same way
(:func:`~napari_unet.io.chunked_refine.fill_enclosed_chunked`).
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ..config import UNSET, PredictConfig, Unset, predict_config
from ..core.inference import (
    Progress,
    StopFlag,
    default_tile_size,
    resolved_tile_size,
    uses_test_time_augmentation,
)
from ..core.model import UNet
from ..core.postprocess import InstanceMethod, MaskSteps, mask_steps
from ._resume import Notice as Notice  # what a resumable run says first
from ._resume import Recorded, TileRecord, partial_path, resumable_store
from ._store_job import StoreJob, resume_fingerprint, store_job
from ._zarr_labels import refine_store_mask, write_instances
from ._zarr_store import (
    ProbabilitiesAndMask,
    check_complete,
    create_arrays,
    open_arrays,
    open_group,
    publish,
)
from ._zarr_store import open_outputs as open_outputs  # also what the reader uses
from .axes import (
    check_axes,
    describe_channels,
    drop_leading_singletons,
    guessed_axes,
    slice_count,
)
from .volumes import iter_predict_stack

__all__ = [
    "OUT_OF_CORE_THRESHOLD",
    "check_instance_method",
    "needs_out_of_core",
    "open_outputs",
    "open_zarr_input",
    "output_pixels",
    "predict_to_zarr",
]

OUT_OF_CORE_THRESHOLD = 2**25
"""Pixels (Z x Y x X) above which outputs should go to a zarr store, not memory.

At 2 classes the in-memory outputs take 13 bytes a pixel (probabilities 8, mask
1, instances 4): about 440 MB at this threshold.
"""


def output_pixels(shape: tuple[int, ...], axes: str) -> int:
    """Pixels of the outputs of one channel: Z x Y x X."""
    plane = int(shape[axes.index("Y")]) * int(shape[axes.index("X")])
    return plane * slice_count(shape, axes)


def needs_out_of_core(shape: tuple[int, ...], axes: str) -> bool:
    """Whether the outputs of an input exceed :data:`OUT_OF_CORE_THRESHOLD`."""
    return output_pixels(shape, axes) > OUT_OF_CORE_THRESHOLD


def open_zarr_input(path: str | os.PathLike) -> Any:
    """The image array of a zarr store, opened read-only (nothing is loaded).

    A group gives its array ``"0"`` (the full-resolution level of an OME-Zarr
    multiscale image) or its only array (:func:`zarr_input_array`). An array of more
    than 4 axes comes without its leading axes of length 1, as a lazy view
    (:func:`~napari_unet.io.axes.drop_leading_singletons`): OME-Zarr's
    (1, 1, Z, Y, X) is a (Z, Y, X) stack.
    """
    return drop_leading_singletons(zarr_input_array(path)[0])


def zarr_input_array(path: str | os.PathLike) -> tuple[Any, str | None]:
    """The array of a zarr store that is the image, as stored, and its name in the
    store's group (None when the store is the array itself): ``"0"`` or the only one.

    Raises
    ------
    ValueError
        Not a zarr store, or a group holding several arrays and none named ``"0"``.
    """
    import zarr

    try:
        node = zarr.open(str(path), mode="r")
    except Exception as error:  # zarr raises many types for a non-store
        raise ValueError(f"cannot open zarr store {path}: {error}") from error
    if hasattr(node, "shape"):
        return node, None
    names = sorted(node.array_keys())
    if "0" in names or len(names) == 1:
        name = "0" if "0" in names else names[0]
        return node[name], name
    raise ValueError(f"zarr group {path} holds arrays {names}; give the path of one of them")


def predict_to_zarr(
    image: Any,
    model: UNet,
    store_path: str | os.PathLike,
    *,
    axes: str | None = None,
    rgb: bool | None = None,
    config: PredictConfig | None = None,
    tile_size: int | str | Unset | None = UNSET,
    batch_size: int | Unset = UNSET,
    device: str | torch.device | Unset | None = UNSET,
    instances: InstanceMethod | Unset | None = UNSET,
    progress: Callable[[Progress], None] | None = None,
    stop: StopFlag = None,
    test_time_augmentation: bool | Unset = UNSET,
    provenance: dict | None = None,
    before_publish: Callable[[], None] | None = None,
    resume: bool = True,
) -> Path:
    """Predict an image or stack of any size into a zarr store, tile by tile.

    Parameters
    ----------
    image : array-like
        2-D image or stack (see :mod:`napari_unet.io.axes`): numpy, zarr, dask...
        No read is larger than one input tile (context included).
    model : UNet
    store_path : path-like
        The store (a folder, e.g. ``out/cells.zarr``); replaced if it exists.
    axes, rgb : see :mod:`napari_unet.io.axes`.
    config : PredictConfig, optional
        The options (default ``PredictConfig()``); the keyword arguments given replace
        its fields.
    tile_size : int, "auto" or None
        Input tile edge; "auto", None or 0 =
        :func:`~napari_unet.core.inference.default_tile_size` (the store is written
        tile by tile, so never the whole image in one pass).
    batch_size, device, stop, test_time_augmentation
        As for :func:`napari_unet.core.inference.predict`.
    instances : {"components", "watershed", None}
        How instance labels are made (None: not at all); objects under
        ``config.min_instance_size`` pixels are not instances.
    progress : callable
        Called with :class:`~napari_unet.io.volumes.StackProgress` during prediction,
        then ``Progress(0, 1, "mask")`` before the mask is refined, and
        ``Progress(done, total, "instances")`` before and after each labelled slice;
        a resumable run first with a :class:`~napari_unet.io._resume.Notice` (stage
        ``"notice"``) when it resumes or discards an earlier run's partial store.
    provenance : dict, optional
        Stored in the attributes as ``napari_unet_provenance`` (see
        :mod:`napari_unet.io.reruns`); it also tells whether an interrupted run's tiles
        can be resumed.
    before_publish : callable, optional
        Called once the store is complete, before it is renamed into place; what it
        raises leaves ``store_path`` as it was (the batch checks its lock there).
    resume : bool
        With ``provenance``: an interrupted run (KeyboardInterrupt, SIGTERM in the CLI,
        ``stop``) keeps its unfinished store, ``.NAME.partial``, and the next run with the
        same model, input and network options skips the tiles written there
        (:mod:`napari_unet.io._resume`). Without ``provenance``, or False: the unfinished
        store has a name of its own and is removed on any exception.

    Returns
    -------
    pathlib.Path
        ``store_path``, complete; see the module docstring for its layout.

    Raises
    ------
    RuntimeError
        The store lost arrays while it was written (removed by another program): it
        is not published.
    OutputsBusy
        Resumable: another run is writing the same store.
    """
    settings, method = _zarr_settings(
        config, tile_size, batch_size, device, instances, test_time_augmentation
    )
    axes = _checked_axes(image, model, axes, rgb, method)
    settings = settings.replace(
        tile_size=resolved_tile_size(model, settings.tile_size) or default_tile_size(model)
    )
    job = store_job(image, model, axes, settings, method)
    store_path = Path(store_path)
    if provenance is None or not resume:
        if provenance is not None:  # --overwrite: an earlier run's kept tiles go too
            shutil.rmtree(partial_path(store_path), ignore_errors=True)
        partial = store_path.with_name(f".{store_path.name}.{uuid.uuid4().hex}.partial")
        try:
            _write_store(partial, store_path, job, progress, stop, provenance, before_publish)
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise
        return store_path
    fingerprint = resume_fingerprint(provenance, job)
    with resumable_store(store_path, fingerprint, job.block, job.grid, progress) as record:
        _write_store(
            record.path, store_path, job, progress, stop, provenance, before_publish, record
        )
    return store_path


def _zarr_settings(
    config: PredictConfig | None,
    tile_size: int | str | Unset | None,
    batch_size: int | Unset,
    device: str | torch.device | Unset | None,
    instances: InstanceMethod | Unset | None,
    test_time_augmentation: bool | Unset,
) -> tuple[PredictConfig, InstanceMethod | None]:
    """The options of :func:`predict_to_zarr` (``config`` with the keyword arguments
    given) and its instance method (None: no instances)."""
    if tile_size is not UNSET and not tile_size:  # None and 0 meant the default tile here
        tile_size = "auto"
    if instances is not UNSET:
        _check_method(instances)
    settings = predict_config(
        config,
        PredictConfig(),
        tile_size=tile_size,
        batch_size=batch_size,
        device=device,
        test_time_augmentation=test_time_augmentation,
        instances=UNSET if instances is None else instances,  # None: the config's is unused
    )
    return settings, None if instances is None else settings.instances


def _checked_axes(
    image: Any, model: UNet, axes: str | None, rgb: bool | None, method: InstanceMethod | None
) -> str:
    """The axes of ``image`` (given or guessed, then checked), once ``method`` is known
    to label its (Y, X) planes (:func:`check_instance_method`)."""
    in_channels = model.config.in_channels
    axes = check_axes(axes or guessed_axes(image.shape, in_channels, rgb), image.shape, in_channels)
    check_instance_method(
        method, (int(image.shape[axes.index("Y")]), int(image.shape[axes.index("X")]))
    )
    return axes


def _write_store(
    partial: Path,
    store_path: Path,
    job: StoreJob,
    progress: Callable[[Progress], None] | None,
    stop: StopFlag,
    provenance: dict | None,
    before_publish: Callable[[], None] | None,
    record: TileRecord | None = None,
) -> None:
    """Fill the store at ``partial`` (:func:`_fill_store`), store its attributes, check
    that it is whole, call ``before_publish`` and rename it to ``store_path``."""
    attributes = _fill_store(partial, job, progress, stop, record)
    if provenance is not None:
        attributes["napari_unet_provenance"] = provenance
    open_group(partial).attrs.update({"napari_unet": attributes})
    check_complete(partial, store_path, job.method is not None)
    if before_publish is not None:
        before_publish()
    publish(partial, store_path)


def _fill_store(
    partial: Path,
    job: StoreJob,
    progress: Callable[[Progress], None] | None,
    stop: StopFlag,
    record: TileRecord | None,
) -> dict:
    """Write probabilities, mask and (with ``job.method``) instances into the store at
    ``partial``, tile by tile, skipping and recording tiles with ``record``; return the
    attributes that describe them."""
    image, model, settings, block = job.image, job.model, job.settings, job.block
    if record is not None and record.resumed:
        arrays = open_arrays(partial)
    else:
        arrays = create_arrays(partial, image.shape, job.axes, model.config.n_classes, block)
    out: Any = ProbabilitiesAndMask(arrays["prob"], arrays["mask"])
    steps = iter_predict_stack(
        image,
        model,
        out if record is None else Recorded(out, record),
        axes=job.axes,
        config=settings,
        stop=stop,
        max_read_pixels=job.tile_shape[0] * job.tile_shape[1],
        skip=None if record is None else record.skip,
    )
    for step in steps:
        if progress is not None:
            progress(step)
    if record is not None:
        record.start_post_processing()
    refinement = mask_steps(model, settings)
    if progress is not None:  # minutes on a large image: say what runs
        progress(Progress(0, 1, "mask"))
    refine_store_mask(partial, arrays, block, refinement, progress)
    count = None
    if job.method is not None:
        count = write_instances(
            partial,
            arrays["mask"],
            job.method,
            block,
            progress,
            stop,
            settings.min_instance_size,
            settings.fill_holes,
        )
    return _store_attributes(job, refinement, count)


def _store_attributes(job: StoreJob, refinement: MaskSteps, count: int | None) -> dict:
    """The attributes that describe a filled store: how the image was read, the model,
    the options, the (Y, X) chunk, the mask's ``refinement`` and the number of instances
    (None without ``job.method``)."""
    image, model, axes, settings, method = job.image, job.model, job.axes, job.settings, job.method
    block = job.block
    attributes = describe_channels(axes, tuple(image.shape), model.config.in_channels)
    attributes.update(
        model=model.info.source,
        class_names=list(model.info.class_names),
        tile_size=settings.tile_size,
        test_time_augmentation=uses_test_time_augmentation(model, settings),
        chunk=list(block),
        instances=method,
        min_instance_size=settings.min_instance_size,
        fill_holes=settings.fill_holes,
        close_boundaries=refinement.close_boundaries,
        background_threshold=refinement.background_threshold,
        n_instances=count,
    )
    return attributes


def check_instance_method(
    method: Any, plane: tuple[int, int], advice: str = "use instances='components'"
) -> None:
    """Refuse an unknown instance method, or watershed for a (Y, X) ``plane`` above
    :data:`OUT_OF_CORE_THRESHOLD` pixels, ending the message with ``advice``.

    Raises
    ------
    ValueError
        The method cannot label such planes.
    """
    _check_method(method)
    if method == "watershed" and plane[0] * plane[1] > OUT_OF_CORE_THRESHOLD:
        raise ValueError(
            f"watershed instances need a whole {plane[0]}x{plane[1]} slice in memory (above "
            f"{OUT_OF_CORE_THRESHOLD} pixels); {advice} for images this large"
        )


def _check_method(method: Any) -> None:
    if method not in (None, "components", "watershed"):
        raise ValueError(f"instances must be 'components', 'watershed' or None, got {method!r}")

"""Inputs of batch prediction: finding them, checking them cheaply, opening them.

An input is an image file (TIFF, PNG, JPEG, BMP; a NumPy ``.npy`` array, memory-mapped,
never unpickled) or a zarr store. Its axes come
from ``--axes`` / ``axes=``, else from what a TIFF file or an OME-Zarr store
declares (:func:`file_axes`), else from the axes rule of :mod:`napari_unet.io.axes`.
Without ``--axes``, an image declaring two stacking axes (e.g. T and Z) is refused,
and so is a guess whose planes are narrower than
:data:`~napari_unet.io.axes.MIN_PLANE_SIZE` pixels (a (Y, X, 2) array). A zarr
array of more than 4 axes is read without its leading axes of length 1
(:func:`~napari_unet.io.axes.drop_leading_singletons`), and given axes name the
axes that remain.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from ._declared_axes import declared_axes, ome_axes, pages_hint
from .axes import check_axes, check_guessed_plane, guess_axes
from .data import _TIFF_SUFFIXES, ImageReadError, not_a_file_reason, read_image
from .outofcore import needs_out_of_core, open_zarr_input

__all__ = [
    "FORMATS",
    "IMAGE_SUFFIXES",
    "InputInfo",
    "expand_inputs",
    "file_axes",
    "is_zarr_store",
    "open_input",
    "open_tiff_lazily",
    "probe_input",
    "read_npy",
]

IMAGE_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg", ".bmp", ".npy")
#: The formats napari-unet reads, in words.
FORMATS = "TIFF, PNG, JPEG, BMP, NumPy .npy files and zarr stores"
_NUMERIC_KINDS = "biuf"


@dataclass(frozen=True)
class InputInfo:
    """Shape, axes and output format of an input, found without reading its pixels."""

    path: Path
    shape: tuple[int, ...]
    axes: str
    output_format: str = "tiff"
    guessed: bool = False
    """Whether the axes are the rule's guess (:func:`~napari_unet.io.axes.guess_axes`):
    neither given nor declared by the file; or read from a file whose stacking axis is
    only tifffile's page sequence ("I", "Q"), which says nothing of what the pages are."""


def is_zarr_store(path: Path) -> bool:
    """Whether ``path`` is a zarr store (a folder named ``*.zarr`` or with zarr metadata)."""
    markers = ("zarr.json", ".zarray", ".zgroup")
    return path.is_dir() and (path.suffix == ".zarr" or any((path / m).exists() for m in markers))


def expand_inputs(
    paths: Sequence[str | os.PathLike], left_out: list[Path] | None = None
) -> list[Path]:
    """Input files: files and zarr stores as given, folders replaced by their images.

    A folder contributes its image files (``IMAGE_SUFFIXES``) and zarr stores,
    sorted by name, not recursing, less this package's own outputs
    (:func:`~napari_unet.io.outputs.is_own_output`: a folder that is also the output
    folder is read again as it was) and hidden files: the temporaries of unfinished
    writes, and the ``._<name>`` files macOS leaves beside each file on drives it does
    not format itself (USB sticks, network shares), which are not images.

    Parameters
    ----------
    paths : sequence of path-like
    left_out : list, optional
        Receives the outputs of this package left out of folders.
    """
    from .outputs import is_own_output

    found: list[Path] = []
    for path in map(Path, paths):
        if not path.is_dir() or is_zarr_store(path):
            found.append(path)
            continue
        for child in sorted(path.iterdir()):
            if child.name.startswith("."):
                continue
            if not (is_zarr_store(child) or _is_image_file(child)):
                continue
            if is_own_output(child):
                if left_out is not None:
                    left_out.append(child)
                continue
            found.append(child)
    return found


def _is_image_file(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES


def file_axes(path: str | os.PathLike) -> str | None:
    """Axes a TIFF file or OME-Zarr store declares, in :mod:`napari_unet.io.axes` letters.

    A TIFF's axes are tifffile's series axes; an OME-Zarr's, its ``multiscales``
    axes (t, c, z, y, x), less the leading axes of length 1 its array is read
    without (:func:`~napari_unet.io.outofcore.open_zarr_input`).

    ``C`` (channels) is kept; a single stacking axis (Z, T, pages, ...) is the
    slice axis ``Z``; ``S`` (RGB samples) only when it is the last axis, as napari
    shows it: tifffile stores a (3, Y, X) array as planar RGB unless told
    otherwise, and napari shows such a file as 3 slices. Returns None (then the
    axes rule decides) for other files, planar RGB, and axes that do not settle
    the question: tifffile's unknown axis ``Q``, as in any array written by
    ``tifffile.imwrite`` without axes metadata.

    Raises
    ------
    ValueError
        The image declares two stacking axes, e.g. T and Z of a (T, Z, Y, X) movie:
        the 2D model runs along one slice axis.
    """
    path = Path(path)
    if is_zarr_store(path):
        shape, declared = _zarr_header(path)
        return None if declared is None else declared_axes(shape, declared)
    if path.suffix.lower() not in _TIFF_SUFFIXES:
        return None
    return declared_axes(*_tiff_header(path))


def _tiff_header(path: Path) -> tuple[tuple[int, ...], str]:
    """Shape and tifffile's axes of a TIFF's first series."""
    try:
        with _tifffile_logs_off(), tifffile.TiffFile(path) as tiff:
            return tuple(tiff.series[0].shape), tiff.series[0].axes
    except Exception as error:  # tifffile raises many types for broken files
        raise _unreadable_tiff(path, error) from error


@contextmanager
def _tifffile_logs_off() -> Iterator[None]:
    """Silence tifffile's own log lines (e.g. "<tifffile.TiffPages @…> invalid offset to
    first page …" on stderr) while a header is read: a broken file gets our message."""
    logger = logging.getLogger("tifffile")
    logger.addFilter(_no_record)  # a filter, not the level: threads cannot leave it set
    try:
        yield
    finally:
        logger.removeFilter(_no_record)


def _no_record(record: logging.LogRecord) -> bool:
    """A logging filter that lets no record through."""
    return False


def _zarr_header(path: Path) -> tuple[tuple[int, ...], str | None]:
    """Shape of the array :func:`open_zarr_input` opens, and the axes its OME-Zarr
    metadata declares (in tifffile's letters, T C Z Y X, Q for others), or None."""
    shape = tuple(int(size) for size in open_zarr_input(path).shape)
    return shape, ome_axes(path, len(shape))


def _unreadable_tiff(path: Path, error: Exception) -> ImageReadError:
    reason = f"unreadable, truncated or not a TIFF ({type(error).__name__}: {error})"
    return ImageReadError(path, reason)


def _only_pages(declared: str | None) -> bool:
    """Whether a file's axes name no axis but (Y, X, samples) and tifffile's pages."""
    return declared is not None and set(declared) - set("YXS") == set(declared) & set("IQ") != set()


def probe_input(
    path: Path, in_channels: int, axes: str | None = None, output_format: str = "auto"
) -> InputInfo:
    """Check an input fits the model, reading headers only (PNG/JPEG are decoded).

    Raises
    ------
    ImageReadError
        Missing or unreadable file.
    ValueError
        Axes or channels the model cannot take; without ``axes``, a TIFF or
        OME-Zarr image that declares two stacking axes, or a guess with planes too small
        (:func:`~napari_unet.io.axes.check_guessed_plane`). The message names the file.
    """
    declared: str | None = None
    if is_zarr_store(path):
        shape, declared = _zarr_header(path)
    elif not path.is_file():
        raise ImageReadError(path, not_a_file_reason(path))
    elif path.suffix.lower() in _TIFF_SUFFIXES:
        shape, declared = _tiff_header(path)
    elif path.suffix.lower() == ".npy":
        shape = read_npy(path).shape
    else:
        shape = _read_other(path).shape
    guessed = not axes
    try:
        if not axes and declared is not None:
            axes = declared_axes(shape, declared)  # None: what it declares is unsettled
        guessed = guessed and (not axes or _only_pages(declared))
        if not axes:
            axes = guess_axes(shape, in_channels)
            check_guessed_plane(axes, shape)
        axes = check_axes(axes, shape, in_channels)
    except ValueError as error:
        raise ValueError(f"{path}: {error}{pages_hint(declared, shape, in_channels)}") from error
    fmt = output_format
    if fmt == "auto":
        fmt = "zarr" if is_zarr_store(path) or needs_out_of_core(shape, axes) else "tiff"
    return InputInfo(path, shape, axes, fmt, guessed)


@contextmanager
def open_input(path: Path, lazy: bool = False, axes: str | None = None) -> Iterator[Any]:
    """The pixels of an input, for the duration of a ``with`` block.

    Yields a numpy array, or a lazy zarr array for a zarr store. With ``lazy`` a
    TIFF file is not loaded whole when it need not be (see
    :func:`open_tiff_lazily`; ``axes`` as for it), so out-of-core prediction reads
    it tile by tile; the file is closed when the block ends.
    """
    if is_zarr_store(path):
        yield open_zarr_input(path)
    elif lazy and path.suffix.lower() in _TIFF_SUFFIXES:
        with ExitStack() as closing:
            yield open_tiff_lazily(path, axes, closing)
    elif path.suffix.lower() == ".npy":
        yield read_npy(path)
    else:
        yield read_image(path)


def read_npy(path: Path) -> np.ndarray:
    """A NumPy ``.npy`` file, memory-mapped read-only (pickled objects are refused).

    Raises
    ------
    ImageReadError
        Not a regular file, not an ``.npy`` array, or not a numeric image of 2 or more axes.
    """
    if not path.is_file():
        raise ImageReadError(path, not_a_file_reason(path))
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception as error:  # ValueError (pickled objects), OSError, ...
        reason = f"not a NumPy array file, or one holding Python objects ({type(error).__name__})"
        raise ImageReadError(path, reason) from error
    if not isinstance(array, np.ndarray) or array.dtype.kind not in _NUMERIC_KINDS:
        kind = getattr(array, "dtype", type(array).__name__)
        raise ImageReadError(path, f"not a numeric image (holds {kind})")
    if array.size == 0 or array.ndim < 2:
        raise ImageReadError(path, f"no pixel data (shape {array.shape})")
    return array


def _read_other(path: Path) -> np.ndarray:
    """:func:`~napari_unet.io.data.read_image` of a file that is not TIFF or ``.npy``; a
    file whose suffix names no format read here is said to be one."""
    try:
        return read_image(path)
    except ImageReadError as error:
        if path.suffix.lower() in IMAGE_SUFFIXES:
            raise
        reason = f"not an image format napari-unet reads ({FORMATS})"
        raise ImageReadError(path, reason) from error


PAGE_DECODE_LIMIT = 2**24
"""Largest plane (pixels) stored as one compressed chunk that is still read lazily.

Every tile of such a plane decodes the whole plane again: cheap for the pages of
an ordinary stack, not for one huge page, which is read whole instead.
"""


def open_tiff_lazily(path: Path, axes: str | None = None, closing: ExitStack | None = None) -> Any:
    """A TIFF's first series (full resolution), read on demand where the file allows.

    Parameters
    ----------
    path : Path
    axes : str, optional
        The series' axes (:mod:`napari_unet.io.axes` letters), to find Y and X;
        None: the last two axes (not right for RGB with samples last).
    closing : contextlib.ExitStack, optional
        Receives the file's ``close`` when a zarr view is returned (else the
        file is closed when the view is garbage-collected).

    Returns
    -------
    array-like
        A read-only :class:`numpy.memmap` for uncompressed contiguous data (the
        operating system pages it in); else tifffile's zarr view when a plane
        is stored in several tiles or strips (a tile decodes only the chunks it
        covers), or when a stack stores each plane of at most
        :data:`PAGE_DECODE_LIMIT` pixels as one chunk; else the array read whole.

    Raises
    ------
    ImageReadError
        If the file cannot be read as a TIFF (from :func:`~napari_unet.io.data.read_image`).
    """
    import zarr

    try:
        return tifffile.memmap(path, mode="r")
    except Exception:  # compressed or scattered data (or no TIFF: read_image says so)
        pass
    try:
        store = tifffile.imread(path, aszarr=True, series=0, level=0)
    except Exception:
        return read_image(path)
    try:
        view = zarr.open_array(store, mode="r")
    except Exception:  # e.g. a zarr version this tifffile cannot serve
        store.close()
        return read_image(path)
    y_axis, x_axis = (axes.index("Y"), axes.index("X")) if axes else (-2, -1)
    plane = view.shape[y_axis] * view.shape[x_axis]
    chunked_plane = view.chunks[y_axis] * view.chunks[x_axis] < plane
    several_chunks = math.prod(view.chunks) < math.prod(view.shape)
    if chunked_plane or (several_chunks and plane <= PAGE_DECODE_LIMIT):
        if closing is not None:
            closing.callback(store.close)
        return view
    store.close()
    return read_image(path)

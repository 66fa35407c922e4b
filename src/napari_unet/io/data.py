"""Data access: image I/O, the real benchmark data, channel rules.

Annotation convention: 0 = unlabelled, 1 = background, 2..K = foreground classes.
The real data (ISBI 2012 EM, DSB 2018 nuclei) is never part of the package; it is
read from :func:`data_dir`. Synthetic data lives in :mod:`napari_unet.io.synthetic`
(re-exported here). No napari or Qt import here.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import tifffile
from skimage import io as skimage_io

from ..core._atomic import atomic_open
from ..core.normalization import check_real
from .synthetic import simulate_scribbles, synthetic_nuclei

__all__ = [
    "DATA_ENV_VAR",
    "ImageReadError",
    "data_dir",
    "load_dsb2018",
    "load_isbi",
    "read_image",
    "simulate_scribbles",
    "synthetic_nuclei",
    "to_channels_first",
    "working_dtype",
    "write_tiff",
]

DATA_ENV_VAR = "NAPARI_UNET_DATA"
_TIFF_SUFFIXES = (".tif", ".tiff")
_LUMINANCE = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R BT.601 R, G, B


class ImageReadError(ValueError):
    """An image file is missing, unreadable or truncated.

    Attributes
    ----------
    path : pathlib.Path
        The file that could not be read.
    reason : str
        Why, in words.
    """

    def __init__(self, path: str | os.PathLike, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"cannot read image {self.path}: {reason}")

    def __reduce__(self) -> tuple:
        return type(self), (self.path, self.reason)


def data_dir() -> Path:
    """Folder holding the real data (``isbi2012-em/``, ``dsb2018-nuclei/``).

    Resolution order: the environment variable ``NAPARI_UNET_DATA`` if set (even
    if that folder does not exist); else ``<cwd>/../shared/data`` if it exists
    (running from the repository root); else ``<repository>/../shared/data``
    guessed from this file's location (source checkouts); else, when neither
    exists, ``<cwd>/../shared/data``, so error messages name a sensible place.

    Returns
    -------
    pathlib.Path
        The folder; check ``.is_dir()`` before use.
    """
    configured = os.environ.get(DATA_ENV_VAR)
    if configured:
        return Path(configured).expanduser()
    from_cwd = Path.cwd().parent / "shared" / "data"
    parents = Path(__file__).resolve().parents  # .../<repo>/src/napari_unet/io/data.py
    candidates = [from_cwd] + ([parents[3].parent / "shared" / "data"] if len(parents) > 4 else [])
    return next((folder for folder in candidates if folder.is_dir()), from_cwd)


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file: TIFF with tifffile, PNG/JPEG/other with scikit-image.

    Parameters
    ----------
    path : str or os.PathLike
        Image file (``.tif``/``.tiff``, ``.png``, ``.jpg``, ...).

    Returns
    -------
    numpy.ndarray
        The pixel data as stored, e.g. (Y, X), (Y, X, 3) for RGB or (Z, Y, X); a
        gray + alpha image decoded by scikit-image (an LA PNG) loses its alpha:
        (Y, X), as RGBA loses it by the channel rule.

    Raises
    ------
    ImageReadError
        If the file is missing, a folder, or cannot be decoded (corrupt/truncated).
    """
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(path, not_a_file_reason(path))
    try:
        if path.suffix.lower() in _TIFF_SUFFIXES:
            image = tifffile.imread(path)
        else:
            image = skimage_io.imread(path)
    except Exception as error:  # decoders raise many types: report them uniformly
        cause = type(error).__name__
        if path.suffix.lower() in _TIFF_SUFFIXES:  # tifffile's messages are short and useful
            cause += f": {str(error).split('. ')[0]}"
        reason = f"unreadable, truncated or not an image ({cause})"
        raise ImageReadError(path, reason) from error
    image = np.asarray(image)
    if path.suffix.lower() not in _TIFF_SUFFIXES and image.ndim == 3 and image.shape[-1] == 2:
        image = image[..., 0]  # gray + alpha: scikit-image's decoders give no other 2 samples
    if image.size == 0 or image.ndim < 2:
        raise ImageReadError(
            path, f"no pixel data (truncated or corrupt file; shape {image.shape})"
        )
    return image


def not_a_file_reason(path: Path) -> str:
    """Why ``path``, which is not a regular file, cannot be read as an image."""
    if path.is_dir():
        return "is a folder"
    if path.exists():  # reading a FIFO would block, a device might never end
        return "not a regular file (a pipe, socket or device?)"
    return "file not found"


def write_tiff(
    path: str | os.PathLike,
    array: np.ndarray,
    metadata: dict | None = None,
    axes: str | None = None,
) -> Path:
    """Write a zlib-compressed TIFF atomically.

    The data goes to a temporary file in the destination folder, which then
    replaces ``path`` with :func:`os.replace`, so readers never see a half-written
    file and no temporary file is left behind, even on error. Boolean arrays are
    stored as uint8.

    Parameters
    ----------
    path : str or os.PathLike
        Destination; missing parent folders are created.
    array : numpy.ndarray
        Image of any shape/dtype tifffile supports.
    metadata : dict, optional
        JSON-serialisable entries stored in the image description (tifffile's
        shaped metadata, read back with ``TiffFile.shaped_metadata``).
    axes : str, optional
        The array's axes in tifffile's letters, one per axis (``"ZCYX"``, ``"YX"``...),
        stored in that metadata: tifffile (``series[0].axes``) and the readers built on
        it then say them, instead of ``Q`` for each axis before Y.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    ValueError
        ``axes`` of another length than the array's dimensions, or not ending in ``YX``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = np.asarray(array)
    if data.dtype == bool:
        data = data.astype(np.uint8)
    described = dict(metadata or {})
    if axes is not None:
        if len(axes) != data.ndim or not axes.upper().endswith("YX"):
            raise ValueError(f"axes {axes!r} do not fit an array of shape {data.shape}")
        described["axes"] = axes.upper()
    with atomic_open(path) as stream:
        tifffile.imwrite(
            stream, data, compression="zlib", photometric="minisblack", metadata=described
        )
    return path


def _dataset_folder(name: str) -> Path:
    """``data_dir() / name``, or a FileNotFoundError saying how to configure it."""
    folder = data_dir() / name
    if not folder.is_dir():
        raise FileNotFoundError(
            f"dataset folder {folder} not found; set the {DATA_ENV_VAR} environment "
            f"variable to the folder holding {name}/ (default ../shared/data)"
        )
    return folder


def load_isbi(indices: Iterable[int] = range(20)) -> tuple[np.ndarray, np.ndarray]:
    """ISBI 2012 EM training slices and membrane labels from :func:`data_dir`.

    Parameters
    ----------
    indices : iterable of int
        Slice numbers (files ``NN.png``), 0..19.

    Returns
    -------
    images : numpy.ndarray of uint8, shape (N, 512, 512)
        Grayscale EM slices.
    labels : numpy.ndarray of uint8, shape (N, 512, 512)
        255 = cell interior, 0 = membrane.

    Raises
    ------
    FileNotFoundError
        If the dataset folder is missing (:class:`ImageReadError` for a missing file).
    """
    folder = _dataset_folder("isbi2012-em")
    names = [f"{index:02d}.png" for index in indices]
    if not names:
        raise ValueError("indices is empty")
    images = np.stack([read_image(folder / "image" / name) for name in names])
    labels = np.stack([read_image(folder / "label" / name) for name in names])
    if images.ndim != 3 or labels.shape != images.shape:
        raise ValueError(f"unexpected ISBI shapes: images {images.shape}, labels {labels.shape}")
    return images.astype(np.uint8, copy=False), labels.astype(np.uint8, copy=False)


def load_dsb2018() -> tuple[np.ndarray, np.ndarray]:
    """The DSB 2018 fluorescent-nuclei image and its instance labels.

    Returns
    -------
    image : numpy.ndarray of uint16, shape (256, 512)
        Fluorescence image.
    instances : numpy.ndarray of uint16, shape (256, 512)
        0 = background, 1..N = nuclei (touching nuclei have different labels).

    Raises
    ------
    FileNotFoundError
        If the dataset folder is missing (:class:`ImageReadError` for a missing file).
    """
    folder = _dataset_folder("dsb2018-nuclei")
    image, instances = read_image(folder / "image.tif"), read_image(folder / "mask.tif")
    if image.ndim != 2 or instances.shape != image.shape:
        raise ValueError(f"unexpected DSB shapes: image {image.shape}, mask {instances.shape}")
    return image.astype(np.uint16, copy=False), instances.astype(np.uint16, copy=False)


def to_channels_first(
    image: np.ndarray, in_channels: int, *, rgb: bool | None = None
) -> np.ndarray:
    """Arrange an image as (C, Y, X) floats with the channels a model expects.

    Axes rule:

    * (Y, X) -> (1, Y, X);
    * (Y, X, 3 or 4) is channels-last RGB(A) when ``rgb=True``, or when
      ``rgb=None`` and the last axis is 3 or 4 long while the first is longer than
      4; alpha is dropped. With ``rgb=True`` a (3 or 4, Y, X) array is
      channels-first RGB(A) (alpha dropped too);
    * any other (C, Y, X) is kept as it is (``rgb=False`` forces this).

    Channel rule: C == ``in_channels`` is kept; 3 (RGB) channels for a 1-channel
    model become luminance ``0.299 R + 0.587 G + 0.114 B``; anything else raises.
    Values are not rescaled.

    Parameters
    ----------
    image : numpy.ndarray, shape (Y, X), (Y, X, C) or (C, Y, X)
        The image.
    in_channels : int
        Input channels of the model.
    rgb : bool, optional
        Whether the image is RGB(A); None = guess as above.

    Returns
    -------
    numpy.ndarray, shape (in_channels, Y, X)
        float32, or float64 for types wider than 16 bits (:func:`working_dtype`),
        so that normalisation sees every distinct value.

    Raises
    ------
    ValueError
        For other dimensionalities or channel counts, naming found and expected,
        and for complex images.
    """
    image = np.asarray(image)
    check_real(image.dtype)
    if image.ndim == 2:
        channels = image[np.newaxis]
    elif image.ndim == 3:
        channels = _arrange_3d(image, rgb)
    else:
        raise ValueError(f"expected a (Y, X) or 3-D image, got shape {image.shape}")
    found = channels.shape[0]
    work = working_dtype(image.dtype)
    if found == in_channels:
        return channels.astype(work)
    if found == 3 and in_channels == 1:
        return np.tensordot(_LUMINANCE.astype(work), channels.astype(work), axes=1)[np.newaxis]
    raise ValueError(
        f"the model expects {_count_channels(in_channels, 'input channel')} but the image "
        f"has {_count_channels(found, 'channel')} (image shape {image.shape})"
    )


def working_dtype(dtype: np.dtype) -> np.dtype:
    """The float type an image of ``dtype`` is handled in before normalisation.

    float32 for float32 and types of at most 16 bits; float64 for wider ones
    (uint32, int64, float64...): cast to float32 first, a uint32 image at
    3e9 + 0..199 keeps 2 distinct values and a float64 image near 1e300 becomes
    infinite. :func:`napari_unet.core.inference.normalize` brings it to float32.
    """
    dtype = np.dtype(dtype)
    wide = dtype.itemsize > 2 and dtype != np.float32
    return np.dtype(np.float64 if wide else np.float32)


def _count_channels(count: int, noun: str) -> str:
    """E.g. ``"3 input channels (RGB)"`` or ``"1 channel"``."""
    return f"{count} {noun}{'' if count == 1 else 's'}{' (RGB)' if count == 3 else ''}"


def _arrange_3d(image: np.ndarray, rgb: bool | None) -> np.ndarray:
    """(C, Y, X) view of a 3-D image following :func:`to_channels_first`'s rule."""
    last_is_colour = image.shape[-1] in (3, 4)
    if rgb is None:
        rgb = last_is_colour and image.shape[0] > 4
    if not rgb:
        return image
    if last_is_colour:
        return np.moveaxis(image[..., :3], -1, 0)
    if image.shape[0] in (3, 4):
        return image[:3]
    raise ValueError(f"rgb=True needs 3 or 4 colour channels first or last, got {image.shape}")

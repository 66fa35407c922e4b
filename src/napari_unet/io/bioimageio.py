"""bioimage.io model packages: export a U-Net as a zip, load such a zip back.

A package (spec 0.5, checked by ``bioimageio test OUT.zip``) holds ``rdf.yaml``,
the weights twice (``pytorch_state_dict`` with the stand-alone architecture file
:mod:`napari_unet.io._bioimageio_unet`, and TorchScript), a test input and the
matching output of the network as ``.npy`` tensors, a README and a cover image.
The network in the package returns class probabilities (softmax); the input is
normalised by ``scale_range`` with the model's :class:`~napari_unet.config.NormConfig`
percentiles, per channel over the whole image, as :func:`napari_unet.predict` does.
The two formulas differ only for a flat or tiny percentile range (see
:func:`scale_range`), so the test output is computed with bioimage.io's.
For a valid-padding U-Net the output is smaller than the input by ``2 * halo`` per
axis (described as a size reference with that offset); a "same" U-Net describes
its context as an output halo.

``rdf.yaml`` keeps the napari-unet metadata (architecture, normalisation, class
names, training history) under ``config: napari_unet``, so :func:`load_bioimageio`
rebuilds the same :class:`~napari_unet.core.model.UNet`. bioimageio.spec is imported
only inside these functions: ``pip install 'bioimageio.core>=0.11'``.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import tempfile
import uuid
import warnings
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config import ModelConfig, NormConfig
from ..core._atomic import replace
from ..core._limits import check_zip_sizes, read_zip_entry
from ..core.checkpoint import (
    MAX_METADATA_CHARS,
    MAX_TORCH_BYTES,
    CheckpointError,
    check_metadata,
    check_shapes,
    check_state_dict,
    check_torch_archive,
    check_weights,
    resolve_checkpoint,
)
from ..core.metadata import ModelMetadata
from ..core.model import UNet
from ._bioimageio_test_input import SCALE_RANGE_EPS as SCALE_RANGE_EPS
from ._bioimageio_test_input import default_test_size as default_test_size
from ._bioimageio_test_input import package_test_input, scale_range
from ._package_format import is_bioimageio_package as is_bioimageio_package

ARCHITECTURE_FILE = Path(__file__).with_name("_bioimageio_unet.py")
ARCHITECTURE_CALLABLE = "UNetProbabilities"
CONFIG_KEY = "napari_unet"
UNET_CITATION = (
    "Ronneberger, Fischer, Brox (2015): U-Net: Convolutional Networks for Biomedical "
    "Image Segmentation. MICCAI 2015",
    "10.1007/978-3-319-24574-4_28",
)
_INSTALL_HINT = (
    "bioimage.io export/import needs bioimageio.core: pip install 'bioimageio.core>=0.11'"
)


def export_bioimageio(
    model: UNet,
    path: str | os.PathLike,
    *,
    name: str | None = None,
    description: str | None = None,
    authors: Sequence[str] = ("napari-unet",),
    license: str = "BSD-3-Clause",
    test_image: np.ndarray | None = None,
    tags: Sequence[str] = (),
) -> Path:
    """Write ``model`` as a bioimage.io model package (zip), atomically.

    Parameters
    ----------
    model : UNet
        With its ``metadata`` (normalisation, class names, description); any device.
    path : path-like
        The zip file to write; its folder must exist.
    name : str, optional
        Name of the model on bioimage.io (letters, digits, ``_+- ()``; 5 to 128
        characters). Default: "napari-unet" and where the model was loaded from.
    description : str, optional
        One paragraph. Default: ``model.metadata["description"]``.
    authors : sequence of str
        Names of the people who trained the model.
    license : str
        SPDX identifier of the weights' licence (checked first, see :func:`check_license`).
    test_image : numpy.ndarray, optional
        Image for the test tensors and the cover, arranged by
        :func:`napari_unet.io.data.to_channels_first` ((Y, X), (C, Y, X), RGB); its centre
        is cropped to a valid input size (at most 512). Default: a synthetic nuclei
        image of :func:`default_test_size`. The test output is the network's output for
        it normalised by :func:`scale_range`, as ``bioimageio test`` normalises it: for
        a test image with a flat percentile range (e.g. > 98.8 % of its pixels at one
        value) that is not what :func:`napari_unet.predict` computes (see there).
    tags : sequence of str
        Extra tags (``unet``, ``segmentation``, ``2d``, ``pytorch`` and ``napari-unet``
        are always set).

    Returns
    -------
    Path
        The written zip, validated by bioimageio.spec.

    Raises
    ------
    ImportError
        If bioimageio.spec is not installed.
    ValueError
        If the licence is not an SPDX identifier, the test image does not fit the model
        (or holds NaN or infinite values) or the description is invalid.
    """
    check_license(license)  # before any work: a typo costs seconds otherwise
    from . import _bioimageio_rdf as rdf

    path = Path(path).expanduser()
    cpu_model, state = _float32_cpu_copy(model)
    info = model.info
    image = package_test_input(cpu_model, test_image)
    probabilities = _test_output(cpu_model, image, info.normalization)
    with tempfile.TemporaryDirectory(prefix="napari-unet-bioimageio-") as folder:
        files = rdf.write_package_files(Path(folder), cpu_model, state, image, probabilities)
        descr = rdf.model_description(
            cpu_model,
            files,
            metadata=info,
            name=name or _default_name(info),
            description=description or str(info.description or "U-Net"),
            authors=authors,
            license=license,
            tags=tags,
        )
        return _save_package(descr, path)


def _float32_cpu_copy(model: UNet) -> tuple[UNet, dict[str, torch.Tensor]]:
    """A copy of ``model`` on the CPU in evaluation mode, its floating-point weights in
    float32, and its state dict."""
    state = {
        key: value.detach().to("cpu", torch.float32 if value.is_floating_point() else value.dtype)
        for key, value in model.state_dict().items()
    }
    cpu_model = UNet(model.config)
    cpu_model.load_state_dict(state)
    cpu_model.eval()
    return cpu_model, state


def _test_output(model: UNet, image: np.ndarray, normalization: NormConfig) -> np.ndarray:
    """The (1, K, Y, X) class probabilities of ``model`` for the package's test ``image``
    (C, Y, X), normalised as ``bioimageio test`` normalises it (:func:`scale_range`)."""
    with torch.no_grad():  # the input as `bioimageio test` normalises it
        network_input = torch.from_numpy(scale_range(image, normalization)[None])
        return torch.softmax(model(network_input), dim=1).numpy()


def check_license(license: str) -> None:
    """Refuse a licence that bioimage.io does not accept, with a short message.

    Parameters
    ----------
    license : str
        An SPDX licence identifier that is not deprecated, e.g. ``MIT``.

    Raises
    ------
    ValueError
        If bioimageio.spec's ``LicenseId`` refuses it (pydantic's own message lists
        every SPDX identifier: some 30 KB).
    ImportError
        If bioimageio.spec is not installed.
    """
    try:
        from bioimageio.spec.model.v0_5 import LicenseId
    except ImportError as error:
        raise ImportError(_INSTALL_HINT) from error
    try:
        LicenseId(license)
    except ValueError:
        raise ValueError(
            f"unknown (or deprecated) SPDX licence {license[:80]!r}; e.g. MIT, CC-BY-4.0, "
            "BSD-3-Clause (the list: https://spdx.org/licenses)"
        ) from None


def load_bioimageio(path: str | os.PathLike, device: str | torch.device | None = None) -> UNet:
    """Rebuild a :class:`UNet` from a bioimage.io package written by napari-unet.

    Reads ``rdf.yaml`` (the napari-unet metadata under ``config: napari_unet``, or
    the architecture's keyword arguments of a package made with our architecture
    file) and the ``pytorch_state_dict`` weights (``torch.load(weights_only=True)``:
    never code). Other bioimage.io models are refused with a
    :class:`~napari_unet.core.checkpoint.CheckpointError`.

    A package is untrusted input, checked like a checkpoint before anything large
    is read or built: a regular file; entries that declare at most
    :data:`MAX_PACKAGE_BYTES` together (``rdf.yaml`` at most
    :data:`~napari_unet.core.checkpoint.MAX_METADATA_CHARS`, the weights at most
    :data:`~napari_unet.core.checkpoint.MAX_TORCH_BYTES`) and inflate to exactly what
    they declare; weights inside the package; the architecture within
    :mod:`napari_unet.core._limits`, the stored tensor shapes matching it, and no
    NaN or infinite weights.
    """
    path = resolve_checkpoint(path)
    try:
        from bioimageio.spec import load_model_description
        from bioimageio.spec.model import v0_5
    except ImportError as error:
        raise ImportError(_INSTALL_HINT) from error
    with _open_package(path) as archive:
        try:  # from the checked archive (not the path, which could be replaced meanwhile)
            descr = load_model_description(
                archive, format_version="latest", perform_io_checks=False
            )
        except ValueError as error:
            reason = " ".join(str(error).split())  # pydantic's lines, on one line
            raise CheckpointError(
                f"{path}: not a valid bioimage.io model package: {reason[:500]}"
            ) from error
        assert isinstance(descr, v0_5.ModelDescr)
        weights, metadata = _napari_unet_weights(path, descr)
        check_metadata(path, metadata)
        state = _read_state_dict(path, archive, weights.source)
    check_shapes(path, {key: tuple(value.shape) for key, value in state.items()}, metadata)
    check_weights(path, state)
    config = ModelConfig.from_dict(metadata.pop("model_config"))
    model = UNet(config)
    expected = model.state_dict()
    model.load_state_dict({key: value.to(expected[key].dtype) for key, value in state.items()})
    model.metadata = ModelMetadata.from_dict(metadata, config).replace(source=str(path)).to_dict()
    return model.to(device or "cpu").eval()


#: Most bytes all entries of a package may unpack to: two copies of the largest
#: sane weights (state dict and TorchScript) and 1 GiB for test tensors and images.
MAX_PACKAGE_BYTES = 2 * MAX_TORCH_BYTES + 2**30


def _napari_unet_weights(path: Path, descr: Any) -> tuple[Any, dict[str, Any]]:
    """The ``pytorch_state_dict`` weights entry of the model description ``descr`` of the
    package ``path``, and the napari-unet metadata it stores (or that its architecture's
    keyword arguments give).

    Raises
    ------
    CheckpointError
        Not a model exported by napari-unet, its metadata is not a mapping, or its
        preprocessing is not napari-unet's (a clip step not symmetric about 0).
    """
    weights = descr.weights.pytorch_state_dict
    stored = (descr.config.model_extra or {}).get(CONFIG_KEY)
    if weights is None or (
        stored is None and weights.architecture.callable != ARCHITECTURE_CALLABLE
    ):
        raise CheckpointError(
            f"{path}: a bioimage.io model but not one exported by napari-unet (only those "
            "can be loaded as a U-Net; run others with bioimageio.core)"
        )
    if stored is not None and not isinstance(stored, dict):
        raise CheckpointError(f"{path}: its config {CONFIG_KEY} must be a mapping")
    if stored is not None:
        return weights, dict(stored)
    try:
        return weights, _metadata_from_description(descr)
    except ValueError as error:  # preprocessing napari-unet cannot do the same way
        raise CheckpointError(f"{path}: {error}") from None


def _open_package(path: Path) -> zipfile.ZipFile:
    """The zip at ``path``, once its declared and actual sizes are checked.

    The YAML files (what bioimageio.spec reads) are inflated here, chunk by
    chunk, so one that inflates to more than it declares is refused before
    bioimageio.spec reads it; the other entries' declared sizes are bounded.
    """
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile, ValueError) as error:
        raise CheckpointError(f"{path}: not a readable zip file ({error})") from error
    try:
        entries = archive.infolist()
        yaml = [entry.filename for entry in entries if entry.filename.endswith(".yaml")]
        largest = dict.fromkeys(yaml, MAX_METADATA_CHARS)
        check_zip_sizes(entries, largest, MAX_TORCH_BYTES, MAX_PACKAGE_BYTES)
        for name in yaml:
            read_zip_entry(archive, name, MAX_METADATA_CHARS)
    except ValueError as error:
        archive.close()
        raise CheckpointError(f"{path}: refused: {error}") from error
    return archive


def _read_state_dict(path: Path, archive: zipfile.ZipFile, source: Any) -> dict[str, Any]:
    """The checked state dict stored in the package under ``source``."""
    from bioimageio.spec.common import RelativeFilePath

    name = str(source)
    if not isinstance(source, RelativeFilePath) or name not in archive.namelist():
        raise CheckpointError(
            f"{path}: its pytorch_state_dict weights ({name[:80]}) are not a file inside the "
            "package"
        )
    try:
        data = read_zip_entry(archive, name, MAX_TORCH_BYTES)
    except ValueError as error:
        raise CheckpointError(f"{path}: refused: {error}") from error
    check_torch_archive(path, io.BytesIO(data))
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as error:
        raise CheckpointError(
            f"{path}: refused or unreadable weights {name}: only plain tensors are loaded "
            f"(torch.load with weights_only=True), never code ({type(error).__name__})"
        ) from error
    check_state_dict(path, state)
    return state


def _metadata_from_description(descr: Any) -> dict[str, Any]:
    """napari-unet metadata of a package without ``config: napari_unet``."""
    kwargs = dict(descr.weights.pytorch_state_dict.architecture.kwargs)
    metadata: dict[str, Any] = {"model_config": kwargs, "description": descr.description}
    low, high, clip = NormConfig.low, NormConfig.high, None  # clipped only if it says so
    for step in descr.inputs[0].preprocessing:
        if step.id == "scale_range":
            low, high = step.kwargs.min_percentile, step.kwargs.max_percentile
        if step.id == "clip":
            clip = _symmetric_clip(step.kwargs.min, step.kwargs.max)
    metadata["normalization"] = NormConfig(low=low, high=high, clip=clip).to_dict()
    for axis in descr.outputs[0].axes:
        if axis.type == "channel":
            metadata["class_names"] = list(axis.channel_names)
    return metadata


def _symmetric_clip(low: Any, high: Any) -> float:
    """The ``clip`` of a package's clip step, which napari-unet applies as [-clip, clip]."""
    if low is None or high is None or low != -high:
        raise ValueError(
            f"its clip step [{low}, {high}] is not symmetric about 0, as napari-unet's "
            "normalisation clips; run it with bioimageio.core"
        )
    return float(high)


def _default_name(info: ModelMetadata) -> str:
    source = Path(str(info.source or "U-Net")).stem
    name = re.sub(r"[^A-Za-z0-9_+\- ()]", "-", f"napari-unet {source}")
    return name[:64]


def _save_package(descr: Any, path: Path) -> Path:
    """Zip ``descr`` to a temporary file beside ``path`` (validated), then rename it."""
    from bioimageio.spec import save_bioimageio_package

    if not path.parent.is_dir():
        raise OSError(f"cannot write {path}: folder {path.parent} does not exist")
    temporary = path.with_name(f".{path.stem}.{uuid.uuid4().hex}.zip")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            save_bioimageio_package(descr, output_path=temporary)
        replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path


def sha256(path: Path) -> str:
    """Hex SHA-256 of a file."""
    return hashlib.sha256(path.read_bytes()).hexdigest()

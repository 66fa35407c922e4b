"""The files and the ``rdf.yaml`` description of a bioimage.io package.

Used by :func:`napari_unet.io.bioimageio.export_bioimageio`; imports bioimageio.spec,
so it is only imported when a package is written.
"""

from __future__ import annotations

import re
import shutil
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import tifffile
import torch

from .. import __version__
from ..core.engine import TEST_TIME_TRANSFORM_WORDS
from ..core.metadata import ModelMetadata
from ..core.model import UNet
from ..core.trained_on import trained_on_words
from ._bioimageio_unet import UNetProbabilities
from .bioimageio import (
    ARCHITECTURE_CALLABLE,
    ARCHITECTURE_FILE,
    CONFIG_KEY,
    SCALE_RANGE_EPS,
    UNET_CITATION,
    sha256,
)

try:
    from bioimageio.spec.model import v0_5 as spec
except ImportError as error:  # pragma: no cover - depends on the environment
    from .bioimageio import _INSTALL_HINT

    raise ImportError(_INSTALL_HINT) from error

TAGS = ("unet", "segmentation", "2d", "pytorch", "napari-unet")


def write_package_files(
    folder: Path,
    model: UNet,
    state: dict[str, torch.Tensor],
    image: np.ndarray,
    probabilities: np.ndarray,
) -> dict[str, Path]:
    """Write architecture, weights, test tensors and cover into ``folder``; name -> path."""
    files = {
        "architecture": folder / "unet_architecture.py",
        "state_dict": folder / "weights_state_dict.pt",
        "torchscript": folder / "weights_torchscript.pt",
        "test_input": folder / "test_input.npy",
        "test_output": folder / "test_output.npy",
        "sample_input": folder / "sample_input.tif",
        "sample_output": folder / "sample_output.tif",
        "cover": folder / "cover.png",
        "readme": folder / "README.md",
    }
    shutil.copyfile(ARCHITECTURE_FILE, files["architecture"])
    torch.save(state, files["state_dict"])
    network = UNetProbabilities(**model.config.to_dict())
    network.load_state_dict(state)
    network.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit: still what consumers read
        torch.jit.save(torch.jit.script(network), str(files["torchscript"]))
    np.save(files["test_input"], image[None].astype(np.float32))
    np.save(files["test_output"], probabilities.astype(np.float32))
    tifffile.imwrite(files["sample_input"], image[None].astype(np.float32))
    tifffile.imwrite(files["sample_output"], probabilities.astype(np.float32))
    _write_cover(files["cover"], model, image, probabilities[0])
    return files


def _write_cover(path: Path, model: UNet, image: np.ndarray, probabilities: np.ndarray) -> None:
    """Input (first channel, where the output is) beside the foreground probability: 2:1."""
    import imageio.v3 as iio

    crop = (image.shape[-1] - probabilities.shape[-1]) // 2
    plane = image[0, crop : image.shape[-2] - crop, crop : image.shape[-1] - crop]
    low, high = np.percentile(plane, [1, 99.8])
    left = np.clip((plane - low) / max(high - low, 1e-12), 0, 1)
    right = 1.0 - probabilities[0]
    both = np.concatenate([left, right], axis=1)
    iio.imwrite(path, np.round(both * 255).astype(np.uint8), extension=".png")


def _geometry_text(model: UNet) -> str:
    """The README's line on the sizes of input and output: how much smaller the output
    is and the valid input sizes (valid convolutions), or the halo tiles need (same)."""
    if model.config.padding == "valid":
        sizes = model.valid_input_sizes(maximum=model.min_input_size + 3 * model.size_multiple)
        return (
            f"Valid (unpadded) convolutions: the output is {2 * model.halo} pixels smaller than "
            f"the input per axis ({model.halo} per side). Valid input sizes: "
            f"{model.min_input_size} + {model.size_multiple}·k ({', '.join(map(str, sizes))}, ...)."
            + _pooling_phase(model)
        )
    return (
        f"Same padding: output as large as the input (a multiple of {model.size_multiple}); "
        f"tiles should overlap by a halo of {model.halo} pixels per side."
    )


def _readme(model: UNet, info: ModelMetadata, name: str, description: str, test_size: int) -> str:
    cfg = model.config
    norm = info.normalization
    classes = ", ".join(f"{index} = {label}" for index, label in enumerate(info.class_names))
    geometry = _geometry_text(model)
    history = info.training_history
    return f"""# {name}

{description}

A U-Net (Ronneberger, Fischer and Brox 2015) exported by napari-unet {__version__}.
{model.describe()}.

## Input and output

- Input `input`: (batch, channel, y, x) float32, {cfg.in_channels} channel(s). Normalised per
  channel over the whole image: percentile {norm.low} mapped to 0 and percentile
  {norm.high} to 1 (`scale_range` with eps {SCALE_RANGE_EPS:g}), {_clip_words(norm.clip)}.
- Output `probabilities`: (batch, class, y, x) float32 softmax probabilities; class {classes}.
- {geometry}

{_postprocessing(info)}## Training

Trained on: {trained_on_words(info)}.
Training runs recorded: {len(history)}. The full record is in `rdf.yaml` under
`config: {CONFIG_KEY}`.

## Validation

The test tensors are a {test_size} x {test_size} pixel input and the network's output for it,
normalised as above; `bioimageio test` checks that both weight formats reproduce it. To validate
on your own data, predict held-out images and compare them with their ground truth, e.g.
`napari-unet predict` then `napari-unet evaluate --pred P.tif --truth T.tif`.

## Use

In napari-unet: `napari_unet.load_model("this.zip")` or the Model widget. Elsewhere: any
bioimage.io consumer (bioimageio.core, ilastik, deepImageJ with the TorchScript weights).
"""


def _pooling_phase(model: UNet) -> str:
    """Why napari-unet's probabilities differ a little from a plain pass over an image (a
    valid network whose halo is not on its pooling grid); "" when they do not."""
    shift = model.halo % model.size_multiple
    if not shift:
        return ""
    return (
        f" napari-unet mirrors each image edge by the {model.halo}-pixel halo before the "
        f"network runs, so its 2x2 max-pools fall {shift} pixels off those of a pass over the "
        "image itself: expect probabilities a few hundredths apart from napari-unet's (both "
        "are this network's outputs)."
    )


def _clip_words(clip: float | None) -> str:
    """How the README says what the scaled values are clipped to."""
    return "values outside kept" if clip is None else f"then clipped to [-{clip:g}, {clip:g}]"


def _postprocessing(info: ModelMetadata) -> str:
    """A section on what napari-unet's Predict does beyond the packaged forward pass."""
    steps = []
    if info.test_time_augmentation:
        averaged = TEST_TIME_TRANSFORM_WORDS[info.test_time_transforms]
        steps.append(
            f"averages each tile's probabilities over its {averaged} (test-time augmentation)"
        )
    if info.close_gaps:
        steps.append(
            "closes gaps in the boundaries before it labels objects (a seeded watershed on the "
            "boundary probability)"
        )
    if info.background_threshold != 0.5:
        background = info.class_names[0] if info.class_names else "background"
        steps.append(
            f"calls a pixel {background} only where its probability exceeds "
            f"{info.background_threshold:g}, growing the objects into the rest without joining them"
        )
    steps.append("joins to each object what it encloses (background and objects of its class)")
    listed = "\n".join(f"- {step};" for step in steps)
    return f"""## What napari-unet adds to the network

By default napari-unet's Predict

{listed}

and the figures it reports for a model are of that mask. The packaged network is one forward
pass: a tool that runs it once and takes the most probable class may draw thicker boundaries and
join objects that napari-unet keeps apart.

"""


def model_description(
    model: UNet,
    files: dict[str, Path],
    *,
    metadata: ModelMetadata,
    name: str,
    description: str,
    authors: Sequence[str],
    license: str,
    tags: Sequence[str],
) -> Any:
    """The bioimage.io ``ModelDescr`` (spec 0.5) of the files of :func:`write_package_files`."""
    test_size = int(np.load(files["test_input"], mmap_mode="r").shape[-1])
    readme = _readme(model, metadata, name, description, test_size)
    files["readme"].write_text(readme, encoding="utf-8")
    # where it was loaded from, and the folders of the file it started from: not shared
    stored = metadata.replace(source=None, parent=_file_name(metadata.parent)).to_dict()
    stored["model_config"] = model.config.to_dict()
    return spec.ModelDescr(
        name=name,
        description=description,
        authors=[spec.Author(name=author) for author in authors],
        cite=[spec.CiteEntry(text=UNET_CITATION[0], doi=spec.Doi(UNET_CITATION[1]))],
        license=spec.LicenseId(license),
        tags=list(dict.fromkeys([*TAGS, *tags])),
        documentation=spec.FileDescr(source=files["readme"]),
        covers=[spec.FileDescr(source=files["cover"])],
        inputs=[_input_descr(model, metadata, files)],
        outputs=[_output_descr(model, metadata, files)],
        weights=_weights_descr(model, files),
        config=spec.Config(
            bioimageio=spec.BioimageioConfig(
                architecture_type="U-Net",
                model_parameter_count=sum(p.numel() for p in model.parameters()),
            ),
            # an extra field (Config allows them); its synthesised __init__ knows only `stardist`
            **{CONFIG_KEY: stored},  # type: ignore[arg-type]
        ),
    )


def _file_name(parent: str | None) -> str | None:
    """``parent`` without its folders: "/home/me/cells.safetensors as it was before this run
    (SHA-256 …)" becomes "cells.safetensors as it was before this run (SHA-256 …)"."""
    return None if parent is None else re.split(r"[\\/]", parent)[-1]


def _input_descr(model: UNet, metadata: ModelMetadata, files: dict[str, Path]) -> Any:
    """The input tensor: its axes, test and sample tensors, and the percentile scaling."""
    channels = [f"channel{index}" for index in range(model.config.in_channels)]
    norm = metadata.normalization
    return spec.InputTensorDescr(
        id=spec.TensorId("input"),
        description="image, normalised per channel by percentiles",
        axes=_input_axes(model, channels),
        test_tensor=spec.FileDescr(source=files["test_input"]),
        sample_tensor=spec.FileDescr(source=files["sample_input"]),
        data=spec.IntervalOrRatioDataDescr(type="float32"),
        preprocessing=[
            spec.ScaleRangeDescr(
                kwargs=spec.ScaleRangeKwargs(
                    axes=[spec.AxisId("y"), spec.AxisId("x")],
                    min_percentile=float(norm.low),
                    max_percentile=float(norm.high),
                    eps=SCALE_RANGE_EPS,
                )
            ),
            *_clip_descr(norm.clip),
        ],
    )


def _clip_descr(clip: float | None) -> list[Any]:
    """The ``clip`` step after the scaling (none for a model that does not clip)."""
    if clip is None:
        return []
    return [spec.ClipDescr(kwargs=spec.ClipKwargs(min=-float(clip), max=float(clip)))]


def _output_descr(model: UNet, metadata: ModelMetadata, files: dict[str, Path]) -> Any:
    """The output tensor: softmax probabilities, one channel per class."""
    classes = list(metadata.class_names)
    if len(classes) != model.config.n_classes:
        classes = [f"class{index}" for index in range(model.config.n_classes)]
    return spec.OutputTensorDescr(
        id=spec.TensorId("probabilities"),
        description="softmax class probabilities",
        axes=_output_axes(model, classes),
        test_tensor=spec.FileDescr(source=files["test_output"]),
        sample_tensor=spec.FileDescr(source=files["sample_output"]),
        data=spec.IntervalOrRatioDataDescr(type="float32", range=(0.0, 1.0)),
    )


def _weights_descr(model: UNet, files: dict[str, Path]) -> Any:
    """The state dict (with the stand-alone architecture file) and the TorchScript weights."""
    torch_version = spec.Version(torch.__version__.split("+")[0])
    return spec.WeightsDescr(
        pytorch_state_dict=spec.PytorchStateDictWeightsDescr(
            source=files["state_dict"],
            sha256=spec.Sha256(sha256(files["state_dict"])),
            architecture=spec.ArchitectureFromFileDescr(
                source=files["architecture"],
                sha256=spec.Sha256(sha256(files["architecture"])),
                callable=spec.Identifier(ARCHITECTURE_CALLABLE),
                kwargs=model.config.to_dict(),
            ),
            pytorch_version=torch_version,
        ),
        torchscript=spec.TorchscriptWeightsDescr(
            source=files["torchscript"],
            sha256=spec.Sha256(sha256(files["torchscript"])),
            pytorch_version=torch_version,
            parent="pytorch_state_dict",
        ),
    )


def _input_axes(model: UNet, channels: list[str]) -> list[Any]:
    minimum = model.min_input_size
    if model.config.padding == "same":
        minimum = model.valid_input_sizes(minimum=2 * model.halo + 1)[0]
    size = spec.ParameterizedSize(min=minimum, step=model.size_multiple)
    return [
        spec.BatchAxis(),
        spec.ChannelAxis(channel_names=channels),
        spec.SpaceInputAxis(id=spec.AxisId("y"), size=size),
        spec.SpaceInputAxis(id=spec.AxisId("x"), size=size),
    ]


def _output_axes(model: UNet, classes: list[str]) -> list[Any]:
    axes: list[Any] = [
        spec.BatchAxis(),
        spec.ChannelAxis(channel_names=classes),
    ]
    for axis in ("y", "x"):
        if model.config.padding == "valid":  # the network crops its own halo
            reference = spec.SizeReference(
                tensor_id=spec.TensorId("input"), axis_id=spec.AxisId(axis), offset=-2 * model.halo
            )
            axes.append(spec.SpaceOutputAxis(id=spec.AxisId(axis), size=reference))
        else:  # zero padding at the borders: consumers crop the halo of each tile
            reference = spec.SizeReference(
                tensor_id=spec.TensorId("input"), axis_id=spec.AxisId(axis)
            )
            axes.append(
                spec.SpaceOutputAxisWithHalo(id=spec.AxisId(axis), size=reference, halo=model.halo)
            )
    return axes

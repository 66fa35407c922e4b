"""``napari-unet export``: write a model in a format other tools read (bioimage.io)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ._common import CliError, refuse_existing_output


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Register ``export`` (its handler travels as ``args.handler``)."""
    parser = commands.add_parser(
        "export",
        help="export a model as a bioimage.io model package (zip)",
        description="Writes a bioimage.io model zip (rdf.yaml, state dict + architecture, "
        "TorchScript, test tensors, README, cover) that `bioimageio test OUT.zip` checks and "
        "bioimage.io tools (ilastik, deepImageJ, bioimageio.core) and napari-unet load. Needs "
        "bioimageio.core: pip install 'bioimageio.core>=0.11'.",
    )
    parser.add_argument("model", help="bundled model name or checkpoint path")
    parser.add_argument("output", type=Path, help="the zip to write, e.g. my-model.zip")
    parser.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    parser.add_argument("--format", choices=["bioimageio"], default="bioimageio")
    parser.add_argument("--name", default=None, help="model name (default: from the model)")
    parser.add_argument(
        "--description", default=None, help="one paragraph (default: the checkpoint's)"
    )
    parser.add_argument(
        "--author",
        action="append",
        default=None,
        help="who trained the model (repeat for several; default: napari-unet)",
    )
    parser.add_argument(
        "--license",
        default="BSD-3-Clause",
        help="SPDX identifier of the weights' licence, e.g. MIT, CC-BY-4.0 (default: BSD-3-Clause)",
    )
    parser.add_argument(
        "--test-image",
        type=Path,
        default=None,
        help="image for the test tensors and cover (default: a synthetic nuclei image)",
    )
    parser.set_defaults(handler=run_export)


def run_export(args: argparse.Namespace) -> None:
    """Write the package and print its path."""
    from ..core.checkpoint import load_model
    from ..io.bioimageio import check_license, export_bioimageio

    if args.output.suffix.lower() != ".zip":
        raise CliError(f"{args.output}: a bioimage.io package is a .zip file")
    if args.output.is_dir():
        raise CliError(f"{args.output} is a folder; give the zip's file name")
    refuse_existing_output(args.output, args.overwrite)
    try:
        check_license(args.license)  # before the model and the test image are read
    except ImportError as error:
        raise CliError(str(error)) from error
    model = load_model(args.model)
    test_image = None
    if args.test_image is not None:
        test_image = _test_image(args.test_image)
    try:
        path = export_bioimageio(
            model,
            args.output,
            name=args.name,
            description=args.description,
            authors=args.author or ("napari-unet",),
            license=args.license,
            test_image=test_image,
        )
    except ImportError as error:
        raise CliError(str(error)) from error
    print(path)


def _test_image(path: Path):
    """The ``--test-image``; a file of a format napari-unet does not read is said to be one."""
    from ..io.data import ImageReadError, read_image
    from ..io.inputs import IMAGE_SUFFIXES

    try:
        return read_image(path)
    except ImageReadError as error:
        if path.suffix.lower() in IMAGE_SUFFIXES:
            raise
        raise CliError(
            f"--test-image {path}: not an image format napari-unet reads (TIFF, PNG, JPEG, "
            "BMP or NumPy .npy)"
        ) from error

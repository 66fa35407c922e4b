"""``napari-unet evaluate``: compare a prediction with ground truth, metrics as JSON."""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np

from ._common import CliError, print_json


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Register ``evaluate``."""
    evaluate = commands.add_parser(
        "evaluate",
        help="compare a prediction with ground truth",
        description="Compare a prediction with ground truth; metrics as JSON.",
    )
    evaluate.add_argument(
        "--pred",
        type=Path,
        required=True,
        help="an image file, or a zarr store (predict's <stem>_prediction.zarr: its "
        "instances or mask array, by --kind)",
    )
    evaluate.add_argument("--truth", type=Path, required=True, help="the same kinds as --pred")
    evaluate.add_argument(
        "--kind",
        choices=["membranes", "instances", "semantic"],
        default="instances",
        help="membranes: 2-D membrane maps (ISBI errors); instances (default): instance "
        "label images (predict's <stem>_instances.tif, 0 = background), stacks matched "
        "slice by slice and the counts summed; refused if --pred looks like a class mask "
        "(no 0 pixel, label 1 on half the pixels or more); a binary --pred or --truth "
        "(one label) is read as its connected components (a membrane map's cells); "
        "semantic: class masks (predict's <stem>_mask.tif; 0 = not scored, 1 = "
        "background, 2.. = classes, a 0/1 mask read as background and object, truth "
        "labels above the prediction's or --classes refused)",
    )
    evaluate.add_argument(
        "--classes",
        type=int,
        default=None,
        metavar="N",
        help="semantic: the model's classes, background included (default: the "
        "prediction's largest label, at least 2)",
    )
    evaluate.add_argument(
        "--away-from",
        type=Path,
        default=None,
        metavar="STROKES",
        help="score only away from these strokes (the annotation a model was trained on, "
        "of the truth's shape, 0 = unpainted): what lies within 16 px of them is left out, "
        "as the dock's 'Only away from the strokes' does",
    )
    evaluate.set_defaults(handler=run_evaluate)


def run_evaluate(args: argparse.Namespace) -> None:
    """``napari-unet evaluate``: metrics as JSON."""
    from ..evaluation.metrics import evaluate, nothing_scored

    prediction, truth = _read(args.pred, args.kind), _read(args.truth, args.kind)
    if prediction.shape != truth.shape:
        probabilities = (  # predict's <stem>_prob.tif: (C, Y, X) floats
            prediction.dtype.kind == "f" and prediction.shape[1:] == truth.shape
        )
        hint = (
            "; give predict's <stem>_mask.tif or <stem>_instances.tif, not the probabilities"
            if probabilities
            else ""
        )
        raise CliError(
            f"prediction shape {prediction.shape} differs from truth shape {truth.shape}{hint}"
        )
    if args.kind == "membranes" and prediction.ndim != 2:
        raise CliError(
            f"--kind membranes takes 2-D (Y, X) maps; {args.pred} has {prediction.shape}"
        )
    if args.kind == "instances":
        _check_instances(args.pred, prediction)
        for path, labels, name in (
            (args.pred, prediction, "prediction"),
            (args.truth, truth, "ground truth"),
        ):
            _say_binary(path, labels, name)  # evaluate reads a binary mask's components
    if args.kind == "semantic":  # class masks; a label of 2**40 would size 8 TiB of counts
        for path, mask in ((args.pred, prediction), (args.truth, truth)):
            _check_class_mask(path, mask)
        prediction, truth = _class_masks(args, prediction, truth)
    with warnings.catch_warnings():  # the classes were checked above (_class_masks)
        warnings.filterwarnings("ignore", "truth holds labels up to", UserWarning)
        scores = evaluate(prediction, truth, kind=args.kind, ignore=_near(args.away_from, truth))
    if nothing_scored(scores):
        raise CliError(
            f"nothing to score: the pixels near the strokes of {args.away_from} cover every "
            "labelled pixel or true object of the truth"
        )
    print_json(scores)


def _read(path: Path, kind: str) -> np.ndarray:
    """An image file, or a zarr store: predict's output store gives its ``instances``
    (``kind="instances"``) or ``mask`` array, another store its image array."""
    from ..io.data import read_image
    from ..io.inputs import is_zarr_store

    if not is_zarr_store(path):
        return read_image(path)
    import zarr

    from ..io.outofcore import zarr_input_array

    wanted = "instances" if kind == "instances" else "mask"
    try:
        node = zarr.open(str(path), mode="r")
        if hasattr(node, "shape"):
            return np.asarray(node)
        arrays = sorted(node.array_keys())
        if wanted in arrays:  # predict's output store
            return np.asarray(node[wanted])
        if "prob" in arrays:  # one of predict's, written without this output
            raise CliError(f"{path} has no '{wanted}' array (it holds {arrays})")
        return np.asarray(zarr_input_array(path)[0])
    except (ValueError, OSError) as error:
        raise CliError(f"cannot read {path}: {error}") from None


def _say_binary(path: Path, labels: np.ndarray, name: str) -> None:
    """Say on stderr when ``labels`` is a binary mask, whose components are its objects
    (:func:`~napari_unet.evaluation.truth.binary_reading`)."""
    from ..evaluation.truth import binary_reading

    note = binary_reading(labels, name)
    if note:
        print(f"{path}: {note}", file=sys.stderr)


def _class_masks(args: argparse.Namespace, prediction, truth) -> tuple[np.ndarray, np.ndarray]:
    """``prediction`` and ``truth`` as class masks of ``--classes`` classes (default: the
    prediction's largest label, at least 2): a 0/1 mask is read as background and object
    (said on stderr); a truth of instance labels or a membrane map is refused
    (:func:`~napari_unet.evaluation.truth.semantic_offset`)."""
    from ..evaluation.truth import semantic_offset

    n_classes = args.classes or max(int(prediction.max(initial=0)), 2)
    masks = []
    for path, mask, name in ((args.pred, prediction, "prediction"), (args.truth, truth, "truth")):
        try:
            offset, note = semantic_offset(mask, n_classes, False, name)
        except ValueError as error:
            more = " If the model has classes the prediction lacks, give --classes."
            more = more if "labels up to" in str(error) else ""
            raise CliError(f"{path}: {error}{more}") from None
        if note:
            print(f"{path}: {note}", file=sys.stderr)
        masks.append(mask.astype(np.int64) + offset if offset else mask)
    return masks[0], masks[1]


def _near(strokes_path: Path | None, truth: np.ndarray) -> np.ndarray | None:
    """The pixels near the strokes in ``strokes_path`` (None: none given)."""
    if strokes_path is None:
        return None
    from ..evaluation.regions import near_strokes
    from ..io.data import read_image

    strokes = read_image(strokes_path)
    if strokes.shape != truth.shape:
        raise CliError(f"the strokes' shape {strokes.shape} differs from the truth's {truth.shape}")
    return near_strokes(strokes)


def _check_class_mask(path: Path, mask: np.ndarray) -> None:
    """Refuse a ``--kind semantic`` input that is not a class mask of whole labels 0..255."""
    from ..evaluation.metrics import check_class_mask

    try:
        check_class_mask(mask, f"{path}: --kind semantic")
    except ValueError as error:
        raise CliError(str(error)) from error


def _check_instances(path: Path, labels: np.ndarray) -> None:
    """Refuse a ``--kind instances`` prediction that looks like a class mask."""
    from ..evaluation.metrics import class_mask_share

    share = class_mask_share(labels)
    if share is None:
        return
    stem = path.name.split(".")[0]
    where = (
        f"{stem.removesuffix('_mask')}_instances.tif beside it"
        if stem.endswith("_mask")
        else "<stem>_instances.tif beside <stem>_mask.tif"
    )
    raise CliError(
        f"{path} looks like a class mask, not instance labels: no pixel is 0 and label 1 "
        f"covers {share:.0%} of it, so its background would count as one object; give "
        f"the instance image predict writes ({where}) or --kind semantic"
    )

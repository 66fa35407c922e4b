"""Reading a ground truth in the convention a metric needs, or saying why it cannot be.

Shared by :func:`~napari_unet.evaluation.metrics.evaluate`, the Evaluate panel and
``napari-unet evaluate``: a binary mask scored as instances is read as its connected
components (:func:`instance_truth`; the front ends say so, :func:`binary_reading`), a
0/1 mask scored as classes as background and object (:func:`semantic_offset`); instance
labels or a membrane map scored as classes are refused with the kind to choose.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = [
    "MEMBRANE_MAP_SHARE",
    "binary_reading",
    "class_values_words",
    "instance_truth",
    "semantic_offset",
]

#: A binary mask scored as instances whose one label covers at least this share of the
#: pixels may be a membrane map's interiors (ISBI: 255 = interior, about 78 % of a slice).
MEMBRANE_MAP_SHARE = 0.5


def class_values_words(n_classes: int) -> str:
    """What the label values of a class mask mean for a model of ``n_classes`` classes
    (background included), e.g. "0 = not scored, 1 = background, 2 = the foreground class"."""
    if n_classes <= 2:
        return "0 = not scored, 1 = background, 2 = the foreground class"
    return (
        f"0 = not scored, 1 = background, 2 to {n_classes} = the {n_classes - 1} foreground classes"
    )


def semantic_offset(
    truth: np.ndarray, n_classes: int, annotation: bool, name: str = "ground truth"
) -> tuple[int, str]:
    """How to read ``truth`` as a class mask of a model with ``n_classes`` classes.

    Class masks follow the annotation convention: 0 = not scored, 1 = background,
    2 to ``n_classes`` = the classes. A mask holding only 0 and 1 that was not
    painted in Annotate is a binary mask (0 = background, 1 = object), as most
    tools save one; read in the convention, all of it would be background or not
    scored. For a model with one class besides background it is shifted by one.

    Parameters
    ----------
    truth : numpy.ndarray
        The whole ground-truth layer's labels.
    n_classes : int
        Classes the prediction may hold, background included.
    annotation : bool
        Whether ``truth`` is an annotation layer (in the convention by construction).
    name : str
        What ``truth`` is, for the messages ("ground truth", "prediction").

    Returns
    -------
    offset : int
        What to add to ``truth`` (0 or 1).
    note : str
        How the truth was read, for the user ("" when in the convention).

    Raises
    ------
    ValueError
        Labels above ``n_classes`` (instance labels), none at all, or a binary mask
        for a model with several classes.
    """
    top = int(truth.max(initial=0))
    if top > n_classes:
        raise ValueError(
            f"The {name} holds labels up to {top}, but 'semantic' takes a class mask "
            f"like the prediction's, whose labels go up to {n_classes} "
            f"({class_values_words(n_classes)}): these look like instance labels (score them "
            "as instances) or a membrane map such as ISBI's 0 = membrane, 255 = interior "
            "(score it as membranes)."
        )
    if top == 0:
        raise ValueError(f"The {name} holds no labels (all 0 = not scored).")
    if top > 1 or annotation or int(truth.min(initial=0)) < 0:
        return 0, ""
    if n_classes > 2:
        raise ValueError(
            f"The {name} is a 0/1 binary mask, but the prediction has "
            f"{n_classes - 1} classes besides background: for 'semantic', label it "
            f"{class_values_words(n_classes)}; or score it as instances."
        )
    return 1, (
        f"read the 0/1 {name} as a binary mask: 0 = background, 1 = the foreground class (label 2)"
    )


def binary_reading(labels: np.ndarray, name: str = "ground truth") -> str:
    """How :func:`instance_truth` reads ``labels``, for the user: "" for instance labels
    (kept as given), else that a binary mask's connected components are its objects
    (and, when its one value covers at least :data:`MEMBRANE_MAP_SHARE` of the pixels,
    that a membrane map is better scored as membranes). ``name``: what ``labels`` is
    ("ground truth", "prediction")."""
    labels = np.asarray(labels)
    top = labels.max(initial=0)
    pixels = int(np.count_nonzero(labels == top))
    if top <= 0 or labels.min(initial=0) < 0 or pixels != np.count_nonzero(labels):
        return ""
    note = f"read the binary {name}'s connected components as its objects"
    if pixels / labels.size >= MEMBRANE_MAP_SHARE:
        note += (  # no parentheses: callers put the note in theirs
            f"; label {top} covers {pixels / labels.size:.0%} of it, as in a membrane map such "
            "as ISBI's, 0 = membrane and 255 = interior, for which the membrane metrics give "
            "the challenge's errors"
        )
    return note


def instance_truth(truth: np.ndarray, name: str = "ground truth") -> tuple[np.ndarray, str]:
    """Instance labels as given, or a binary mask's connected components as its objects.

    Instance labels hold one value per object. A mask holding a single positive value
    is a binary mask (as most tools save one): its 4-connected components (plane by
    plane for a stack) are the objects (:func:`binary_reading` says so).

    Parameters
    ----------
    truth : numpy.ndarray of int, shape (Y, X) or (..., Y, X)
    name : str
        What ``truth`` is, for the note ("ground truth", "prediction").

    Returns
    -------
    labels : numpy.ndarray
        ``truth`` itself, or the labelled components of a binary mask (int32).
    note : str
        How it was read, for the user ("" when as given).
    """
    truth = np.asarray(truth)
    note = binary_reading(truth, name)
    if not note:
        return truth, ""
    planes = truth.reshape(-1, *truth.shape[-2:]) > 0
    labels = np.stack([ndimage.label(plane)[0] for plane in planes]).astype(np.int32)
    return labels.reshape(truth.shape), note

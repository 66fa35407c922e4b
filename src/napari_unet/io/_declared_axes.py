"""The axes an input file declares, in napari-unet's letters.

A TIFF file's axes as tifffile reads them (its first series), and an OME-Zarr store's from its
``multiscales`` metadata, are turned into the letters of :mod:`napari_unet.io.axes` (Z for
every stacking axis, C, S, Y, X), refused when they declare two stacking axes, or left to the
axes rule when unsettled (tifffile's Q, an unknown axis). Used by
:mod:`napari_unet.io.inputs` before anything is read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["declared_axes", "ome_axes", "pages_hint"]

_SLICE_LETTERS = set("ZTIPREVHLAM")  # tifffile's stacking axes; Q (unknown) is not one


def declared_axes(shape: tuple[int, ...], declared: str) -> str | None:
    """tifffile's axes ``declared`` in our letters, or None when unsettled (see
    :func:`napari_unet.io.inputs.file_axes`)."""
    stacking = [letter for letter in declared if letter in _SLICE_LETTERS]
    if len(stacking) > 1:
        raise _two_stacking_axes(shape, declared, stacking)
    axes = "".join("Z" if letter in _SLICE_LETTERS else letter for letter in declared)
    unsettled = set(axes) - set("ZCSYX") or len(set(axes)) != len(axes)
    if unsettled or ("S" in axes and not axes.endswith("S")):
        return None
    return axes


def pages_hint(declared: str | None, shape: tuple[int, ...], in_channels: int) -> str:
    """For a TIFF whose pages name no axis (tifffile's ``I``, read as slices) as many as a
    multichannel model's channels: how to read them as its channels ("" otherwise)."""
    if not declared or in_channels < 2 or len(declared) != len(shape) or "I" not in declared:
        return ""
    if shape[declared.index("I")] != in_channels:
        return ""
    letters = declared.replace("I", "C").replace("Q", "Z")
    return (
        f"; its {in_channels} pages name no axis: if they are the channels, give --axes {letters}"
    )


def _two_stacking_axes(shape: tuple[int, ...], declared: str, stacking: list[str]) -> ValueError:
    """The error for a file declaring several stacking axes (say how to proceed)."""
    sizes = ", ".join(f"{letter} ({shape[declared.index(letter)]})" for letter in stacking)
    example = ""
    if len(stacking) == 2 and not set(declared) & set("CS"):
        first = declared.index(stacking[0])
        letters = ["Z" if letter in _SLICE_LETTERS else letter for letter in declared]
        letters[first] = "C"
        example = f" (e.g. --axes {''.join(letters)})"
    return ValueError(
        f"the image declares {len(stacking)} stacking axes, {sizes} (axes {declared}, shape "
        f"{shape}), but the 2D model runs along one slice axis: split it (e.g. one "
        f"{stacking[0]} per file), or, if one of these axes holds channels, give the axes "
        f"with --axes{example}"
    )


def ome_axes(path: Path, ndim: int) -> str | None:
    """The last ``ndim`` of the axes in a store's OME ``multiscales`` metadata, or None.

    All levels of a multiscale image share its axes; the opened level may have lost
    leading axes of length 1 (:func:`~napari_unet.io.axes.drop_leading_singletons`).
    """
    import zarr

    try:
        node: Any = zarr.open(str(path), mode="r")
        attributes: Any = dict(node.attrs)  # JSON of any shape: checked by the except
        multiscale = (attributes.get("ome") or attributes)["multiscales"][0]
        axes = [_ome_letter(axis) for axis in multiscale["axes"]]
        level_ndim = len(node[multiscale["datasets"][0]["path"]].shape)
    except Exception:  # no OME metadata, or malformed: the axes rule decides
        return None
    if len(axes) != level_ndim or level_ndim < ndim:
        return None
    return "".join(axes[level_ndim - ndim :])


def _ome_letter(axis: Any) -> str:
    """tifffile's letter for an OME-Zarr axis (a name, or a dict with name and type)."""
    name, kind = (axis, "") if isinstance(axis, str) else (axis["name"], axis.get("type", ""))
    by_name = {"t": "T", "c": "C", "z": "Z", "y": "Y", "x": "X"}
    return by_name.get(str(name).lower()) or {"time": "T", "channel": "C"}.get(kind, "Q")

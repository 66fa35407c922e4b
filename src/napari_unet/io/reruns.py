"""Re-runs of batch prediction: what made an output, and the leftovers of killed runs.

Every output of :func:`napari_unet.io.batch.predict_file` records its provenance:
the package version, the SHA-256 of the checkpoint file, the options that
change the result (tile size, test-time augmentation, instance method, minimum
instance size, axes) and
the input (name, shape, size and modification time); :func:`~napari_unet.io.batch.predict_file`
adds the model's lineage, for a later ``--last-masks`` run (:mod:`napari_unet.io.last_masks`),
which decides nothing here. TIFF outputs hold it in
their JSON description (tifffile's shaped metadata) under :data:`PROVENANCE_KEY`;
zarr stores in their ``napari_unet`` attributes. A re-run skips an input only
when its outputs are all there and all record what this run would do; an output
recording something else (or nothing) is replaced only with ``overwrite``.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "PROVENANCE_KEY",
    "model_checksum",
    "provenance",
    "remove_stale_temporaries",
    "stored_provenance",
    "why_not_reusable",
]

PROVENANCE_KEY = "napari_unet_provenance"
_CHECKSUMS: dict[tuple, str] = {}
_TEMPORARY = re.compile(r"\.(?P<name>.+)\.[0-9a-f]{32}\.(tmp|partial|old)")
_MISSING = object()
_OPTION_NAMES = (
    "tile_size",
    "test_time_augmentation",
    "instances",
    "min_instance_size",
    "fill_holes",
    "close_boundaries",
    "background_threshold",
    "axes",
)


def model_checksum(path: str | os.PathLike) -> str:
    """SHA-256 (hex) of a checkpoint file, computed once per file version in a process."""
    path = Path(path)
    status = path.stat()
    key = (str(path.resolve()), status.st_mtime_ns, status.st_size)
    if key not in _CHECKSUMS:
        digest = hashlib.sha256()
        with open(path, "rb") as file:
            for block in iter(lambda: file.read(2**20), b""):
                digest.update(block)
        _CHECKSUMS[key] = digest.hexdigest()
    return _CHECKSUMS[key]


def provenance(
    checkpoint: str | os.PathLike, options: Any, input_path: Path, shape: tuple, axes: str
) -> dict[str, Any]:
    """The record stored with the outputs of one input (see the module docstring).

    Parameters
    ----------
    checkpoint : path-like
        The checkpoint file (already resolved from a bundled name).
    options : napari_unet.io.batch.PredictOptions
        Its tile size as the run uses it (a number, or None).
    input_path : Path
        The input file or zarr store.
    shape : tuple
        The input's shape.
    axes : str
        The axes it is read with.
    """
    from .. import __version__

    record_options = {name: getattr(options, name) for name in _OPTION_NAMES if name != "axes"}
    record_options["axes"] = axes
    source: dict[str, Any] = {"name": input_path.name, "shape": [int(n) for n in shape]}
    if input_path.is_file():
        status = input_path.stat()
        source.update(size=status.st_size, mtime_ns=status.st_mtime_ns)
    return {
        "package_version": __version__,
        "model_sha256": model_checksum(checkpoint),
        "options": record_options,
        "input": source,
    }


def stored_provenance(output: Path) -> dict[str, Any] | None:
    """The provenance recorded in an output file or store, or None (none, unreadable)."""
    try:
        if output.is_dir():
            import zarr

            attributes: Any = zarr.open_group(str(output), mode="r").attrs.get("napari_unet", {})
            record = attributes.get(PROVENANCE_KEY)
        else:
            import tifffile

            with tifffile.TiffFile(output) as tiff:
                shaped = tiff.shaped_metadata
                record = shaped[0].get(PROVENANCE_KEY) if shaped else None
    except Exception:  # a broken, empty or foreign file holds no usable record
        return None
    return record if isinstance(record, dict) else None


def why_not_reusable(outputs: Sequence[Path], record: dict[str, Any]) -> str | None:
    """Why the existing ``outputs`` are not what ``record`` would make; None if they are."""
    for output in outputs:
        if not output.exists():
            continue
        stored = stored_provenance(output)
        if stored is None:
            return (
                f"{output.name} holds no record of how it was made (empty, unreadable, or "
                "written by an older napari-unet or another program)"
            )
        difference = _difference(stored, record)
        if difference:
            return f"{output.name} was made {difference}"
    return None


def _difference(stored: dict[str, Any], current: dict[str, Any]) -> str | None:
    """How a stored record differs from the current one, in words (None: it does not)."""
    if stored.get("model_sha256") != current["model_sha256"]:
        return (
            f"with another model (checkpoint SHA-256 {str(stored.get('model_sha256'))[:12]}..., "
            f"this one {current['model_sha256'][:12]}...)"
        )
    before = stored.get("options")
    before = before if isinstance(before, dict) else {}
    changed = [
        f"{name} {before[name]!r}, now {value!r}"
        if name in before
        else f"{name} not recorded, now {value!r}"  # made by an older version
        for name, value in current["options"].items()
        if before.get(name, _MISSING) != value
    ]
    if changed:
        return f"with other options ({'; '.join(changed)})"
    if stored.get("input") != current["input"]:
        return "from another version of the input (its shape, size or modification time differ)"
    if stored.get("package_version") != current["package_version"]:
        return (
            f"by napari-unet {stored.get('package_version')} (this is {current['package_version']})"
        )
    return None


def remove_stale_temporaries(outputs: Sequence[Path]) -> list[Path]:
    """Remove what killed runs left beside ``outputs``; returns the removed paths.

    These are the hidden ``.<name>.<32 hex>.tmp`` files of atomic TIFF writes and
    the ``.partial`` / ``.old`` stores of zarr outputs, for the given output
    names only: another run writing the same outputs at the same time would
    lose its temporaries, but two runs writing the same outputs conflict anyway.
    """
    removed: list[Path] = []
    names_by_folder: dict[Path, set[str]] = {}
    for output in outputs:
        names_by_folder.setdefault(output.parent, set()).add(output.name)
    for folder, names in names_by_folder.items():
        if not folder.is_dir():
            continue
        for candidate in folder.iterdir():
            match = _TEMPORARY.fullmatch(candidate.name)
            if match is None or match["name"] not in names:
                continue
            if candidate.is_dir() and not candidate.is_symlink():
                shutil.rmtree(candidate, ignore_errors=True)
            else:
                candidate.unlink(missing_ok=True)
            removed.append(candidate)
    return removed

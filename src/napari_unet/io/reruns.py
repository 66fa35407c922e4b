"""Re-runs of batch prediction: what made an output, and the leftovers of killed runs.

Every output of :func:`napari_unet.io.batch.predict_file` records its provenance:
the package version, the SHA-256 of the checkpoint file, the options that change the
result (tile size, test-time augmentation, instance method, minimum instance size,
axes; a tile size left to napari-unet, ``tile_size_requested`` "auto", is chosen by
the free memory and so not compared between two such runs), the input (name, shape,
and for a file its size and modification time, for a zarr store a fingerprint:
:func:`store_fingerprint`) and, with ``--last-masks``, which last mask and strokes
file it used (path, size and modification time: :func:`last_mask_record`).
:func:`~napari_unet.io.batch.predict_file` adds the model's lineage, for a later
``--last-masks`` run (:mod:`napari_unet.io.last_masks`), which decides nothing here.
TIFF outputs hold it in their JSON description (tifffile's shaped metadata) under
:data:`PROVENANCE_KEY`; zarr stores in their ``napari_unet`` attributes. A re-run
skips an input only when its outputs are all there and all record what this run
would do; an output recording something else (or nothing, or a record of an older
version lacking an entry this one writes) is replaced only with ``overwrite``.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..config import AUTO_TILE

__all__ = [
    "PROVENANCE_KEY",
    "last_mask_record",
    "model_checksum",
    "provenance",
    "record_difference",
    "remove_stale_temporaries",
    "store_fingerprint",
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
_ZARR_METADATA = (".zarray", ".zattrs", ".zgroup", ".zmetadata", "zarr.json")
#: At most this many directory entries are read to fingerprint a zarr store.
STORE_ENTRIES_READ = 10_000


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
    checkpoint: str | os.PathLike,
    options: Any,
    input_path: Path,
    info: Any,
    outputs: Sequence[Path] = (),
) -> dict[str, Any]:
    """The record stored with the outputs of one input (see the module docstring).

    Parameters
    ----------
    checkpoint : path-like
        The checkpoint file (already resolved from a bundled name).
    options : napari_unet.io.batch.PredictOptions
        Its tile size as the run uses it (a number, or None), its last masks and strokes.
    input_path : Path
        The input file or zarr store.
    info : napari_unet.io.inputs.InputInfo
        The input's shape, the axes it is read with and how its outputs are written.
    outputs : sequence of Path
        The outputs the record goes into (a last mask among them is told apart).
    """
    from .. import __version__

    record_options = {name: getattr(options, name) for name in _OPTION_NAMES if name != "axes"}
    record_options["axes"] = info.axes
    source: dict[str, Any] = {"name": input_path.name, "shape": [int(n) for n in info.shape]}
    if input_path.is_file():
        status = input_path.stat()
        source.update(size=status.st_size, mtime_ns=status.st_mtime_ns)
    elif input_path.is_dir():
        source["store"] = store_fingerprint(input_path)
    return {
        "package_version": __version__,
        "model_sha256": model_checksum(checkpoint),
        "options": record_options,
        "input": source,
        "last_mask": last_mask_record(options, input_path.stem, info.output_format, outputs),
    }


def store_fingerprint(store: Path) -> dict[str, Any]:
    """What tells a zarr input store apart from another, or from itself before a rewrite.

    Listing and reading every chunk file of a huge store would cost more than some
    predictions, so the fingerprint is cheap and covers the ways pixels change:

    * ``path``: the resolved store (another store of the same name elsewhere differs);
    * ``files``: modification time and size of the zarr metadata files (``zarr.json``,
      ``.zarray``, ``.zattrs``, ...) and of the directories from the store down to the
      array it is read from (:func:`napari_unet.io.outofcore.open_zarr_input`): a store
      created again, resized or given other attributes;
    * ``folders``: the newest modification time among the directories below that array,
      breadth first, of at most :data:`STORE_ENTRIES_READ` directory entries read, and
      whether all were seen. zarr-python (2 and 3) writes a chunk as a temporary file
      renamed into place, which changes the modification time of the chunk's
      directory: the array's own for zarr v2 ``0.0`` chunk keys (in ``files``), ``c/0``
      for the v3 ``c/0/0``, ``c/0/0`` for ``c/0/0/0``, and so on.

    It cannot detect a chunk file rewritten in place (opened and overwritten, not
    renamed) by another writer, nor a chunk renamed into a directory the walk did not
    reach: it covers every chunk directory while the directories above the chunk files
    hold at most about :data:`STORE_ENTRIES_READ` entries together (a 2D v3 array of up
    to that many rows of chunks, a 3D one of up to that many (z, y) chunk pairs). It
    does not look at the store's other arrays (an OME-Zarr's lower resolutions). Give
    ``--overwrite`` after such edits.

    Parameters
    ----------
    store : Path
        A zarr store that :func:`~napari_unet.io.outofcore.open_zarr_input` opens.

    Returns
    -------
    dict
        ``path``, ``files`` and ``folders``, JSON-ready (lists, not tuples), so that it
        compares equal to itself read back from an output.
    """
    root = store.resolve()
    from .outofcore import zarr_input_array

    array = zarr_input_array(root)[1]
    folders = [root] if array is None else [root, root / array]
    files: dict[str, list[int]] = {}
    for folder in folders:
        for path in (folder, *(folder / name for name in _ZARR_METADATA)):
            if path.exists():
                status = path.stat()
                files[path.relative_to(root).as_posix()] = [status.st_mtime_ns, status.st_size]
    return {"path": str(root), "files": files, "folders": _newest_folder(folders[-1])}


def _newest_folder(top: Path) -> list[int]:
    """[newest modification time (ns) of the directories below ``top``, 1 when all
    were seen within :data:`STORE_ENTRIES_READ` entries read, else 0]."""
    newest, left, queue = 0, STORE_ENTRIES_READ, deque([top])
    while queue:
        with os.scandir(queue.popleft()) as entries:
            for entry in entries:
                left -= 1
                if left < 0:
                    return [newest, 0]
                if entry.is_dir(follow_symlinks=False):
                    newest = max(newest, entry.stat(follow_symlinks=False).st_mtime_ns)
                    queue.append(Path(entry.path))
    return [newest, 1]


def last_mask_record(
    options: Any, stem: str, output_format: str, outputs: Sequence[Path] = ()
) -> dict[str, Any] | None:
    """Which last mask and strokes file a prediction uses, for its record; None: none.

    The files as :func:`napari_unet.io.last_masks.find_last_mask` looks them up: the
    mask ``<stem>_mask.tif`` in ``options.last_masks`` and the strokes given for the
    input, each by resolved path, size and modification time (or ``missing``), so a
    re-run with another folder, or after either file changed, is not skipped. A mask
    that is one of ``outputs`` (the output folder holds the last masks) is recorded by
    path only: the run replaces it, and the same run again finds its own mask there.

    Parameters
    ----------
    options : napari_unet.io.batch.PredictOptions
        Its ``last_masks`` folder and ``strokes`` pairs.
    stem : str
        The input's file name without its suffix.
    output_format : {"tiff", "zarr"}
        How the outputs are written: zarr outputs use no last mask (None).
    outputs : sequence of Path
        The input's outputs.

    Returns
    -------
    dict or None
        ``mask`` and ``strokes`` (None when none was given); None without ``last_masks``.
    """
    if options.last_masks is None or output_format == "zarr":
        return None
    mask = (Path(options.last_masks) / f"{stem}_mask.tif").resolve()
    strokes = dict(options.strokes).get(stem)
    own = any(mask == output.resolve() for output in outputs)
    return {
        "mask": {"path": str(mask), "this_output": True} if own else _file_record(mask),
        "strokes": None if strokes is None else _file_record(Path(strokes)),
    }


def _file_record(path: Path) -> dict[str, Any]:
    """A file's resolved path, size and modification time (``missing`` if there is none)."""
    path = path.resolve()
    if not path.is_file():
        return {"path": str(path), "missing": True}
    status = path.stat()
    return {"path": str(path), "size": status.st_size, "mtime_ns": status.st_mtime_ns}


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
                "written by an older napari-unet or another program: if it is not an output "
                "of napari-unet, a ground truth say, move it away or choose another --output)"
            )
        difference = _difference(stored, record)
        if difference:
            return f"{output.name} was made {difference}"
    return None


def record_difference(stored: dict[str, Any], current: dict[str, Any]) -> str | None:
    """How a stored record differs from the current one, in words ("with another model
    (...)", "with other options (...)", ...); None when it does not. Also compares the
    fingerprints of resumed predictions (:mod:`napari_unet.io._resume`), which are shaped
    as records."""
    return _difference(stored, current)


def _difference(stored: dict[str, Any], current: dict[str, Any]) -> str | None:
    """How a stored record differs from the current one, in words (None: it does not)."""
    if stored.get("model_sha256") != current["model_sha256"]:
        return (
            f"with another model (checkpoint SHA-256 {str(stored.get('model_sha256'))[:12]}..., "
            f"this one {current['model_sha256'][:12]}...)"
        )
    before = stored.get("options")
    before = before if isinstance(before, dict) else {}
    # both runs left the tile size to napari-unet, which sizes tiles by the free memory:
    # another figure this time is not another request
    automatic = stored.get("tile_size_requested") == current.get("tile_size_requested") == AUTO_TILE
    changed = [
        f"{name} {before[name]!r}, now {value!r}"
        if name in before
        else f"{name} not recorded, now {value!r}"  # made by an older version
        for name, value in current["options"].items()
        if before.get(name, _MISSING) != value and not (name == "tile_size" and automatic)
    ]
    if changed:
        return f"with other options ({'; '.join(changed)})"
    if stored.get("input") != current["input"]:
        return _input_difference(stored.get("input"), current["input"])
    if stored.get("last_mask", _MISSING) != current["last_mask"]:
        return _last_mask_difference(stored.get("last_mask", _MISSING), current["last_mask"])
    if stored.get("package_version") != current["package_version"]:
        return (
            f"by napari-unet {stored.get('package_version')} (this is {current['package_version']})"
        )
    return None


_FIELD_WORDS = {"mtime_ns": "modification time", "size": "size in bytes"}
"""The input record's fields in a user's words."""


def _input_difference(stored: Any, current: dict[str, Any]) -> str:
    """How the recorded input differs from the current one, in words."""
    stored = stored if isinstance(stored, dict) else {}
    changed = [
        _FIELD_WORDS.get(name, name)
        if name in stored
        else f"{_FIELD_WORDS.get(name, name)}, not recorded by an older napari-unet"
        for name in current
        if stored.get(name, _MISSING) != current[name]
    ]
    changed += [name for name in stored if name not in current]  # e.g. a file, now a store
    return f"from another version of the input (changed: {'; '.join(changed)})"


def _last_mask_difference(stored: Any, current: dict[str, Any] | None) -> str:
    """How the recorded last mask and strokes differ from the current ones, in words."""
    now = _last_mask_words(current)
    if stored is _MISSING:
        return f"before napari-unet recorded the last mask it used (now {now})"
    if not isinstance(stored, dict):
        return f"without a last mask (now {now})"
    if current is None:
        return f"with {_last_mask_words(stored)} (now {now})"
    changed = []
    for kind in ("mask", "strokes"):
        before, after = stored.get(kind), current[kind]
        if before != after:
            before_path = before.get("path") if isinstance(before, dict) else None
            after_path = None if after is None else after["path"]
            if before_path == after_path:
                changed.append(f"{kind} {after_path} changed since")
            else:
                changed.append(f"{kind} {before_path or 'none'}, now {after_path or 'none'}")
    return f"with another last mask or strokes ({'; '.join(changed)})"


def _last_mask_words(record: Any) -> str:
    """A last-mask record in words: which mask and strokes."""
    if not isinstance(record, dict):
        return "no last mask"
    mask, strokes = record.get("mask"), record.get("strokes")
    words = f"the last mask {mask.get('path') if isinstance(mask, dict) else None}"
    return words + (f" and strokes {strokes.get('path')}" if isinstance(strokes, dict) else "")


def remove_stale_temporaries(outputs: Sequence[Path]) -> list[Path]:
    """Remove what killed runs left beside ``outputs``; returns the removed paths.

    These are the hidden ``.<name>.<32 hex>.tmp`` files of atomic TIFF writes and
    the ``.partial`` / ``.old`` stores of zarr outputs, for the given output
    names only. Another run writing the same outputs at the same time would lose
    its temporaries: call it only while holding their lock
    (:func:`napari_unet.io.locks.output_lock`), as :func:`napari_unet.io.batch.predict_file`
    does.
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

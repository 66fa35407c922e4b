"""Where the Model section's file dialogs start (:func:`dialog_folder`)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import napari

from ..core.checkpoint import bundled_models
from ._state import ModelState


def dialog_folder(state: ModelState, viewer: napari.Viewer, *, writable: bool = False) -> Path:
    """Where the Save and Select file dialogs start.

    The folder last used for a model this session (loaded or saved, in any dock of the
    viewer), else the current model's file's, else that of the topmost layer opened from
    a file, else the working directory, else the home folder. For Save (``writable``),
    folders the user cannot write to are passed over: an image's folder is often a
    read-only data share. A working directory that is a filesystem root is passed over:
    it is that of a napari started from a desktop launcher, and no place for a model.
    """
    for folder in (*_candidates(state, viewer), _working_directory()):
        if folder is not None and folder.is_dir():
            if not writable or os.access(folder, os.W_OK):
                return folder
    return Path.home()


def _working_directory() -> Path | None:
    """The working directory, unless it is a filesystem root or was removed."""
    try:
        folder = Path.cwd()
    except OSError:  # removed since napari started
        return None
    return None if folder == Path(folder.anchor) else folder


def _candidates(state: ModelState, viewer: napari.Viewer) -> Iterator[Path]:
    if state.last_folder is not None:
        yield state.last_folder
    source = state.model.info.source if state.has_model else None  # the file it came from
    if source and source not in bundled_models() and Path(source).is_file():
        yield Path(source).resolve().parent
    for layer in reversed(viewer.layers):
        opened = layer.source.path
        if opened:
            yield Path(opened).resolve().parent

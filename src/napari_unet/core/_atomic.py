"""Atomic file writes: a temporary file in the target's folder, then a rename."""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """Open a binary stream whose content replaces ``path`` only once it is complete.

    The stream writes a fresh ``.<name>.<random>.tmp`` file beside ``path``
    (opened exclusively, with the usual permissions); on leaving the block without
    an error the file is flushed to disk and renamed over ``path``
    (:func:`os.replace`, atomic on POSIX and Windows). On an error the temporary
    file is removed and ``path`` is untouched, so readers only ever see the old
    complete file or the new complete one.
    """
    path = Path(path)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        stream = open(temporary, "xb")
    except OSError as error:
        raise OSError(f"cannot write to {path.parent}: {error.strerror}") from error
    try:
        with stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


#: Pauses (seconds) between the tries of a rename that Windows refused (:func:`replace`).
WINDOWS_RENAME_PAUSES = (0.05, 0.1, 0.2, 0.4, 0.8)


def replace(source: str | os.PathLike, target: str | os.PathLike) -> None:
    """:func:`os.replace`, tried again on Windows while another program holds a file.

    Windows refuses a rename (``PermissionError``) while an antivirus scanner, the
    search indexer or a sync client (OneDrive) has the file open for a moment; the
    rename is tried again after each of :data:`WINDOWS_RENAME_PAUSES`, then the error
    is raised. Elsewhere the rename is tried once.
    """
    pauses = WINDOWS_RENAME_PAUSES if os.name == "nt" else ()
    for pause in pauses:
        try:
            os.replace(source, target)
            return
        except PermissionError:
            time.sleep(pause)
    os.replace(source, target)

"""Atomic file writes: a temporary file in the target's folder, then a rename."""

from __future__ import annotations

import contextlib
import os
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
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise

"""What several sub-commands share: the user-error type, JSON output, output folders, SIGTERM."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

EXIT_BAD_INPUT = 2

#: Most characters shown of a pydantic validation error (its messages can list
#: every allowed value: some 30 KB for an SPDX licence).
MAX_VALIDATION_CHARS = 300


class CliError(Exception):
    """A user error: printed as one line, exit status 2."""


def one_line(error: BaseException) -> str:
    """An error's message on one line (its type's name when it has none).

    A pydantic ``ValidationError`` (bioimageio.spec's) is shortened to its first
    error, at most :data:`MAX_VALIDATION_CHARS` characters.
    """
    if type(error).__module__.startswith("pydantic") and callable(getattr(error, "errors", None)):
        return _first_validation_error(error)
    text = str(error).strip() or type(error).__name__
    return " ".join(text.split())


def _first_validation_error(error: Any) -> str:
    """``invalid value (location: message)`` of a pydantic error's first entry, shortened."""
    try:
        entries = error.errors(include_url=False)
    except Exception:  # not the pydantic API after all: its message, shortened
        entries = []
    if entries:
        first = entries[0]
        location = ".".join(str(part) for part in first.get("loc", ()))
        message = f"{location}: {first.get('msg', '')}" if location else first.get("msg", "")
        text = f"invalid value ({message})"  # not pydantic's title: it can list every value
        if len(entries) > 1:
            text += f" (and {len(entries) - 1} more errors)"
    else:
        text = str(error).strip() or type(error).__name__
    text = " ".join(text.split())
    if len(text) > MAX_VALIDATION_CHARS:
        text = text[: MAX_VALIDATION_CHARS - 3].rstrip() + "..."
    return text


def print_json(data: object) -> None:
    """Print indented JSON to stdout, as written (“quotes”, µ), with lists of plain numbers
    (shapes, pixel counts) on one line."""
    encoding = (getattr(sys.stdout, "encoding", None) or "").lower().replace("-", "")
    # JSON is UTF-8: another encoding (cp1252 on Windows, a file or pipe there) gets escapes
    print(_json_text(data, ensure_ascii=encoding != "utf8"))


def _json_text(data: object, ensure_ascii: bool) -> str:
    """``data`` as indented JSON, each list of numbers only on one line."""
    lists: list[str] = []
    token = uuid.uuid4().hex  # no string of the data holds it

    def marked(value: Any) -> Any:
        if isinstance(value, dict):
            return {key: marked(item) for key, item in value.items()}
        if isinstance(value, (list, tuple)):
            numbers = all(type(item) in (int, float) for item in value)
            if value and numbers:
                lists.append(json.dumps(list(value)))
                return f"{token}:{len(lists) - 1}"
            return [marked(item) for item in value]
        return value

    text = json.dumps(marked(data), indent=2, default=str, ensure_ascii=ensure_ascii)
    return re.sub(f'"{token}:(\\d+)"', lambda found: lists[int(found.group(1))], text)


def writable_folder(folder: Path) -> Path:
    """Create ``folder`` if needed and check that a file can be written in it."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise CliError(f"cannot create output folder {folder}: {error.strerror}") from error
    try:  # a fresh name, opened O_EXCL | O_NOFOLLOW: never an existing file or symlink
        descriptor, probe = tempfile.mkstemp(prefix=".napari-unet-write-test-", dir=folder)
        os.close(descriptor)
        os.unlink(probe)
    except OSError as error:
        raise CliError(f"output folder {folder} is not writable: {error.strerror}") from error
    return folder


def refuse_existing_output(path: Path, overwrite: bool) -> None:
    """Refuse to replace a file the user did not say may go (``--overwrite``)."""
    if not overwrite and (path.exists() or path.is_symlink()):
        raise CliError(f"{path} exists; pass --overwrite to replace it")


class Termination:
    """SIGTERM handling of ``train`` and ``predict``: the state shared with the handler.

    While ``armed`` (training, predicting), the first SIGTERM raises
    KeyboardInterrupt where the program is, as Ctrl-C does in ``predict`` (``train``
    counts its presses instead: :mod:`._interrupts`), so ``finally``
    blocks run (temporaries removed, best weights restored). Once disarmed
    (saving), SIGTERM is only recorded in ``received``, so the best weights are
    still written.
    """

    def __init__(self) -> None:
        self.armed = True
        self.received: list[int] = []

    def handler(self, signum: int, frame: object) -> None:
        self.received.append(signum)
        if self.armed:
            self.armed = False
            raise KeyboardInterrupt


@contextlib.contextmanager
def sigterm_interrupts(termination: Termination):
    """Install ``termination.handler`` for SIGTERM within the block (main thread only)."""
    try:
        previous = signal.signal(signal.SIGTERM, termination.handler)
    except ValueError:  # not the main thread: no signal handlers there
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


DEVICE_HELP = (
    "auto (CUDA, then Apple MPS, then CPU), cpu, cuda, cuda:N or mps (default %(default)s)"
)
"""The ``--device`` option's help, alike in every command."""

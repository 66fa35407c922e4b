"""One run at a time per input's outputs: a lock file beside them.

Before :func:`napari_unet.io.batch.predict_file` looks at an input's outputs it
creates ``.<stem>.napari-unet.lock`` in the output folder, atomically
(``O_CREAT | O_EXCL``, which holds on local file systems and NFS), holding the
process id, host name, process start time and a random token of the run. Only then
are the temporaries of killed runs removed and the outputs checked, written and
published; the lock goes when the input is finished, failed or interrupted.

A lock found there belongs to another run, which is

* gone (the lock is *stale* and taken over) when it was made on this host by a
  process that no longer runs (or by an earlier process of the same id, told by its
  start time), or on another host and not refreshed for :data:`STALE_SECONDS`
  (a holder touches its lock every :data:`HEARTBEAT_SECONDS`);
* otherwise alive: the input fails with :class:`OutputsBusy`, naming the other run
  and the lock file. Delete the lock by hand only when that run is known to be gone.

A holder checks the lock is still its own (:func:`check_held`) before it publishes
outputs, so a run whose lock was taken over fails instead of publishing.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = [
    "HEARTBEAT_SECONDS",
    "LOCK_SUFFIX",
    "STALE_SECONDS",
    "OutputsBusy",
    "OutputsLock",
    "check_held",
    "lock_path",
    "output_lock",
]

LOCK_SUFFIX = ".napari-unet.lock"
#: A holder refreshes its lock's modification time this often (seconds).
HEARTBEAT_SECONDS = 60.0
#: A lock from another host not refreshed for this long (seconds) is stale.
STALE_SECONDS = 600.0


class OutputsBusy(RuntimeError):
    """Another run holds the lock of an input's outputs (or took it over)."""


class OutputsLock:
    """A lock this process holds: its file and the record written into it."""

    def __init__(self, path: Path, record: dict[str, Any]) -> None:
        self.path, self.record = path, record


def lock_path(output: str | os.PathLike, stem: str) -> Path:
    """The lock file of the outputs of input ``stem`` in the output folder ``output``."""
    return Path(output) / f".{stem}{LOCK_SUFFIX}"


@contextmanager
def output_lock(path: Path) -> Iterator[OutputsLock]:
    """Hold the lock ``path`` for the duration of a ``with`` block.

    Raises
    ------
    OutputsBusy
        Another live run holds it.
    """
    lock = _acquire(path)
    stop = threading.Event()
    beat = threading.Thread(target=_heartbeat, args=(path, stop), daemon=True)
    beat.start()
    try:
        yield lock
    finally:
        stop.set()
        beat.join()
        if _read(path) == _text(lock.record):
            try:
                path.unlink(missing_ok=True)
            except OSError:  # Windows: another run reads it; a lock of a gone run is stale
                pass


def check_held(lock: OutputsLock) -> None:
    """Raise :class:`OutputsBusy` unless ``lock`` is still this run's (before publishing)."""
    if _read(lock.path) != _text(lock.record):
        holder = _parse(_read(lock.path))
        raise OutputsBusy(
            f"another run took over the lock {lock.path} ({_describe(holder)}) while this one "
            "was writing; nothing was published"
        )


def _acquire(path: Path) -> OutputsLock:
    """Create the lock, taking over a stale one (a few tries against racing runs)."""
    record = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": _process_start(os.getpid()),
        "token": uuid.uuid4().hex,
        "time": time.time(),
    }
    for _ in range(5):
        try:
            descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            text = _read(path)
            if text is None:
                continue  # released meanwhile
            if not _is_stale(path, _parse(text)):
                raise _busy(path, _parse(text)) from None
            _take_over(path, text)
            continue
        with os.fdopen(descriptor, "w") as file:
            file.write(_text(record))
        return OutputsLock(path, record)
    raise _busy(path, _parse(_read(path)))


def _busy(path: Path, holder: dict[str, Any] | None) -> OutputsBusy:
    return OutputsBusy(
        f"another napari-unet run ({_describe(holder)}) is writing these outputs (lock "
        f"{path}); run again when it has finished, or delete the lock if that run is gone"
    )


def _describe(holder: dict[str, Any] | None) -> str:
    if holder is None:
        return "unknown: the lock is empty or unreadable"
    try:
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(holder.get("time", 0))))
    except (TypeError, ValueError, OverflowError, OSError):
        since = "an unknown time"
    return f"pid {holder.get('pid')} on {holder.get('host')}, since {since}"


def _is_stale(path: Path, holder: dict[str, Any] | None) -> bool:
    """Whether the run that made the lock is gone (see the module docstring)."""
    try:
        age = time.time() - path.stat().st_mtime
    except OSError:
        return False  # released meanwhile (or being deleted, on Windows): not taken over
    if holder is None or holder.get("host") != socket.gethostname():
        return age > STALE_SECONDS  # being written (empty), or another host's
    pid = holder.get("pid")
    if not isinstance(pid, int) or not _alive(pid):
        return True
    started, recorded = _process_start(pid), holder.get("started")
    if started is None or recorded is None:
        return False
    try:  # another process of the same id; a clock step may move the figure by a second
        return abs(float(started) - float(recorded)) > 2.0
    except (TypeError, ValueError):
        return False


def _alive(pid: int) -> bool:
    """Whether a process ``pid`` runs on this host (psutil: never a signal, which on
    Windows ``os.kill(pid, 0)`` would send as Ctrl+C)."""
    import psutil

    return bool(psutil.pid_exists(pid))


def _process_start(pid: int) -> str | None:
    """The start time of a process (seconds since the epoch, as text), or None."""
    import psutil

    try:
        return f"{psutil.Process(pid).create_time():.2f}"
    except (psutil.Error, OSError):
        return None


def _take_over(path: Path, stale: str) -> None:
    """Remove the stale lock ``path`` holding ``stale``, and only that one: a lock that
    another run created meanwhile is put back."""
    aside = path.with_name(f"{path.name}.{uuid.uuid4().hex}.stale")
    try:
        os.rename(path, aside)
    except OSError:  # gone meanwhile, or (Windows) held open by a racing run: try again
        return
    moved = _read(aside)
    if moved != stale:  # a racing run's fresh lock: give it back
        try:
            os.link(aside, path)
        except OSError:
            pass
    aside.unlink(missing_ok=True)


def _heartbeat(path: Path, stop: threading.Event) -> None:
    while not stop.wait(HEARTBEAT_SECONDS):
        try:
            os.utime(path)
        except OSError:
            pass


def _text(record: dict[str, Any]) -> str:
    return json.dumps(record, sort_keys=True)


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except (FileNotFoundError, IsADirectoryError):
        return None
    except (OSError, UnicodeDecodeError):
        return ""


def _parse(text: str | None) -> dict[str, Any] | None:
    try:
        record = json.loads(text or "")
    except ValueError:
        return None
    return record if isinstance(record, dict) else None

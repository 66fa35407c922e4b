"""What a file is, from its first bytes: for messages about a file opened as the wrong kind.

A user who opens an image, a text file or an archive as a model should be told so in
those words, not with what the checkpoint reader found wrong with it.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["foreign_file_kind"]


#: The first bytes of files users open as models by mistake, and what they are.
_FOREIGN_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
    (b"II+\x00", "a BigTIFF image"),
    (b"MM\x00+", "a BigTIFF image"),
    (b"\x89HDF\r\n\x1a\n", "an HDF5 file (a Keras .h5 model?)"),
    (b"\x93NUMPY", "a NumPy array (.npy)"),
    (b"PK\x03\x04", "a zip archive"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"%PDF", "a PDF document"),
    (b"\x80", "a Python pickle"),
)


def foreign_file_kind(path: Path) -> str | None:
    """What a file that failed to read as a checkpoint is, from its first bytes (an image,
    an archive, text…), or None when it may be a damaged checkpoint (or is unreadable).

    A safetensors file starts with an 8-byte header length and then ``{``; such a file,
    truncated or corrupt, gets None, so its message says what the reader found.
    """
    try:
        with open(path, "rb") as stream:
            start = stream.read(512)
    except OSError:
        return None
    if len(start) > 8 and start[8:9] == b"{":
        return None
    for signature, kind in _FOREIGN_SIGNATURES:
        if start.startswith(signature):
            return kind
    if start and not any(byte < 32 and byte not in b"\t\r\n" for byte in start):
        return "a text file"  # no control characters (UTF-8 letters are >= 128)
    return None

"""Small helpers for the words the dock and the CLI print."""

from __future__ import annotations


def counted(number: int, word: str) -> str:
    """A count with its noun: ``"1 iteration"``, ``"2,454 objects"`` (thousands separated).

    Parameters
    ----------
    number : int
        How many.
    word : str
        The noun in the singular; the plural adds "s".

    Returns
    -------
    str
    """
    return f"{number:,} {word}{'' if number == 1 else 's'}"

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


def percent(share: float, *, whole: bool = False) -> str:
    """A share as a percentage, never in exponent notation.

    Two significant digits ("0.5 %", "12 %", "100 %", "<0.01 %"), or with ``whole``
    whole percentages ("62 %", "<1 %" below 1 %); all but a few pixels is
    ">99 %" either way.

    Parameters
    ----------
    share : float
        Between 0 and 1.
    whole : bool
        Round to a whole percentage.
    """
    value = 100 * share
    if whole and 0 < value < 1:  # 0.5 would round to "0 %"
        return "<1 %"
    if not whole and 0 < value < 0.01:
        return "<0.01 %"
    if 99.5 <= value < 100:
        return ">99 %"
    return f"{value:.0f} %" if whole or value >= 10 else f"{value:.2g} %"

"""How many painted pixels a model gets right, before and after a run
(:func:`stroke_agreement`): what a fine-tune learnt from the strokes, in pixels a user can
check. Re-exported by :mod:`napari_unet.evaluation.review`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._words import counted, percent

__all__ = ["StrokeAgreement", "shown_classes", "stroke_agreement", "with_strokes"]


@dataclass(frozen=True)
class StrokeAgreement:
    """How many painted pixels of one plane a model's most probable class matches, before
    and after a run: what a fine-tune learnt from the strokes, in pixels a user can check
    (its loss mixes the strokes with keeping the model's own predictions elsewhere). They
    are the pixels it trained on, so a high share says it learnt them, not that it is right
    elsewhere; and it is the most probable class, before Predict's mask steps (gaps closed,
    objects grown to a threshold) that may move a few.

    Attributes
    ----------
    painted : int
        Stroke pixels of the plane (labels >= 1), at least 1.
    right_before, right_after : int
        Of those, the pixels whose most probable class is the painted one, before and after.
    right_shown, right_shown_before : int or None
        Of those, the pixels whose class is the painted one in the mask drawn with the
        model's background threshold (what Predict shows, before its gaps are closed), after
        and before; None: not measured (a model without a threshold).

    Raises
    ------
    ValueError
        If ``painted`` is below 1 or a count of right pixels lies outside 0..``painted``.
    """

    painted: int
    right_before: int
    right_after: int
    right_shown: int | None = None
    right_shown_before: int | None = None

    def __post_init__(self) -> None:
        shown = (self.right_shown or 0, self.right_shown_before or 0)
        rights = (self.right_before, self.right_after, *shown)
        if self.painted < 1 or not all(0 <= right <= self.painted for right in rights):
            raise ValueError(
                f"{rights} right of {self.painted} painted pixels: at least 1 painted, "
                "and no more right than painted"
            )

    def describe(
        self,
        *,
        first_run: bool = False,
        pixels: str = "painted",
        threshold: tuple[str, float] | None = None,
    ) -> str:
        """One clause for a status line.

        Parameters
        ----------
        first_run : bool
            Leave out "before" (an untrained model's classes meant nothing).
        pixels : str
            What the strokes are called: "painted" (the dock), "labelled" (label files).
        threshold : (str, float), optional
            The first class's name and the model's background threshold: said with
            ``right_shown`` (and ``right_shown_before``) when that differs from
            ``right_after`` by 1 % or more.

        Returns
        -------
        str
            E.g. "the model's most probable class now matches 96 % (before: 31 %) of your
            1,310 painted pixels, which it trained on".
        """
        after = percent(self.right_after / self.painted, whole=True)
        strokes = f"of your {counted(self.painted, f'{pixels} pixel')}, which it trained on"
        strokes += self._shown_text(threshold, first_run)
        if first_run:
            return f"the model's most probable class matches {after} {strokes}"
        before = percent(self.right_before / self.painted, whole=True)
        return f"the model's most probable class now matches {after} (before: {before}) {strokes}"

    def _shown_text(self, threshold: tuple[str, float] | None, first_run: bool) -> str:
        """ "; Predict's mask, which draws membrane only where …, matches 41 % of them", or
        "": the mask shown is not the most probable class, and a user reading one figure
        for the other would think the strokes ignored."""
        shown = self.right_shown
        if threshold is None or shown is None or abs(shown - self.right_after) < self.painted / 100:
            return ""
        first_class, level = threshold
        before = self.right_shown_before
        before_text = (
            ""
            if first_run or before is None
            else f" (before: {percent(before / self.painted, whole=True)})"
        )
        matched = percent(shown / self.painted, whole=True)
        return (
            f"; Predict's mask, which draws {first_class} only where the model is at least "
            f"{percent(level, whole=True)} sure, matches {matched} of them{before_text}"
        )


def with_strokes(
    said: str,
    strokes: StrokeAgreement | None,
    *,
    first_run: bool,
    pixels: str = "painted",
    threshold: tuple[str, float] | None = None,
) -> str:
    """What a run changed on a plane, ``said``, after what it made of the plane's strokes.

    Parameters
    ----------
    said : str
        E.g. :meth:`ClassChanges.describe`.
    strokes : StrokeAgreement or None
        None: ``said`` alone (the plane has no strokes).
    first_run, pixels, threshold
        As :meth:`StrokeAgreement.describe` takes them.

    Returns
    -------
    str
    """
    if strokes is None:
        return said
    return f"{strokes.describe(first_run=first_run, pixels=pixels, threshold=threshold)}; {said}"


def stroke_agreement(
    strokes: np.ndarray,
    before: np.ndarray,
    after: np.ndarray,
    shown: np.ndarray | None = None,
    shown_before: np.ndarray | None = None,
) -> StrokeAgreement | None:
    """Compare two class masks with the strokes painted on their plane.

    Parameters
    ----------
    strokes : (Y, X) integer array
        Annotations: 0 unlabelled, 1 background, 2.. foreground classes.
    before, after : (Y, X) integer arrays
        Class masks (same convention) of the model before and after a run.
    shown, shown_before : (Y, X) integer arrays, optional
        The masks after and before, drawn with each model's background threshold
        (``right_shown``, ``right_shown_before``).

    Returns
    -------
    StrokeAgreement or None
        None when no pixel of the plane is painted.

    Raises
    ------
    ValueError
        If the shapes differ.
    """
    before, after = two_masks(before, after)
    strokes = np.asarray(strokes)
    if strokes.shape != before.shape:
        raise ValueError(f"strokes of shape {strokes.shape} for masks of shape {before.shape}")
    painted = strokes > 0
    count = int(painted.sum())
    if not count:
        return None
    wanted = strokes[painted]
    return StrokeAgreement(
        painted=count,
        right_before=int((before[painted] == wanted).sum()),
        right_after=int((after[painted] == wanted).sum()),
        right_shown=_right(shown, painted, wanted),
        right_shown_before=_right(shown_before, painted, wanted),
    )


def two_masks(before: np.ndarray, after: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both as arrays; ValueError if their shapes differ."""
    before, after = np.asarray(before), np.asarray(after)
    if before.shape != after.shape:
        raise ValueError(f"masks differ in shape: {before.shape} and {after.shape}")
    return before, after


def _right(mask: np.ndarray | None, painted: np.ndarray, wanted: np.ndarray) -> int | None:
    """The painted pixels whose class in ``mask`` is the painted one (None: no mask)."""
    return None if mask is None else int((np.asarray(mask)[painted] == wanted).sum())


def shown_classes(probabilities: np.ndarray, threshold: float) -> np.ndarray | None:
    """The classes Predict draws with a model's background ``threshold``, before it closes
    gaps (objects grown into the background pixels it is less sure of); None at 0.5, where
    it draws the most probable class.

    Parameters
    ----------
    probabilities : (C, Y, X) array
    threshold : float
        ``model.info.background_threshold``.

    Returns
    -------
    (Y, X) uint8 array or None
    """
    if threshold == 0.5:
        return None
    from ..core.postprocess import prediction_mask

    return prediction_mask(
        probabilities, close_boundaries=False, background_threshold=threshold, fill_holes=False
    )

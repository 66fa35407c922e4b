"""What ``napari-unet train`` says about a run: the threshold it set, a model that has not
learnt yet, and why a new model trains on past its time budget."""

from __future__ import annotations

from ..config import LEARNING_FLOOR_CAP, TRAINED_ITERATIONS

__all__ = ["_not_learnt_text", "_print_threshold", "cut_short_note", "floor_note"]


def floor_note(seconds: float) -> str:
    """The note printed once when a new model's run goes on past its time budget of
    ``seconds`` (``training.schedule.learning_floor``)."""
    return (
        f"past {seconds:g} s: a new model trains on until it has trained {TRAINED_ITERATIONS} "
        f"iterations (at most {LEARNING_FLOOR_CAP * seconds:g} s; Ctrl-C stops it)"
    )


def cut_short_note(model) -> str:
    """A line when the time budget ended the last run before its iteration budget (a busy
    or slow machine; the annotation-loop benchmark checks full budgets); "" otherwise."""
    from ..training.history import cut_short

    short = cut_short(model)
    if short is None:
        return ""
    return (
        f"the time budget ended the run after {short[0]} of its {short[1]} iterations (a "
        "slow or busy machine): a longer --seconds lets it finish"
    )


def _not_learnt_text(model, changes, image) -> str:
    """What ``train`` says about a new model still at chance
    (:func:`~napari_unet.training.history.not_learnt_yet`) on ``image``."""
    from ..training.distillation import has_been_trained
    from ..training.history import guess_loss_text

    if len(changes.present) == 1:
        seen = f"the model still calls all of {image} one class"
    else:
        seen = f"the model's {guess_loss_text(model)}"
    advice = "train it further (--model with this output)"
    if has_been_trained(model):  # a next run would only fine-tune it
        advice = "a next run would only fine-tune it: train a new model longer (--new --seconds)"
    return f"{seen}: it has not learnt to tell the classes apart yet; {advice}"


def _print_threshold(
    before: float,
    after: float,
    close_gaps: bool = True,
    skipped: bool = False,
    at_chance=False,
    moved: float | None = None,
    from_strokes: bool = False,
) -> None:
    """Say when training set, moved or (``at_chance``) reset the background threshold (and
    that Predict leaves gaps open), or that a second Ctrl-C ``skipped`` its calibration;
    ``moved``: the level a new model's decision was moved to
    (:mod:`~napari_unet.training.seeding`); ``from_strokes``: the run trained a model still
    learning, whose threshold is read from its strokes again (not carried over)."""
    if after == before:
        if skipped:
            print(f"background threshold not set (Ctrl-C): it stays {before:.2f}")
        return
    if at_chance:  # a new model whose run ended at chance: defaults back
        print(f"background threshold back to 0.50 from {before:.2f}: the loss is still a guess's")
        return
    if before == 0.5:
        source = "from the strokes"
    elif from_strokes:  # a model still learning: estimated again, replacing its last estimate
        source = f"from the strokes; it was {before:.2f}"
    else:
        source = f"matched to the decisions of the model before at {before:.2f}"
    gaps = "" if close_gaps else " and leaves gaps open"
    print(f"background threshold {after:.2f} ({source}): Predict grows objects up to it{gaps}")
    if moved is not None:
        print(
            "at 0.5 the model would call nearly every pixel background: its decision moved to "
            f"where it is {moved:.2f} sure of it, so objects start there (the shares and the "
            "threshold above are on the moved probabilities)"
        )

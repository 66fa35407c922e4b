"""Evaluate's memory of earlier scores (``_widgets._score_memory``): "Before, with …"."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from napari_unet._widgets._evaluate_job import Scoring, score_now
from napari_unet._widgets._evaluate_text import headline
from napari_unet._widgets._last_mask import MODEL_NAME_KEY
from napari_unet._widgets._score_memory import MaskMaker, ScoreMemory, ScoringKey, mask_maker
from napari_unet.core.continuity import LINEAGE_KEY


def _instances(f1: float, iou: float) -> dict:
    row = {"threshold": 0.5, "f1": f1, "mean_matched_iou": iou, "tp": 3, "fp": 1, "fn": 0}
    return {"kind": "instances", "instances": [{**row, "threshold": 0.3}, row]}


KEY = ScoringKey("image", "truth", "instances", None, False)


def test_another_models_scores_are_said_and_the_same_models_are_not():
    memory = ScoreMemory()
    assert memory.compare(KEY, ["a"], "nuclei", _instances(0.882, 0.837)) == ""
    after = memory.compare(KEY, ["a", "b"], "nuclei (fine-tuned)", _instances(0.9, 0.85))
    assert after == "Before, with “nuclei”: F1 0.882, mean matched IoU 0.837."
    again = memory.compare(KEY, ["a", "b"], "nuclei (fine-tuned)", _instances(0.9, 0.85))
    assert again == after  # the same mask scored again: still against the other model's
    back = memory.compare(KEY, ["a"], "nuclei", _instances(0.882, 0.837))  # after Go back
    assert back == "Before, with “nuclei (fine-tuned)”: F1 0.900, mean matched IoU 0.850."


def test_a_model_of_the_same_name_is_told_apart():
    """Two fine-tunes of "nuclei" are both "nuclei (fine-tuned)": the line says which."""
    memory = ScoreMemory()
    tuned = "nuclei (fine-tuned)"
    memory.compare(KEY, ["a", "b"], tuned, _instances(0.9, 0.85))
    again = memory.compare(KEY, ["a", "c"], tuned, _instances(0.95, 0.86))  # a sibling
    assert again == f"Before, with the earlier “{tuned}”: F1 0.900, mean matched IoU 0.850."
    back = memory.compare(KEY, ["a", "b"], tuned, _instances(0.9, 0.85))  # Go back
    assert back == f"Before, with the later “{tuned}”: F1 0.950, mean matched IoU 0.860."
    memory.compare(KEY, ["a", "c", "d"], tuned, _instances(0.97, 0.87))  # tuned further
    back = memory.compare(KEY, ["a", "c"], tuned, _instances(0.95, 0.86))  # Go back
    assert back == f"Before, with the later “{tuned}”: F1 0.970, mean matched IoU 0.870."


def test_other_scorings_and_unknown_masks_compare_with_nothing():
    memory = ScoreMemory()
    memory.compare(KEY, ["a"], "nuclei", _instances(0.882, 0.837))
    away = ScoringKey("image", "truth", "instances", None, True)  # strokes left out
    assert memory.compare(away, ["b"], "tuned", _instances(0.936, 0.84)) == ""
    assert memory.compare(ScoringKey("image", "truth", "instances", (2,), False), ["b"], "t",
                          _instances(0.5, 0.5)) == ""  # fmt: skip
    assert memory.compare(KEY, None, "", _instances(0.1, 0.1)) == ""  # lineage unrecorded
    assert memory.compare(KEY, ["b"], "", _instances(0.2, 0.2)).startswith("Before, with “nuclei”")
    assert memory.compare(KEY, ["c"], "", _instances(0.3, 0.3)) == (
        "Before: F1 0.200, mean matched IoU 0.200."  # a mask of a model whose name is unknown
    )


def test_headlines_of_each_kind():
    membranes = {
        "kind": "membranes",
        "pixel_error": 0.0854,
        "rand_error": 0.041,
        "info_error": 0.02,
    }
    assert headline(membranes) == "pixel error 0.0854, rand error 0.0410"
    assert headline({"kind": "semantic", "iou": {"1": 0.9, "2": 0.75}}) == (
        "class 1: IoU 0.900, class 2: IoU 0.750"
    )
    empty = _instances(0.0, 0.0)
    empty["instances"][1].update(tp=0, fp=0, fn=0)
    assert headline(empty) == ""  # nothing to match: nothing to compare


def test_a_mask_of_another_model_than_the_current_one_is_named():
    layer = SimpleNamespace(metadata={LINEAGE_KEY: ["a", "b"], MODEL_NAME_KEY: "tuned"})
    maker = mask_maker(layer)
    assert maker == MaskMaker(["a", "b"], "tuned")
    assert maker.other_model_words(["a", "b"], "tuned") == ""  # the current model's mask
    assert maker.other_model_words(["a"], "nuclei") == (
        "This is “tuned”'s mask, not the current model “nuclei”'s: Predict again to score it."
    )
    assert maker.other_model_words(None, "") == ""  # no model loaded yet
    assert mask_maker(None).other_model_words(["a"], "nuclei") == ""  # unrecorded
    assert (
        MaskMaker(["c"], "")
        .other_model_words(["a"], "nuclei")
        .startswith("This is another model's mask")
    )


def test_a_stack_s_worst_slice_is_named_which_the_mean_hides():
    memory = ScoreMemory()
    key = ScoringKey("image", "truth", "membranes", None, False)

    def scores(*rand_errors: float) -> dict:
        mean = sum(rand_errors) / len(rand_errors)
        return {"kind": "membranes", "pixel_error": 0.07, "rand_error": mean,
                "rand_errors": list(rand_errors)}  # fmt: skip

    memory.compare(key, ["a"], "em", scores(0.06, 0.041, 0.004))
    said = memory.compare(key, ["b"], "tuned", scores(0.023, 0.080, 0.011), "slice {}".format)
    assert said.endswith(". Slice 1's rand error rose the most: 0.0410 → 0.0800.")
    better = memory.compare(key, ["c"], "tuned 2", scores(0.02, 0.07, 0.01))
    assert "rose" not in better  # every slice as good or better than before


def _discs(centres, radius=6, shape=(64, 64)):
    """Instance labels of discs at ``centres``."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    labels = np.zeros(shape, np.uint32)
    for number, (y, x) in enumerate(centres, start=1):
        labels[(yy - y) ** 2 + (xx - x) ** 2 <= radius**2] = number
    return labels


TRUTH = _discs([(12, 12), (12, 50), (50, 12), (50, 50)])
AWAY = ScoringKey("image", "truth", "instances", None, True)


def _scoring(predicted, strokes):
    return Scoring(predicted, TRUTH, "instances", strokes=strokes)


def test_scores_away_from_other_strokes_are_scored_again_on_today_s_region():
    """The strokes painted since leave other pixels out: the earlier mask is scored again."""
    first_strokes = np.zeros_like(TRUTH)
    first_strokes[50, 40:60] = 2  # a stroke on the lower right disc
    earlier_mask = _discs([(12, 12), (12, 50), (50, 12), (50, 50)])
    earlier_mask[_discs([(12, 50)]) > 0] = 0  # the earlier model missed the upper right one
    memory = ScoreMemory()
    earlier = _scoring(earlier_mask, first_strokes)
    memory.compare(AWAY, ["a"], "nuclei", score_now(earlier), scoring=earlier)
    more_strokes = first_strokes.copy()
    more_strokes[12, 40:60] = 2  # a correction on the disc it missed: now left out too
    now = _scoring(TRUTH.copy(), more_strokes)
    line = memory.compare(AWAY, ["a", "b"], "tuned", score_now(now), scoring=now)
    again = headline(score_now(_scoring(earlier_mask, more_strokes)))
    stale = headline(score_now(earlier))  # 1 of 3 true discs missed; 2 are scored now
    assert again != stale
    assert line == (
        f"Before, with “nuclei” (its mask scored again, away from today's strokes): {again}."
    )


def test_scores_of_the_other_choice_of_away_are_scored_again_this_way():
    """Evaluated on all of it before the fine-tune, away from the strokes after it (or the
    other way round): the earlier mask is scored again as now, not left uncompared."""
    strokes = np.zeros_like(TRUTH)
    strokes[12, 40:60] = 2  # a correction on the disc the earlier model missed
    earlier_mask = TRUTH.copy()
    earlier_mask[_discs([(12, 50)]) > 0] = 0
    memory = ScoreMemory()
    everywhere = _scoring(earlier_mask, None)
    memory.compare(KEY, ["a"], "nuclei", score_now(everywhere), scoring=everywhere)
    now = _scoring(TRUTH.copy(), strokes)
    line = memory.compare(AWAY, ["a", "b"], "tuned", score_now(now), scoring=now)
    again = headline(score_now(_scoring(earlier_mask, strokes)))
    assert again != headline(score_now(everywhere))  # its missed disc is left out now
    assert line == (
        f"Before, with “nuclei” (its mask scored again, away from today's strokes): {again}."
    )
    back = _scoring(TRUTH.copy(), None)  # all of it again, with the tuned model's mask
    line = memory.compare(KEY, ["a", "b"], "tuned", score_now(back), scoring=back)
    assert line == f"Before, with “nuclei”: {headline(score_now(everywhere))}."  # kept as is
    fresh = ScoreMemory()
    fresh.compare(AWAY, ["a"], "nuclei", score_now(now), scoring=now)
    line = fresh.compare(KEY, ["a", "b"], "tuned", score_now(back), scoring=back)
    assert line == (
        f"Before, with “nuclei” (its mask scored again, on all of it): "
        f"{headline(score_now(_scoring(TRUTH.copy(), None)))}."
    )


def test_a_stack_away_from_other_strokes_is_not_compared():
    stack_truth = np.stack([TRUTH, TRUTH])
    strokes = np.zeros_like(stack_truth)
    strokes[0, 50, 40:60] = 2
    memory = ScoreMemory()
    first = Scoring(stack_truth, stack_truth, "instances", strokes=strokes)
    memory.compare(AWAY, ["a"], "nuclei", _instances(0.8, 0.8), scoring=first)
    strokes = strokes.copy()
    strokes[1, 12, 40:60] = 2
    now = Scoring(stack_truth, stack_truth, "instances", strokes=strokes)
    line = memory.compare(AWAY, ["a", "b"], "tuned", _instances(0.9, 0.9), scoring=now)
    assert line.startswith("“nuclei”'s scores are not compared: they left out the pixels near")
    same = memory.compare(AWAY, ["a", "c"], "tuned again", _instances(0.95, 0.9), scoring=now)
    assert same == "Before, with “tuned”: F1 0.900, mean matched IoU 0.900."  # same strokes


def test_only_the_last_two_models_keep_their_masks():
    memory, strokes = ScoreMemory(), np.zeros_like(TRUTH)
    strokes[50, 40:60] = 2
    for model in "abcd":
        scoring = _scoring(TRUTH.copy(), strokes)
        memory.compare(AWAY, [model], model, _instances(0.9, 0.9), scoring=scoring)
    kept = memory._kept[AWAY]
    assert [entry.predicted is not None for entry in kept] == [False, False, True, True]


def test_kept_masks_let_the_oldest_go_beyond_a_memory_budget(monkeypatch):
    from napari_unet._widgets import _score_memory

    monkeypatch.setattr(_score_memory, "MASK_BYTES", 2 * TRUTH.nbytes)  # two masks
    memory = ScoreMemory()
    for index, model in enumerate("abc"):  # three slices, one mask each
        key = ScoringKey("image", "truth", "instances", (index,), False)
        scoring = Scoring(TRUTH.copy(), TRUTH, "instances", index=(index,))
        memory.compare(key, [model], model, score_now(scoring), scoring=scoring)
    kept = {key.index: entries[-1].predicted is not None for key, entries in memory._kept.items()}
    assert kept == {(0,): False, (1,): True, (2,): True}

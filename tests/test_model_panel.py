"""The Model panel's text: a model's training history in words a user reads at a glance."""

import html

import pytest

from helpers import as_trained, tiny_model
from napari_unet import load_model
from napari_unet._widgets._model_text import _duration, _when, describe_model, model_details


def test_the_bundled_em_models_run_reads_as_date_iterations_and_duration():
    text = model_details(load_model("em-membranes"))
    model = load_model("em-membranes")
    kept = model.info.training_history[-1].kept_smoothed_loss
    assert f"2026-12-02 00:59 UTC: 33,580 iterations in 90 min, kept loss {kept:.3g} (" in text


def test_the_summary_says_what_the_model_does_and_the_details_how_it_is_built():
    model = load_model("nuclei")
    summary, details = describe_model(model, "nuclei (fine-tuned)"), model_details(model)
    assert summary.startswith("Current model: <b>nuclei (fine-tuned)</b><br>")
    assert model.info.description in summary and "Trained on: DSB 2018" in summary
    assert "■</span> 2 nucleus" in summary
    for technical in ("base features", "parameters", "valid input sizes", "Training history"):
        assert technical in details and technical not in summary
    assert model.describe() in details


@pytest.mark.parametrize(
    ("seconds", "said"),
    [(45.2, "45 s"), (130, "2.17 min"), (5400.09, "90 min"), (9000, "2.5 h"), (None, "? s"),
     ("soon", "? s"), (True, "? s")],
)  # fmt: skip
def test_durations_are_said_in_the_unit_that_fits(seconds, said):
    assert _duration(seconds) == said


@pytest.mark.parametrize(
    ("date", "said"),
    [("2026-12-02T01:59:36+01:00", "2026-12-02 00:59 UTC"),
     ("2026-12-02T00:59:36", "2026-12-02 00:59"), (None, "?"), ("last week", "last week")],
)  # fmt: skip
def test_dates_are_said_to_the_minute_in_utc(date, said):
    assert _when(date) == said


def test_the_status_quotes_the_loss_of_the_weights_kept_not_the_last():
    from types import SimpleNamespace

    from napari_unet._widgets._finetune_text import kept_loss

    progress = SimpleNamespace(smoothed_loss=0.5)
    run = SimpleNamespace(kept_smoothed_loss=0.2, final_smoothed_loss=0.4)  # a TrainingRun's
    request = SimpleNamespace(model=SimpleNamespace(info=SimpleNamespace(training_history=(run,))))
    assert kept_loss(progress, request) == 0.2
    assert kept_loss(progress, None) == 0.5  # nothing recorded: the last smoothed loss
    unrecorded = SimpleNamespace(kept_smoothed_loss=None, final_smoothed_loss=None)
    request.model.info.training_history = (unrecorded,)
    assert kept_loss(progress, request) == 0.5


def test_a_model_trained_only_here_points_to_its_runs_behind_show_details():
    model = as_trained(tiny_model())
    iterations = model.metadata["training_history"][0]["iterations"]
    summary = describe_model(model, "tiny (trained)")
    expected = f"its training runs only (1 run, {iterations:,} iterations: Show details)"
    assert f"Trained on: {expected}" in summary
    assert "Trained on: nothing yet (random weights)" in describe_model(tiny_model(), "tiny")
    model.metadata["training_history"] = [
        {"iterations": 250, "image_layer": "coins <1>", "kept_smoothed_loss": 0.6531},
        {"iterations": 103, "image_layer": "coins <1>", "final_smoothed_loss": 0.66247},
    ]
    summary = describe_model(model, "tiny (trained)")
    assert "Trained on: strokes on “coins &lt;1&gt;” in napari (2 runs, 353 iterations)" in summary
    details = model_details(model)
    assert "kept loss 0.653 (" in details and "loss 0.66247 (" in details


def test_trained_on_names_the_fine_tunes_done_in_napari_before_what_their_start_was_trained_on():
    model = load_model("nuclei")
    bundled = model.info.trained_on
    history = model.metadata.setdefault("training_history", [])
    history += [{"iterations": 100, "image_layer": "cells"}] * 2
    history.append({"iterations": 100, "image_layer": "cells 2"})
    summary = describe_model(model, "nuclei (fine-tuned)")
    runs = "strokes on “cells”, “cells 2” in napari (3 runs), fine-tuning a model trained on: "
    assert f"Trained on: {html.escape(runs + bundled)}" in summary  # held out: before the runs


def test_going_back_names_the_model_and_when_it_was_kept():
    from napari_unet._widgets._state import HistoryEntry

    model = tiny_model()
    entry = HistoryEntry("nuclei before fine-tune at 06:23:29", "nuclei", model)
    assert entry.back_notice == "Back to “nuclei” (before fine-tune at 06:23:29)."
    replaced = HistoryEntry("tiny (trained) (replaced 05:31:45)", "tiny (trained)", model)
    assert replaced.back_notice == "Back to “tiny (trained)” (replaced 05:31:45)."
    assert HistoryEntry("other", "nuclei", model).back_notice == "Back to “nuclei”."

"""A new model's run does not end on time before it has trained TRAINED_ITERATIONS in all."""

from types import SimpleNamespace

import pytest

from helpers import as_trained, tiny_model
from napari_unet import TrainConfig, load_model
from napari_unet.config import LEARNING_FLOOR_CAP, TRAINED_ITERATIONS
from napari_unet.training.loop import _budget_fraction, _budget_spent, finetune
from napari_unet.training.schedule import learning_floor
from test_iteration_budget import _strokes


def _learning(done: int):
    """A new model still learning whose history records ``done`` iterations that ended at
    chance (a guess's loss, so under TRAINED_ITERATIONS it is still learning; none: never
    trained)."""
    model = tiny_model()
    if done:
        model.metadata["training_history"] = [{"iterations": done, "kept_smoothed_loss": 0.7}]
    return model


@pytest.mark.parametrize(
    ("config", "done", "expected"),
    [
        (TrainConfig(seconds=60), 0, TRAINED_ITERATIONS),
        (TrainConfig(seconds=60), 120, TRAINED_ITERATIONS - 120),
        (TrainConfig(seconds=60), TRAINED_ITERATIONS - 1, 1),
        (TrainConfig(seconds=60, iterations=40), 0, 0),  # an iteration budget is kept
        (TrainConfig(seconds=None, iterations=40), 0, 0),
    ],
)
def test_the_floor_is_what_a_new_model_lacks_of_the_mark(config, done, expected):
    assert learning_floor(config, _learning(done)) == expected


def test_a_trained_model_has_no_floor():
    assert learning_floor(TrainConfig(seconds=60), as_trained(tiny_model())) == 0


def _state(elapsed: float, iteration: int, floor: int):
    return SimpleNamespace(elapsed=elapsed, reserved=0.0, iteration=iteration, floor=floor)


def test_past_its_time_a_run_under_a_floor_goes_on_until_the_floor_or_the_cap():
    config = TrainConfig(seconds=60)
    assert not _budget_spent(_state(61.0, 250, floor=300), config)
    assert _budget_fraction(_state(61.0, 150, floor=300), config) == pytest.approx(0.5)
    assert _budget_spent(_state(61.0, 300, floor=300), config)
    capped = 60 * LEARNING_FLOOR_CAP
    assert not _budget_spent(_state(capped - 1, 42, floor=300), config)
    assert _budget_spent(_state(capped, 42, floor=300), config)
    assert _budget_spent(_state(60.0, 10, floor=0), config)  # no floor: the time alone


def test_a_fast_run_under_a_floor_keeps_its_time_schedule():
    config = TrainConfig(seconds=60)
    # 12 iterations a second: past the floor before the time, which then decides alone
    assert _budget_fraction(_state(30.0, 360, floor=300), config) == pytest.approx(0.5)
    assert not _budget_spent(_state(59.0, 708, floor=300), config)


def test_a_run_that_would_leave_a_new_model_just_short_of_the_mark_reaches_it(monkeypatch):
    monkeypatch.setattr("napari_unet.training.loop.LEARNING_FLOOR_CAP", 1e12)  # no cap
    image, annotation = _strokes()
    model = _learning(TRAINED_ITERATIONS - 3)
    config = TrainConfig(seconds=1e-6, batch_size=1, seed=0)  # the time is up at once
    steps = [step.iteration for step in finetune(model, [image], [annotation], config)]
    assert steps[-1] == 3
    assert model.metadata["training_history"][-1]["iterations"] == 3


def test_the_cap_ends_a_run_under_a_floor():
    image, annotation = _strokes()
    model = _learning(0)
    config = TrainConfig(seconds=1e-6, batch_size=1, seed=0)  # 3e-6 s: over before a step
    assert list(finetune(model, [image], [annotation], config)) == []
    assert not model.metadata.get("training_history")  # nothing trained, nothing recorded


def _line(elapsed: float, *, floor: int = 0, budget=None, seconds=60.0) -> str:
    from napari_unet._widgets._finetune_job import FinetuneUpdate
    from napari_unet._widgets._finetune_text import progress_line

    update = FinetuneUpdate(iteration=42, loss=0.5, smoothed_loss=0.25, elapsed=elapsed, fraction=0)
    request = SimpleNamespace(
        train=TrainConfig(seconds=seconds), iteration_budget=budget, floor=floor
    )
    return progress_line(update, request)


def test_the_running_line_names_the_budget_that_ends_the_run():
    assert _line(12.4) == "Iteration 42 · loss 0.5 (smoothed 0.25) · 12 of 60 s"
    assert _line(12.4, budget=100) == "Iteration 42 of 100 · loss 0.5 (smoothed 0.25) · 12 s"
    assert _line(59.0, floor=300).endswith("· 59 of 60 s (a new model: up to 180 s)")
    assert _line(65.2, floor=42).endswith("· 65 of 60 s")  # the floor reached: this line ends it
    past = _line(65.2, floor=300)
    assert past.endswith(
        f"65 s: a new model trains on past 60 s until it has trained {TRAINED_ITERATIONS} "
        "iterations (at most 180 s)"
    )


def test_a_request_resolves_its_budget_and_floor_from_the_model_at_start():
    from napari_unet._widgets._finetune_job import TrainingRequest

    def request(model):
        return TrainingRequest(
            model, None, [], TrainConfig(seconds=60), None, None, image_name="cells"
        )

    learning = request(_learning(100))
    assert (learning.iteration_budget, learning.floor) == (None, TRAINED_ITERATIONS - 100)
    trained = request(as_trained(tiny_model()))
    assert (trained.iteration_budget, trained.floor) == (TrainConfig().finetune_iterations, 0)


def test_train_says_when_a_new_model_trains_on_past_its_time(tmp_path, capsys):
    from helpers import square_train_args
    from napari_unet.cli import main

    out = tmp_path / "new.safetensors"
    budget = ["--seconds", "0.05", "--device", "cpu"]  # 300 iterations take far longer
    assert main([*square_train_args(tmp_path), "--output", str(out), *budget]) == 0
    said = capsys.readouterr()
    note = (
        f"past 0.05 s: a new model trains on until it has trained {TRAINED_ITERATIONS} "
        "iterations (at most 0.15 s; Ctrl-C stops it)"
    )
    assert note in said.err + said.out
    done = load_model(out).metadata["training_history"][-1]["iterations"]
    assert 0 < done < TRAINED_ITERATIONS  # the cap ended it


def test_train_says_nothing_of_training_on_once_the_floor_is_reached(capsys):
    from napari_unet.cli._interrupts import CtrlC
    from napari_unet.cli.train import Termination, _follow_training

    def steps(last_iteration):
        for iteration, elapsed in ((1, 0.5), (last_iteration, 1.5)):
            yield SimpleNamespace(
                iteration=iteration, elapsed=elapsed, fraction=0.5, smoothed_loss=0.1
            )

    for last_iteration, noted in ((300, False), (299, True)):
        status = _follow_training(
            steps(last_iteration), (1.0, 300), Termination(), CtrlC(("",) * 2, "")
        )
        said = capsys.readouterr()
        assert status == 0
        assert ("a new model trains on" in said.err + said.out) is noted


def test_train_says_when_its_time_budget_cut_a_fine_tune_short(tmp_path, capsys):
    from helpers import as_trained, square_train_args
    from napari_unet.cli import main
    from napari_unet.core.checkpoint import save_model

    trained = save_model(as_trained(tiny_model()), tmp_path / "trained.safetensors")
    files = square_train_args(tmp_path)[:5]  # train --images … --labels …
    out = tmp_path / "tuned.safetensors"
    args = [*files, "--model", str(trained), "--output", str(out), "--device", "cpu"]
    assert main([*args, "--seconds", "0.05"]) == 0  # 100 iterations take far longer
    done = load_model(out).metadata["training_history"][-1]["iterations"]
    assert 0 < done < TrainConfig().finetune_iterations
    budget = TrainConfig().finetune_iterations
    expected = f"the time budget ended the run after {done} of its {budget} iterations"
    assert expected in capsys.readouterr().out
    assert main([*args, "--iterations", "3", "--overwrite"]) == 0  # its budget reached
    assert "the time budget ended" not in capsys.readouterr().out


def test_the_summary_says_why_a_new_model_trained_past_its_time():
    from napari_unet._widgets._finetune_text import cut_short_text
    from napari_unet.training.loop import TrainProgress

    model = tiny_model()
    model.metadata["training_history"] = [
        {"iterations": 300, "train_config": {"seconds": 60.0, "iterations": None}}
    ]
    past = TrainProgress(300, 0.3, 0.3, elapsed=98.0, fraction=1.0)
    said = cut_short_text(past, model, stopped=False)
    assert said == (
        " It trained past the 60 s budget: a new model trains on until it has trained 300 "
        "iterations in all, to learn enough to be kept."
    )
    assert cut_short_text(past, model, stopped=True) == ""  # the user ended it
    on_time = TrainProgress(200, 0.3, 0.3, elapsed=60.4, fraction=1.0)
    assert cut_short_text(on_time, model, stopped=False) == ""
    model.metadata["training_history"].insert(0, {"iterations": 300})  # trained before it
    assert cut_short_text(past, model, stopped=False) == ""  # a fine-tune never trains on

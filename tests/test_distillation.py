import numpy as np
import torch

from helpers import as_trained
from napari_unet import ModelConfig, TrainConfig
from napari_unet.config import (
    FINETUNE_ITERATIONS,
    FINETUNE_LEARNING_RATE,
    LEARNT_ITERATIONS,
    SCRATCH_LEARNING_RATE,
    TRAINED_ITERATIONS,
)
from napari_unet.core.checkpoint import new_model
from napari_unet.training import calibration
from napari_unet.training.distillation import (
    Teacher,
    distillation_loss,
    distillation_mask,
    has_been_trained,
    teacher_border_weights,
)
from napari_unet.training.loop import finetune
from napari_unet.training.schedule import with_iteration_budget


def test_mask_is_zero_on_strokes_and_near_contradicting_ones():
    teacher = torch.zeros(1, 2, 9, 9)
    teacher[:, 1] = 0.9  # the teacher says "class 2" everywhere, confidently
    teacher[:, 0] = 0.1
    labels = torch.zeros(1, 9, 9, dtype=torch.long)
    labels[0, 4, 4] = 1  # a stroke of class 1: contradicts the teacher
    labels[0, 0, 8] = 2  # a stroke that agrees
    mask = distillation_mask(teacher, labels, margin=2)
    assert mask[0, 4, 4] == 0 and mask[0, 0, 8] == 0  # painted pixels
    assert float(mask[0, 2:7, 2:7].abs().sum()) == 0  # within 2 of the contradiction
    assert torch.allclose(mask[0, 0, 0], torch.tensor(1.0))  # far away: kept
    assert torch.allclose(mask[0, 8, 8], torch.tensor(1.0))
    assert int((mask > 0).sum()) == 81 - 25 - 1


def test_mask_without_margin_only_excludes_painted_pixels():
    teacher = torch.full((1, 2, 4, 4), 0.5)
    labels = torch.zeros(1, 4, 4, dtype=torch.long)
    labels[0, 1, 1] = 1
    mask = distillation_mask(teacher, labels, margin=0)
    assert int((mask > 0).sum()) == 15 and mask[0, 1, 1] == 0


def test_loss_is_zero_for_the_teachers_own_logits_and_grows_away_from_them():
    logits = torch.randn(2, 3, 5, 5)
    teacher = torch.softmax(logits, dim=1)
    weights = torch.ones(2, 5, 5)
    assert float(distillation_loss(logits, teacher, weights)) < 1e-6
    assert float(distillation_loss(logits.flip(1), teacher, weights)) > 0.01
    assert float(distillation_loss(logits.flip(1), teacher, torch.zeros(2, 5, 5))) == 0.0


def test_teacher_is_a_frozen_copy():
    model = new_model(ModelConfig(base_features=4, depth=1), seed=0)
    teacher = Teacher(model)
    inputs = torch.rand(1, 1, 44, 44)
    before = teacher.probabilities(inputs)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(1.0)
    assert torch.equal(before, teacher.probabilities(inputs))
    assert not any(p.requires_grad for p in teacher.model.parameters())
    assert torch.allclose(before.sum(1), torch.ones(1))


def _trained_model():
    return as_trained(new_model(ModelConfig(base_features=4, depth=1), seed=0))


def _image_and_strokes(size=64):
    rng = np.random.default_rng(0)
    image = rng.random((size, size)).astype(np.float32)
    strokes = np.zeros((size, size), np.uint8)
    strokes[10, 5:20], strokes[40, 5:20] = 1, 2
    return image, strokes


def test_only_trained_models_are_distilled_and_the_history_says_so():
    assert not has_been_trained(new_model(ModelConfig(base_features=4, depth=1)))
    image, strokes = _image_and_strokes()
    config = TrainConfig(seconds=None, iterations=2, batch_size=2)
    for model, expected in ((new_model(ModelConfig(base_features=4, depth=1)), False),
                            (_trained_model(), True)):  # fmt: skip
        for _ in finetune(model, [image], [strokes], config):
            pass
        assert model.metadata["training_history"][-1]["distilled"] is expected
    model = _trained_model()
    for _ in finetune(model, [image], [strokes], config.replace(distillation=0.0)):
        pass
    assert model.metadata["training_history"][-1]["distilled"] is False


def test_distillation_keeps_predictions_away_from_the_strokes_closer_to_the_start():
    image, strokes = _image_and_strokes()
    config = TrainConfig(seconds=None, iterations=30, batch_size=2, learning_rate=1e-2)
    changes = {}
    for weight in (0.0, 10.0):
        model = _trained_model()
        inputs = torch.from_numpy(np.pad(image, model.halo, mode="reflect"))[None, None]
        with torch.no_grad():
            start = torch.softmax(model(inputs), 1)
        for _ in finetune(model, [image], [strokes], config.replace(distillation=weight)):
            pass
        with torch.no_grad():
            after = torch.softmax(model(inputs), 1)
        changes[weight] = float((after - start).abs()[..., 50:, :].mean())
    assert changes[10.0] < 0.5 * changes[0.0]


def test_finetune_leaves_torch_global_random_state_alone():
    image, strokes = _image_and_strokes()
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    config = TrainConfig(seconds=None, iterations=1)
    for _ in finetune(_trained_model(), [image], [strokes], config):
        pass
    assert torch.equal(torch.rand(3), expected)


def test_border_weights_peak_in_the_teachers_gap_between_touching_objects():
    probabilities = torch.zeros(2, 3, 20, 30)
    probabilities[:, 0] = 1  # background everywhere
    top = torch.zeros(20, 30, dtype=torch.long)
    top[5:15, 3:13] = 1
    top[5:15, 14:24] = 1  # two objects of class 1, one pixel apart (column 13)
    probabilities[0] = torch.nn.functional.one_hot(top, 3).permute(2, 0, 1).float()
    weights = teacher_border_weights(probabilities, w0=10.0, sigma=5.0)
    assert weights.shape == (2, 20, 30) and weights.dtype == torch.float32
    # d1 = d2 = 1 in the gap: 1 + 10 exp(-4 / 50)
    assert abs(float(weights[0, 10, 13]) - (1 + 10 * np.exp(-4 / 50))) < 1e-5
    assert float(weights[0, 10, 5]) == 1.0  # inside an object: no border term
    assert float(weights[0, 10, 1]) < float(weights[0, 10, 13])
    assert torch.equal(weights[1], torch.ones(20, 30))  # one class only: no objects
    assert torch.equal(teacher_border_weights(probabilities, w0=0.0), torch.ones(2, 20, 30))


def test_teacher_border_weights_weigh_the_gap_its_prediction_closes():
    from napari_unet.training.distillation import teacher_border_weights

    # two 40 x 40 cells; their membrane (p = 0.9) has a 6-row hole at p = 0.4
    boundary = np.full((46, 86), 0.05, np.float32)
    boundary[:3], boundary[-3:], boundary[:, :3], boundary[:, -3:] = 0.95, 0.95, 0.95, 0.95
    boundary[:, 42:45] = 0.9
    boundary[20:26, 42:45] = 0.4
    probabilities = torch.from_numpy(np.stack([boundary, 1 - boundary])[None])
    weights = teacher_border_weights(probabilities, w0=30.0)[0].numpy()
    assert weights.shape == boundary.shape
    gap = weights[20:26, 42:45]
    # the closing line through the gap is background between two objects: weight near 1 + w0
    assert gap.max() > 20
    # far from any two objects the weight stays 1 (cell interiors are not background)
    assert weights[20, 20] == 1.0
    # a teacher that leaves its gaps open (a new model with thick boundaries) has one
    # object there, so no pixel is background between two of its objects
    open_gaps = teacher_border_weights(probabilities, w0=30.0, close_gaps=False)[0].numpy()
    assert np.all(open_gaps == 1.0)


def test_a_model_trained_for_a_few_iterations_keeps_training_as_a_new_one(monkeypatch):
    """A first run cut short (a busy machine, a Stop) leaves a model still learning when it
    holds fewer than LEARNT_ITERATIONS, or fewer than TRAINED_ITERATIONS and ended at
    chance: the next run trains it as a new model, not as a fine-tune towards itself."""
    image, strokes = _image_and_strokes()
    config = TrainConfig(seconds=None, iterations=2, batch_size=2)
    short, enough = TRAINED_ITERATIONS - 1, TRAINED_ITERATIONS
    guess = {"kept_smoothed_loss": 0.69}  # a run that ended at chance (two classes)
    # the strokes' estimate: a threshold of 0.77, with half the pixels objects (no move)
    estimate = (np.array([0.2, 0.77]), 0.0)
    monkeypatch.setattr(calibration, "stroke_share_estimate", lambda *args: estimate)
    monkeypatch.setattr(calibration, "loss_at_chance", lambda model: False)  # 2 iterations
    for earlier, trained in (
        ([{"iterations": 42}], False),
        ([{"iterations": LEARNT_ITERATIONS - 1}], False),  # too few, even having learnt
        ([{"iterations": short, **guess}], False),  # at chance: trains on as a new one
        ([{"iterations": LEARNT_ITERATIONS, "kept_smoothed_loss": 0.4}], True),  # learnt
        ([{"iterations": enough, **guess}], True),
        ([{"iterations": 40}, {"iterations": 260}], True),
    ):
        model = new_model(ModelConfig(base_features=4, depth=1), seed=0)
        model.metadata["training_history"] = [dict(run) for run in earlier]
        model.metadata["background_threshold"] = 0.9  # its last estimate, or a carried one
        assert has_been_trained(model) is trained
        budget = with_iteration_budget(TrainConfig(seconds=60.0), model)
        assert budget.iterations == (FINETUNE_ITERATIONS if trained else None)
        for _ in finetune(model, [image], [strokes], config):
            pass
        run = model.metadata["training_history"][-1]
        assert run["distilled"] is trained
        rate = FINETUNE_LEARNING_RATE if trained else SCRATCH_LEARNING_RATE
        assert run["train_config"]["learning_rate"] == rate
        assert run["weight_config"]["class_balance"] is (not trained)
        if not trained:  # estimated from the strokes again, not carried from itself
            assert model.metadata["background_threshold"] == 0.77
            assert model.metadata["close_gaps"] is False


def test_a_history_without_iteration_counts_counts_as_trained():
    """Imported histories may not record iterations: such a model is trained, as before."""
    model = new_model(ModelConfig(base_features=4, depth=1), seed=0)
    for history, trained in (
        ([{"date": "2026-01-01"}], True),  # no count: enough
        ([{"iterations": None}, {"iterations": 10}], True),
        ([{"iterations": 10}, {"iterations": 20}], False),
        ([{"iterations": 100}, {"iterations": TRAINED_ITERATIONS - 100}], True),
        ([], False),
    ):
        model.metadata["training_history"] = history
        assert has_been_trained(model) is trained, history

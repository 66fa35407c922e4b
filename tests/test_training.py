import copy
import threading

import numpy as np
import pytest
import torch

from helpers import FAST, as_trained, random_discs, tiny_model
from napari_unet import TrainConfig, load_model, predict, save_model
from napari_unet.config import AugmentConfig, WeightConfig
from napari_unet.training import run_state
from napari_unet.training.loop import TrainingError, finetune, train, weighted_loss
from napari_unet.training.sampling import AnnotationError, PatchSampler, prepare_training_data
from napari_unet.training.weights import trained_weight_config


def _disc_iou(model, image, truth):
    predicted, true = predict(image, model).argmax(0) == 1, truth == 2
    return float((predicted & true).sum() / (predicted | true).sum())


def test_loss_falls_and_model_learns():
    image, truth, scribbles = random_discs()
    model = tiny_model()
    initial_iou = _disc_iou(model, image, truth)
    config = TrainConfig(seconds=None, iterations=60, batch_size=4, learning_rate=3e-3)
    progress = list(finetune(model, [image], [scribbles], config))
    losses = [loss for _, loss in progress[-1].history]
    assert len(losses) == 60
    assert np.mean(losses[-10:]) < 0.7 * np.mean(losses[:10])
    assert not model.training
    # the returned model holds the trained weights, not the initial ones
    assert _disc_iou(model, image, truth) > max(0.6, initial_iou + 0.3)
    entry = model.metadata["training_history"][-1]
    assert entry["iterations"] == 60
    assert 50 <= entry["kept_weights_iteration"] < 60
    assert entry["annotated_pixels"] == {
        "1": int((scribbles == 1).sum()),
        "2": int((scribbles == 2).sum()),
    }


def test_unlabelled_pixels_do_not_influence_the_gradient():
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 8, 8, requires_grad=True)
    labels = torch.randint(0, 4, (2, 8, 8))
    weights = torch.rand(2, 8, 8) * (labels > 0)
    weights[labels == 0] = 5.0  # even a non-zero weight at an unlabelled pixel must not count
    loss = weighted_loss(logits, labels, weights)
    loss.backward()
    unlabelled = (labels == 0).unsqueeze(1).expand_as(logits)
    assert logits.grad[unlabelled].abs().max() == 0
    assert logits.grad[~unlabelled].abs().max() > 0
    changed = logits.detach().clone()
    changed[unlabelled] = 100.0
    assert torch.allclose(weighted_loss(changed, labels, weights), loss)


@pytest.fixture
def offered_states(monkeypatch):
    """Every copy ``_BestWeights.offer`` keeps, as (smoothed loss, state dict)."""
    kept = []
    real_offer = run_state.BestWeights.offer

    def offer(self, smoothed_loss, iteration):
        real_offer(self, smoothed_loss, iteration)
        if self.iteration == iteration and self.loss == smoothed_loss:
            kept.append((smoothed_loss, copy.deepcopy(self.state)))

    monkeypatch.setattr(run_state.BestWeights, "offer", offer)
    return kept


def _assert_holds(model, state):
    for name, value in model.state_dict().items():
        torch.testing.assert_close(value, state[name], rtol=0, atol=0)


def test_stop_flag_ends_within_one_iteration_with_best_weights(offered_states):
    image, _, scribbles = random_discs()
    model = tiny_model()
    initial = copy.deepcopy(model.state_dict())
    stop = threading.Event()
    iterations = []
    steps = finetune(model, [image], [scribbles], TrainConfig(seconds=60, batch_size=2), stop=stop)
    for step in steps:
        iterations.append(step.iteration)
        if step.iteration == 6:
            stop.set()
    assert iterations == [1, 2, 3, 4, 5, 6]
    assert len(offered_states) == 6  # before the loss settles every offer is taken
    latest_loss, latest_state = offered_states[-1]  # the weights before the 6th update
    _assert_holds(model, latest_state)
    assert model.metadata["training_history"][-1]["kept_smoothed_loss"] == round(latest_loss, 5)
    assert model.metadata["training_history"][-1]["kept_weights_iteration"] == 5
    assert any(not torch.equal(initial[k], v) for k, v in model.state_dict().items())


def test_closing_the_generator_restores_best_weights(offered_states):
    image, _, scribbles = random_discs()
    model = tiny_model()
    steps = finetune(model, [image], [scribbles], TrainConfig(seconds=60, batch_size=2))
    for step in steps:
        if step.iteration == 5:
            break
    steps.close()
    assert model.metadata["training_history"][-1]["iterations"] == 5
    assert not model.training
    _assert_holds(model, offered_states[-1][1])


def test_non_finite_loss_restores_last_good_weights(monkeypatch, offered_states):
    image, _, scribbles = random_discs()
    model = tiny_model()
    calls = {"n": 0}
    real_loss = weighted_loss

    def exploding(logits, labels, weights):
        calls["n"] += 1
        loss = real_loss(logits, labels, weights)
        return loss * float("nan") if calls["n"] == 4 else loss

    monkeypatch.setattr("napari_unet.training.loop.weighted_loss", exploding)
    with pytest.raises(TrainingError, match="the loss became nan at iteration 4; the best"):
        for _ in finetune(model, [image], [scribbles], TrainConfig(seconds=None, iterations=10)):
            pass
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert model.metadata["training_history"][-1]["iterations"] == 3
    _assert_holds(model, offered_states[-1][1])  # the weights of the 3rd batch, before update 3


def _scaled_losses(monkeypatch, scale_of_batch):
    """Make batch n's loss ``scale_of_batch(n)`` times the real one (counting from 1)."""
    calls = {"n": 0}
    real_loss = weighted_loss

    def scaled(logits, labels, weights):
        calls["n"] += 1
        return real_loss(logits, labels, weights) * scale_of_batch(calls["n"])

    monkeypatch.setattr("napari_unet.training.loop.weighted_loss", scaled)


def test_an_easy_first_batch_cannot_throw_the_run_away(monkeypatch):
    """A pretrained model's first batch can beat every later smoothed loss; it must not win."""
    image, _, scribbles = random_discs()
    model = tiny_model()
    _scaled_losses(monkeypatch, lambda n: 1e-3 if n == 1 else 1.0)
    config = TrainConfig(seconds=None, iterations=70, batch_size=2, learning_rate=3e-3)
    train(model, [image], [scribbles], config)
    entry = model.metadata["training_history"][-1]
    assert run_state.SETTLING_BATCHES == 50
    assert entry["kept_weights_iteration"] >= 49  # not 0, the starting weights


def test_once_settled_the_lowest_smoothed_loss_is_kept(monkeypatch):
    image, _, scribbles = random_discs()
    model = tiny_model()
    _scaled_losses(monkeypatch, lambda n: 100.0 if n > 55 else 1.0)  # worse from batch 56 on
    config = TrainConfig(seconds=None, iterations=70, batch_size=2, learning_rate=3e-3)
    train(model, [image], [scribbles], config)
    assert 49 <= model.metadata["training_history"][-1]["kept_weights_iteration"] <= 54


def test_diverging_update_restores_weights_from_before_it():
    """A step that blows the weights up must not be what "the best weights" restores."""
    image, _, scribbles = random_discs()
    model = tiny_model()
    initial = copy.deepcopy(model.state_dict())
    config = TrainConfig(seconds=None, iterations=10, batch_size=2, learning_rate=1e30)
    with pytest.raises(TrainingError, match="best weights so far"):
        for _ in finetune(model, [image], [scribbles], config):
            pass
    _assert_holds(model, initial)  # the only weights whose loss was finite


def test_non_finite_gradient_stops_before_the_update(offered_states):
    image, _, scribbles = random_discs()
    model = tiny_model()
    backward_calls = {"n": 0}

    def poison(gradient):
        backward_calls["n"] += 1
        return gradient * float("nan") if backward_calls["n"] == 3 else gradient

    model.head.weight.register_hook(poison)
    with pytest.raises(TrainingError, match="a gradient became non-finite at iteration 3"):
        for _ in finetune(model, [image], [scribbles], FAST.replace(iterations=10)):
            pass
    assert all(torch.isfinite(p).all() for p in model.parameters())
    _assert_holds(model, offered_states[-1][1])  # those of batch 3, never updated


@pytest.mark.parametrize(
    ("annotation", "message"),
    [
        (np.zeros((96, 96), np.uint8), "empty"),
        (np.ones((96, 96), np.uint8), "only label 1"),
        (np.ones((50, 96), np.uint8), "shape"),
        (np.full((96, 96), 3, np.uint8), "2 classes"),
    ],
)
def test_bad_annotations_say_what_to_do(annotation, message):
    image, _, _ = random_discs()
    with pytest.raises(AnnotationError, match=message):
        next(finetune(tiny_model(), [image], [annotation], FAST))


def test_strokes_of_one_class_are_refused_in_the_model_s_class_names():
    image, _, _ = random_discs()
    model = as_trained(tiny_model())  # a trained model too: alone, one class made it worse
    model.metadata["class_names"] = ["membrane", "cell"]
    with pytest.raises(AnnotationError) as refusal:
        next(finetune(model, [image], [np.ones((96, 96), np.uint8)], FAST))
    said = str(refusal.value)
    assert said.startswith("only label 1 (membrane) is painted: paint at least one membrane")
    assert "one cell (label 2) stroke" in said and "beside a stroke of one" in said


def test_several_images_with_annotations_on_a_subset():
    image_a, _, scribbles_a = random_discs(0)
    image_b, _, _ = random_discs(1)
    model = tiny_model()
    train(model, [image_a, image_b], [scribbles_a, np.zeros_like(scribbles_a)], FAST)
    assert model.metadata["training_history"][-1]["images"] == [[1, 96, 96]]


def test_patches_are_centred_on_labelled_pixels():
    image, _, _ = random_discs()
    annotation = np.zeros((96, 96), np.uint8)
    annotation[10, 10], annotation[80, 70] = 1, 2
    model = tiny_model()
    data = prepare_training_data([image], [annotation], model)
    # compact storage: 1 byte per label, 4 per coordinate (dense annotations of large images)
    assert data[0].labels.dtype == np.uint8
    assert [coordinates.tolist() for coordinates in data[0].labelled] == [[[10, 10]], [[80, 70]]]
    assert all(coordinates.dtype == np.int32 for coordinates in data[0].labelled)
    output = model.output_size(60)
    sampler = PatchSampler(
        data,
        60,
        output,
        AugmentConfig(elastic=False, flips=False, rot90=False),
        np.random.default_rng(0),
    )
    for _ in range(10):
        patch_image, labels, weights = sampler.patch()
        assert patch_image.shape == (1, 60, 60) and labels.shape == (output, output)
        assert (labels > 0).sum() == 1 and weights.sum() > 0


def test_parent_and_history_survive_a_save(tmp_path):
    image, _, scribbles = random_discs()
    path = save_model(tiny_model(), tmp_path / "parent.safetensors")
    model = load_model(path)
    train(model, [image], [scribbles], FAST)
    child = load_model(save_model(model, tmp_path / "child.safetensors"))
    assert child.metadata["parent"] == str(path)
    assert len(child.metadata["training_history"]) == 1


def test_the_last_runs_weight_settings_are_read_back_from_the_checkpoint(tmp_path):
    image, _, scribbles = random_discs()
    model = tiny_model()
    assert trained_weight_config(model.metadata) == WeightConfig()  # never trained: the paper's
    first, second = WeightConfig(w0=3.0, sigma=2.0), WeightConfig(w0=7.0, class_balance=False)
    train(model, [image], [scribbles], FAST, weights=first)
    train(model, [image], [scribbles], FAST, weights=second)
    reloaded = load_model(save_model(model, tmp_path / "tuned.safetensors"))
    assert trained_weight_config(reloaded.metadata) == second


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [("linear", [1.0, 0.75, 0.5, 0.25]), ("cosine", [1.0, 0.853553, 0.5, 0.146447])],
)
def test_learning_rate_follows_the_schedule_over_the_iteration_budget(
    schedule, expected, monkeypatch
):
    used = []  # the rate each optimizer step actually applied
    original_step = torch.optim.Adam.step

    def spying_step(self, *args, **kwargs):
        used.append(self.param_groups[0]["lr"])
        return original_step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", spying_step)
    image, _, scribbles = random_discs()
    config = FAST.replace(learning_rate=2e-3, lr_schedule=schedule)
    rates = [step.learning_rate for step in finetune(tiny_model(), [image], [scribbles], config)]
    np.testing.assert_allclose(used, 2e-3 * np.array(expected), rtol=1e-5)
    assert rates == used


def test_constant_schedule_keeps_the_learning_rate():
    image, _, scribbles = random_discs()
    config = FAST.replace(learning_rate=2e-3, lr_schedule="constant")
    rates = [step.learning_rate for step in finetune(tiny_model(), [image], [scribbles], config)]
    assert rates == [2e-3] * 4


@pytest.mark.parametrize("options", [{"lr_schedule": "step"}, {"bn_recalibration": -1}])
def test_bad_schedule_options_are_refused(options):
    with pytest.raises(ValueError, match=next(iter(options))):
        TrainConfig(**options)


def test_smoothed_loss_is_the_bias_corrected_moving_average():
    image, _, scribbles = random_discs()
    steps = list(finetune(tiny_model(), [image], [scribbles], FAST.replace(iterations=6)))
    losses = np.array([loss for _, loss in steps[-1].history])
    beta = run_state.LOSS_SMOOTHING
    weights = (1 - beta) * beta ** np.arange(len(losses))[::-1]
    expected = (weights * losses).sum() / (1 - beta ** len(losses))
    assert steps[0].smoothed_loss == pytest.approx(losses[0])
    assert steps[-1].smoothed_loss == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize(
    "change",
    [
        {"batch_size": 0},
        {"iterations": 0},
        {"seconds": -1.0},
        {"learning_rate": 0.0},
        {"learning_rate": float("nan")},
        {"patch_size": 0},
    ],
)
def test_train_config_refuses_non_positive_options(change):
    (name,) = change
    with pytest.raises(ValueError, match=f"{name} must be positive"):
        TrainConfig(**change)


def test_report_every_must_be_positive():
    image, _, scribbles = random_discs()
    with pytest.raises(ValueError, match="report_every"):
        next(finetune(tiny_model(), [image], [scribbles], FAST, report_every=0))


def test_cpu_training_runs_channels_last_and_gives_back_the_default_layout():
    model = tiny_model()
    image, _, scribbles = random_discs()
    layouts = []

    def preview():  # called during training, between iterations
        weight = model.down[0][2].weight  # the second 3x3 convolution: 4 -> 4 feature maps
        layouts.append(weight.is_contiguous(memory_format=torch.channels_last))

    config = TrainConfig(seconds=None, iterations=4, device="cpu", seed=0)
    for _ in finetune(model, [image], [scribbles], config, preview=preview, preview_every=0):
        pass
    assert layouts and all(layouts)
    assert all(p.is_contiguous() for p in model.parameters())

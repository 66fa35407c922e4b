"""The live preview during fine-tuning: attached to the progress, one pass, skipped when
the user stops during it."""

import copy
import threading

import numpy as np

from helpers import FAST, random_discs, tiny_model
from napari_unet import TrainConfig, predict
from napari_unet.training import loop
from napari_unet.training.loop import finetune


def test_preview_is_attached_and_matches_predict(monkeypatch):
    image, _, scribbles = random_discs()
    model = tiny_model()
    weights_seen = []  # the model's weights at each preview
    real_preview = loop._predict_preview

    def recording_preview(previewed, *args, **kwargs):
        weights_seen.append(copy.deepcopy(previewed.state_dict()))
        return real_preview(previewed, *args, **kwargs)

    monkeypatch.setattr(loop, "_predict_preview", recording_preview)
    config = TrainConfig(seconds=None, iterations=2, batch_size=2)
    steps = list(finetune(model, [image], [scribbles], config, preview=image, preview_every=0))
    assert [step.preview is not None for step in steps] == [True, True]
    assert len(weights_seen) == 2
    for step, weights in zip(steps, weights_seen):
        assert step.preview.shape == (2, 96, 96)
        at_that_step = tiny_model()
        at_that_step.load_state_dict(weights)
        expected = predict(image, at_that_step, device="cpu", test_time_augmentation=False)
        np.testing.assert_allclose(step.preview, expected, rtol=0, atol=1e-5)
    assert np.abs(steps[0].preview - steps[1].preview).max() > 1e-4  # the model moved


def test_the_preview_is_one_pass_even_for_a_model_that_asks_for_augmentation():
    from napari_unet.training.loop import _predict_preview

    image = random_discs()[0]
    model = tiny_model()
    model.metadata["test_time_augmentation"] = True
    preview = _predict_preview(model, image, "cpu", None)
    assert model.training  # given back in training mode
    np.testing.assert_array_equal(preview, predict(image, model, test_time_augmentation=False))
    assert np.abs(preview - predict(image, model)).max() > 1e-4  # the model's own: augmented


def test_stop_during_the_preview_skips_it_and_ends_training():
    image, _, scribbles = random_discs()
    model = tiny_model()
    stop = threading.Event()

    def preview_that_presses_stop():
        stop.set()  # the user presses stop while the preview is being computed
        return image

    steps = finetune(
        model, [image], [scribbles], FAST.replace(iterations=10), stop=stop,
        preview=preview_that_presses_stop, preview_every=0,
    )  # fmt: skip
    reports = list(steps)
    assert [(step.iteration, step.preview) for step in reports] == [(1, None)]

"""Test-time augmentation: the 8 rotations and flips (or the 4 rotations) undone in the
right place, averaged, asked for by a checkpoint, and cancellable between passes."""

import numpy as np
import pytest
import torch

from helpers import seeded_unet
from napari_unet import load_model, predict, save_model
from napari_unet.core.inference import Cancelled


def _pointwise_model():
    """A same-padding depth-0 net whose 3x3 kernels only use their centre tap."""
    model = seeded_unet(depth=0, padding="same")
    with torch.no_grad():
        for conv in (m for m in model.modules() if isinstance(m, torch.nn.Conv2d)):
            if conv.kernel_size == (3, 3):
                centre = conv.weight[:, :, 1, 1].clone()
                conv.weight.zero_()
                conv.weight[:, :, 1, 1] = centre
    return model


def test_test_time_augmentation_of_a_pointwise_model_changes_nothing():
    # Each of the 8 rotations/flips must be undone at the right place: any
    # misalignment would move the (position-dependent) probabilities.
    image = np.random.default_rng(5).normal(size=(45, 70)).astype(np.float32)
    model = _pointwise_model()
    plain = predict(image, model, tile_size=32)
    augmented = predict(image, model, tile_size=32, test_time_augmentation=True)
    assert np.abs(plain[0] - 0.5).max() > 0.01  # not a constant map
    np.testing.assert_allclose(augmented, plain, atol=1e-6)


def test_a_model_that_asks_for_test_time_augmentation_gets_it_by_default(tmp_path):
    image = np.random.default_rng(7).normal(size=(45, 70)).astype(np.float32)
    model = seeded_unet(depth=2, padding="valid")
    model.metadata["test_time_augmentation"] = True
    reloaded = load_model(save_model(model, tmp_path / "tta.safetensors"))
    assert reloaded.info.test_time_augmentation is True
    augmented = predict(image, model, test_time_augmentation=True)
    plain = predict(image, model, test_time_augmentation=False)
    assert np.abs(augmented - plain).max() > 1e-4
    np.testing.assert_array_equal(predict(image, reloaded), augmented)
    model.metadata["test_time_augmentation"] = "yes"  # not a bool: kept as read, not used
    assert model.info.test_time_augmentation is False
    assert model.info.extra["test_time_augmentation"] == "yes"
    np.testing.assert_array_equal(predict(image, model), plain)


def _mean_over_symmetries(image, model, flips):
    """The mean of plain predictions of the turned (and flipped) images, turned back."""
    total, count = 0.0, 0
    for turns in range(4):
        for flip in flips:
            turned = np.rot90(image, turns)
            turned = turned[:, ::-1] if flip else turned
            probabilities = predict(np.ascontiguousarray(turned), model)
            probabilities = probabilities[:, :, ::-1] if flip else probabilities
            total, count = total + np.rot90(probabilities, -turns, axes=(1, 2)), count + 1
    return total / count


@pytest.mark.parametrize(
    ("shape", "padding"), [((64, 64), "same"), ((45, 70), "valid"), ((64, 48), "same")]
)
def test_test_time_augmentation_averages_the_eight_symmetries(shape, padding):
    image = np.random.default_rng(6).normal(size=shape).astype(np.float32)
    model = seeded_unet(depth=2, padding=padding)
    augmented = predict(image, model, test_time_augmentation=True)
    expected = _mean_over_symmetries(image, model, flips=(False, True))
    plain = predict(image, model)
    assert np.abs(plain - expected).max() > 1e-3  # the symmetries do differ
    # A valid network pads a turned non-square image to valid sizes on other sides, so
    # its border context differs slightly (< 1e-3); a misplaced inverse moves whole maps.
    tolerance = 1e-5 if padding == "same" else 1e-3
    np.testing.assert_allclose(augmented, expected, atol=tolerance)


def test_stop_is_checked_between_the_eight_symmetries():
    """One tile, one batch: only the check between transforms can stop it."""
    calls = {"n": 0}

    def stop_after_two_checks():
        calls["n"] += 1
        return calls["n"] > 2  # 1: before the batch, 2: after the first symmetry

    with pytest.raises(Cancelled):
        predict(np.zeros((40, 40), np.float32), seeded_unet(depth=2), test_time_augmentation=True,
                stop=stop_after_two_checks)  # fmt: skip
    assert calls["n"] == 3


@pytest.mark.parametrize(("shape", "padding"), [((64, 64), "same"), ((45, 70), "valid")])
def test_a_model_that_asks_for_the_four_rotations_averages_those(shape, padding, tmp_path):
    image = np.random.default_rng(8).normal(size=shape).astype(np.float32)
    model = seeded_unet(depth=2, padding=padding)
    model.metadata["test_time_augmentation"] = True
    model.metadata["test_time_transforms"] = "rotations"
    reloaded = load_model(save_model(model, tmp_path / "rotations.safetensors"))
    assert reloaded.info.test_time_transforms == "rotations"
    rotated = predict(image, reloaded)  # the model's own: on, 4 rotations
    expected = _mean_over_symmetries(image, model, flips=(False,))
    all_eight = _mean_over_symmetries(image, model, flips=(False, True))
    assert np.abs(all_eight - expected).max() > 1e-4  # the flips do matter
    tolerance = 1e-5 if padding == "same" else 1e-3
    np.testing.assert_allclose(rotated, expected, atol=tolerance)
    # the set applies to a user's "on" as well; "off" is one pass
    np.testing.assert_array_equal(predict(image, reloaded, test_time_augmentation=True), rotated)
    np.testing.assert_array_equal(
        predict(image, reloaded, test_time_augmentation=False), predict(image, _plain(model))
    )


def _plain(model):
    model.metadata.pop("test_time_augmentation", None)
    model.metadata.pop("test_time_transforms", None)
    return model


def test_an_unknown_transform_set_is_kept_as_read_and_all_eight_are_used(tmp_path):
    image = np.random.default_rng(9).normal(size=(40, 40)).astype(np.float32)
    model = seeded_unet(depth=2, padding="same")
    model.metadata["test_time_augmentation"] = True
    model.metadata["test_time_transforms"] = "flips"
    reloaded = load_model(save_model(model, tmp_path / "unknown.safetensors"))
    assert reloaded.info.test_time_transforms == "dihedral"
    assert reloaded.metadata["test_time_transforms"] == "flips"  # written back as read
    expected = _mean_over_symmetries(image, model, flips=(False, True))
    np.testing.assert_allclose(predict(image, reloaded), expected, atol=1e-5)


@pytest.mark.parametrize(
    ("transforms", "said"), [("rotations", "4 rotations"), (None, "8 rotations and flips")]
)
def test_the_model_panel_says_which_transforms_predict_averages(transforms, said):
    from napari_unet._widgets._model import describe_model

    model = seeded_unet(depth=2)
    assert "test-time augmentation" not in describe_model(model, "plain")
    model.metadata["test_time_augmentation"] = True
    if transforms is not None:
        model.metadata["test_time_transforms"] = transforms
    summary = describe_model(model, "m")
    assert f"Predict averages its {said} (test-time augmentation: ticked in Predict" in summary


def test_an_empty_transform_set_is_refused():
    from napari_unet.core.engine import tile_probabilities

    with pytest.raises(ValueError, match="at least one transform"):
        tile_probabilities(seeded_unet(depth=2), torch.zeros(1, 1, 40, 40), 1, ())

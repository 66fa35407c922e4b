"""Predict again after changing only the post-processing: the last run's probabilities
are used again, and only what they came from being unchanged lets them be."""

from __future__ import annotations

import copy
from dataclasses import replace

import dask.array as dask_array
import numpy as np
import pytest
import torch

from helpers import run, tiny_model
from napari_unet._widgets import _predict_job, model_state
from napari_unet._widgets._memory import POSTPROCESS_BYTES, needed_bytes, output_bytes
from napari_unet._widgets._predict_reuse import model_fingerprint
from napari_unet._widgets._predict_text import REUSED_WORDS
from napari_unet.core.checkpoint import load_model
from napari_unet.core.devices import resolve_device
from napari_unet.core.inference import predict as predict_probabilities_of

pytestmark = pytest.mark.gui


@pytest.fixture
def network_runs(monkeypatch):
    """The images the Predict job has run the network on, in order."""
    images = []
    original = _predict_job.iter_predict

    def counting(image, *args, **kwargs):
        images.append(image)
        return original(image, *args, **kwargs)

    monkeypatch.setattr(_predict_job, "iter_predict", counting)
    return images


def predict_probabilities(image, model, predict):
    """The foreground probabilities a fresh run of the Predict section gives."""
    tile_size = predict.tile_size.value or None
    return predict_probabilities_of(image, model, tile_size=tile_size, device="cpu")[1]


def outputs(viewer):
    return {
        kind: np.array(viewer.layers[f"discs {kind}"].data)
        for kind in ("mask", "instances", "probabilities", "weight map")
    }


def test_a_post_processing_change_reuses_the_probabilities(qtbot, dock, network_runs):
    viewer, widget = dock
    widget.model.use_model(load_model("nuclei"), "nuclei")  # a model that finds the discs
    predict = widget.predict
    run(qtbot, predict, predict.run_prediction)
    assert len(network_runs) == 1 and REUSED_WORDS not in predict.status.text()
    smallest = np.bincount(viewer.layers["discs instances"].data.ravel())[1:]
    assert smallest[smallest > 0].min() < 40  # there are instances under 40 px to drop
    predict.min_size.value = 40
    predict.instance_method.value = "watershed"
    predict.fill_holes.value = not predict.fill_holes.value
    run(qtbot, predict, predict.run_prediction)
    assert len(network_runs) == 1  # the network did not run again
    assert REUSED_WORDS in predict.status.text()
    reused = outputs(viewer)
    predict.last_probabilities.forget()  # the same settings, the network run again
    run(qtbot, predict, predict.run_prediction)
    assert len(network_runs) == 2 and REUSED_WORDS not in predict.status.text()
    for kind, expected in outputs(viewer).items():
        np.testing.assert_array_equal(reused[kind], expected, err_msg=kind)
    sizes = np.bincount(reused["instances"].ravel())[1:]
    assert sizes[sizes > 0].min() >= 40  # the new smallest instance was applied


@pytest.mark.parametrize(
    "change",
    ["test-time augmentation", "tile size", "new data", "weights", "another model"],
)
def test_what_the_probabilities_come_from_changed_runs_the_network(
    qtbot, dock, network_runs, change
):
    viewer, widget = dock
    predict, state = widget.predict, model_state(viewer)
    run(qtbot, predict, predict.run_prediction)
    if change == "test-time augmentation":
        predict.test_time_augmentation.value = True
    elif change == "tile size":
        sizes = [size for size in predict.tile_size.choices if size != predict.tile_size.value]
        predict.tile_size.value = sizes[0]
    elif change == "new data":
        viewer.layers["discs"].data = viewer.layers["discs"].data[::-1].copy()
    elif change == "weights":  # as a fine-tune changes the model in place
        with torch.no_grad():
            next(state.model.parameters()).add_(0.01)
    else:
        state.set_model(tiny_model(seed=1), "another")
    run(qtbot, predict, predict.run_prediction)
    assert len(network_runs) == 2
    assert REUSED_WORDS not in predict.status.text()


def test_removing_the_probabilities_layer_lets_them_go(qtbot, dock, network_runs):
    viewer, widget = dock
    predict = widget.predict
    run(qtbot, predict, predict.run_prediction)
    assert predict.last_probabilities.kept
    viewer.layers.remove("discs mask")  # another output: kept
    assert predict.last_probabilities.kept
    viewer.layers.remove("discs probabilities")
    assert not predict.last_probabilities.kept
    run(qtbot, predict, predict.run_prediction)
    assert len(network_runs) == 2


def test_a_run_with_other_settings_lets_the_last_probabilities_go(qtbot, dock, network_runs):
    """Both are never held at once: the new run's memory check counts on that."""
    _viewer, widget = dock
    predict = widget.predict
    run(qtbot, predict, predict.run_prediction)
    predict.test_time_augmentation.value = True
    with qtbot.waitSignal(predict.finished, timeout=60_000):
        assert predict.run_prediction() is not None
        assert not predict.last_probabilities.kept
        predict.cancel()
    predict.test_time_augmentation.value = False  # back to the first run's settings
    run(qtbot, predict, predict.run_prediction)
    assert len(network_runs) == 3 and REUSED_WORDS not in predict.status.text()


def test_an_image_edited_in_place_runs_the_network(qtbot, dock, network_runs):
    viewer, widget = dock
    predict, image = widget.predict, viewer.layers["discs"]
    run(qtbot, predict, predict.run_prediction)
    image.data[:] = image.data[::-1].copy()  # no new array: napari's data event stays quiet
    image.refresh()
    predict.min_size.value = 30
    run(qtbot, predict, predict.run_prediction)
    assert len(network_runs) == 2 and REUSED_WORDS not in predict.status.text()
    fresh = predict_probabilities(image.data, model_state(viewer).model, predict)
    np.testing.assert_allclose(viewer.layers["discs probabilities"].data, fresh, atol=1e-6)


def test_lazy_data_is_not_kept(qtbot, dock, network_runs):
    viewer, widget = dock
    predict, image = widget.predict, viewer.layers["discs"]
    image.data = dask_array.from_array(np.asarray(image.data), chunks=64)
    run(qtbot, predict, predict.run_prediction)
    assert not predict.last_probabilities.kept
    run(qtbot, predict, predict.run_prediction)
    assert len(network_runs) == 2


def test_auto_and_the_device_it_picks_are_the_same_run(qtbot, dock, network_runs):
    _viewer, widget = dock
    predict = widget.predict
    predict.device.value = str(resolve_device("auto"))
    run(qtbot, predict, predict.run_prediction)
    predict.device.value = "auto"
    run(qtbot, predict, predict.run_prediction)
    assert len(network_runs) == 1 and REUSED_WORDS in predict.status.text()


def test_post_processing_alone_needs_less_memory(qtbot, dock):
    _viewer, widget = dock
    predict = widget.predict
    run(qtbot, predict, predict.run_prediction)
    _image, request = predict._gather()
    assert request.known is not None
    network_run = needed_bytes(replace(request, known=None))
    pixels = 128 * 128
    expected = output_bytes(2, (128, 128), True, True) - 8 * pixels
    assert needed_bytes(request) == expected + pixels * POSTPROCESS_BYTES[True] < network_run


def test_model_fingerprint_follows_weights_and_metadata():
    model = tiny_model()
    twin = copy.deepcopy(model)
    assert model_fingerprint(model) == model_fingerprint(twin)
    with torch.no_grad():
        next(twin.parameters()).view(-1)[0] += 1e-6
    assert model_fingerprint(model) != model_fingerprint(twin)
    padded = tiny_model(padding="same")
    padded.load_state_dict(model.state_dict())
    assert model_fingerprint(padded) != model_fingerprint(model)  # the same weights
    retitled = copy.deepcopy(model)
    retitled.metadata["background_threshold"] = 0.7
    assert model_fingerprint(model) != model_fingerprint(retitled)
    assert model_fingerprint(tiny_model(seed=1)) != model_fingerprint(model)


def test_a_strided_image_is_digested_as_its_copy_is(monkeypatch):
    from napari_unet._widgets import _predict_reuse

    image = np.random.default_rng(0).random((40, 30), np.float32)
    strided = image.T  # a view, not C-contiguous
    monkeypatch.setattr(_predict_reuse, "DIGEST_BLOCK_BYTES", 100)  # blocks of a few rows
    assert _predict_reuse.data_digest(strided) == _predict_reuse.data_digest(strided.copy())
    changed = strided.copy()
    changed[-1, -1] += 1
    assert _predict_reuse.data_digest(changed) != _predict_reuse.data_digest(strided)
    assert _predict_reuse.data_digest(strided.astype(np.float64)) != (
        _predict_reuse.data_digest(strided)
    )


def test_edits_of_a_multiclass_probabilities_layer_do_not_reach_the_kept_ones(
    qtbot, dock, network_runs
):
    """With 3 classes the layer shows every class: the kept probabilities are a copy."""
    viewer, widget = dock
    predict = widget.predict
    widget.model.use_model(tiny_model(n_classes=3), "three")
    run(qtbot, predict, predict.run_prediction)
    layer = viewer.layers["discs probabilities"]
    fresh = np.array(layer.data)
    layer.data[:] = 0  # in place: no event
    layer.refresh()
    predict.min_size.value = 30
    run(qtbot, predict, predict.run_prediction)
    assert len(network_runs) == 1 and REUSED_WORDS in predict.status.text()
    np.testing.assert_array_equal(viewer.layers["discs probabilities"].data, fresh)

"""The Predict section's memory estimate (no viewer needed)."""

import pytest

from napari_unet._widgets import _memory
from napari_unet._widgets._layers import ImageGeometry
from napari_unet._widgets._memory import (
    available_memory,
    memory_refusal,
    output_bytes,
    working_bytes,
)
from napari_unet._widgets._predict_job import PredictionRequest
from napari_unet.checkpoint import new_model
from napari_unet.config import ModelConfig

MODEL = new_model(ModelConfig(base_features=4, depth=2), seed=0)


def _request(shape, tile_size=None, with_weights=True):
    geometry = ImageGeometry(shape=shape, channel_axis=None, rgb=False)
    return PredictionRequest(
        model=MODEL, data=None, geometry=geometry, tile_size=tile_size, device="cpu",
        with_weights=with_weights,
    )  # fmt: skip


def test_outputs_and_working_memory_by_hand():
    # probabilities 2 x 4 B, mask 1 B, instances 4 B, weights 4 B per pixel
    assert output_bytes(2, (3, 100, 200), with_weights=True) == 3 * 100 * 200 * 17
    assert output_bytes(3, (100, 200), with_weights=False) == 100 * 200 * 17
    assert output_bytes(3, (100, 200), False, with_uncertainty=True) == 100 * 200 * 21
    tiled = _request((3, 100, 200), tile_size=64)
    assert working_bytes(tiled) == 100 * 200 * 40 + 64 * 64 * 4 * 36 * 4
    whole = _request((100, 200), with_weights=False)
    halo = MODEL.halo
    assert working_bytes(whole) == 100 * 200 * 18 + (100 + 2 * halo) * (200 + 2 * halo) * 36 * 4


def test_advice_follows_what_would_fit(monkeypatch):
    request = _request((2000, 2000), with_weights=True)
    without = _request((2000, 2000), with_weights=False)
    heavy = output_bytes(2, (2000, 2000), True) + working_bytes(request)
    light = output_bytes(2, (2000, 2000), False) + working_bytes(without)
    monkeypatch.setattr(_memory, "available_memory", lambda: int(heavy / 0.8) + 1)
    assert memory_refusal(request, "big") == ""
    monkeypatch.setattr(_memory, "available_memory", lambda: int(light / 0.8) + 1)
    message = memory_refusal(request, "big")
    assert message.startswith("Predicting “big” needs about") and "untick the weight map" in message
    assert "choose a tile size" in message and "save a fine-tuned model" in message
    assert "untick" not in memory_refusal(without, "big")  # it is unticked already
    monkeypatch.setattr(_memory, "available_memory", lambda: 1000)
    assert "untick" not in memory_refusal(request, "big")  # it would not fit either way
    monkeypatch.setattr(_memory, "available_memory", lambda: int(heavy / 0.8) + 1)
    unsure = _request((2000, 2000), with_weights=True)
    unsure.with_uncertainty = True  # 4 B more per pixel: no longer fits
    assert memory_refusal(unsure, "big").startswith("Predicting “big” needs about")


@pytest.mark.parametrize(("limit", "expected"), [("600000", 200_000), ("max", None)])
def test_a_cgroup_limit_caps_the_available_memory(tmp_path, monkeypatch, limit, expected):
    (tmp_path / "memory.max").write_text(limit + "\n")
    (tmp_path / "memory.current").write_text("400000\n")
    monkeypatch.setattr(_memory, "_CGROUP", tmp_path)
    free = available_memory()
    assert free == expected if expected is not None else free > 200_000

"""The Predict section's memory estimate (no viewer needed)."""

import numpy as np
import pytest

from helpers import tiny_model
from napari_unet._widgets import _memory
from napari_unet._widgets._layers import ImageGeometry
from napari_unet._widgets._memory import (
    available_memory,
    input_itemsize,
    memory_refusal,
    memory_size,
    output_bytes,
    working_bytes,
)
from napari_unet._widgets._predict_job import PredictionRequest
from napari_unet.config import PredictConfig
from napari_unet.core import memory_limits

MODEL = tiny_model()


def _request(shape, tile_size=None, with_weights=True, dtype=np.uint8, model=MODEL):
    geometry = ImageGeometry(shape=shape, channel_axis=None, rgb=False)
    data = np.broadcast_to(np.zeros((), dtype), shape)  # the dtype and shape, no memory
    config = PredictConfig(tile_size=tile_size, device="cpu")
    return PredictionRequest(
        model=model, data=data, geometry=geometry, config=config, with_weights=with_weights
    )


def test_outputs_and_working_memory_by_hand():
    # probabilities 2 x 4 B, mask 1 B, instances 4 B, weights 4 B per pixel
    assert output_bytes(2, (3, 100, 200), with_weights=True) == 3 * 100 * 200 * 17
    assert output_bytes(3, (100, 200), with_weights=False) == 100 * 200 * 17
    assert output_bytes(3, (100, 200), False, with_uncertainty=True) == 100 * 200 * 21
    # + the plane and the window read from it, float32 (4 B) for a uint8 image
    tiled = _request((3, 100, 200), tile_size=64)
    reads = (100 * 200 + 64 * 64 * 4) * 4
    # the network's activations: one tile at a time on the CPU (4 base feature maps)
    assert working_bytes(tiled) == 100 * 200 * 40 + 64 * 64 * 36 * 4 + reads
    whole = _request((100, 200), with_weights=False)
    window = (100 + 2 * MODEL.halo) * (200 + 2 * MODEL.halo)
    reads = (100 * 200 + window) * 4
    assert working_bytes(whole) == 100 * 200 * 18 + window * 36 * 4 + reads


def test_the_activations_counted_follow_the_device(monkeypatch):
    """On the CPU the batch's 4 tiles go through the network one after the other
    (EngineOptions.cpu_tiles_per_pass); on Apple MPS together, in the computer's memory;
    a CUDA device holds them in its own memory, not in the RAM this check guards."""
    import torch

    cpu = working_bytes(_request((100, 200), tile_size=64))
    monkeypatch.setattr(_memory, "resolve_device", lambda device: torch.device("mps"))
    assert working_bytes(_request((100, 200), tile_size=64)) - cpu == 64 * 64 * 3 * 36 * 4
    monkeypatch.setattr(_memory, "resolve_device", lambda device: torch.device("cuda"))
    assert cpu - working_bytes(_request((100, 200), tile_size=64)) == 64 * 64 * 36 * 4


@pytest.mark.parametrize("tile_size", [None, 64])
def test_planes_of_wide_types_are_counted_in_float64(tile_size):
    """read_plane gives float64 for types wider than 16 bits: 8 B per value, not 4."""
    two = tiny_model(in_channels=2)
    shape = (2, 3, 100, 200)  # C, Z, Y, X
    window = 64 * 64 * 4 if tile_size else (100 + 2 * two.halo) * (200 + 2 * two.halo)
    narrow = {
        dtype: working_bytes(_request(shape, tile_size, dtype=dtype, model=two))
        for dtype in (np.uint8, np.uint16, np.float32, np.int16)
    }
    for dtype in (np.uint32, np.int64, np.float64, np.uint64):
        wide = working_bytes(_request(shape, tile_size, dtype=dtype, model=two))
        for narrow_bytes in narrow.values():
            assert wide - narrow_bytes == (100 * 200 + window) * 2 * (8 - 4)


@pytest.mark.parametrize(
    "dtype", [bool, np.uint8, np.int16, np.uint16, np.float16, np.float32, np.uint32, np.float64]
)
def test_the_estimate_uses_the_type_read_plane_gives(dtype):
    data = np.zeros((2, 3, 8, 8), dtype)  # C, Z, Y, X for a 2-channel model
    geometry = ImageGeometry(shape=data.shape, channel_axis=0, rgb=False)
    plane = geometry.read_plane(data, (1,), in_channels=2)
    assert plane.shape == (2, 8, 8)
    assert plane.dtype.itemsize == input_itemsize(data) == (8 if dtype in WIDE else 4)


WIDE = (np.uint32, np.float64)


def test_a_float64_image_that_fits_only_as_float32_is_refused(monkeypatch):
    light = _request((4000, 4000), tile_size=64, dtype=np.float32)
    heavy = _request((4000, 4000), tile_size=64, dtype=np.float64)
    needs = {
        name: output_bytes(2, (4000, 4000), True) + working_bytes(request)
        for name, request in (("light", light), ("heavy", heavy))
    }
    assert needs["heavy"] - needs["light"] >= 4000 * 4000 * 4
    monkeypatch.setattr(_memory, "available_memory", lambda: int(needs["light"] / 0.8) + 1)
    assert memory_refusal(light, "float32") == ""
    assert memory_refusal(heavy, "float64").startswith("Predicting “float64” needs about")


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
    nothing_fits = memory_refusal(request, "big")
    assert "untick" not in nothing_fits  # it would not fit either way
    assert "choose a tile size" not in nothing_fits  # nor tiled: the outputs alone do not
    assert "only 0 MiB of memory are free" in nothing_fits  # not "0.0 GiB"
    monkeypatch.setattr(_memory, "available_memory", lambda: int(heavy / 0.8) + 1)
    unsure = _request((2000, 2000), with_weights=True)
    unsure.with_uncertainty = True  # 4 B more per pixel: no longer fits
    assert memory_refusal(unsure, "big").startswith("Predicting “big” needs about")


FREE = 1_000_000
"""What psutil says is available in the tests of the cgroup cap."""


@pytest.fixture
def cgroups(tmp_path, monkeypatch):
    """A cgroup mount under ``tmp_path / "fs"`` and the process's ``/proc/self/cgroup``
    (write its lines into the returned file); psutil says :data:`FREE` is available."""
    import psutil

    memory = psutil.virtual_memory()._replace(available=FREE)
    monkeypatch.setattr(psutil, "virtual_memory", lambda: memory)
    mount, listing = tmp_path / "fs", tmp_path / "cgroup"
    mount.mkdir()
    listing.write_text("0::/\n")
    monkeypatch.setattr(memory_limits, "_CGROUP", mount)
    monkeypatch.setattr(memory_limits, "_PROC_CGROUP", listing)
    return mount, listing


def _group(folder, limit, used, files=("memory.max", "memory.current")):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / files[0]).write_text(f"{limit}\n")
    (folder / files[1]).write_text(f"{used}\n")


@pytest.mark.parametrize(
    ("limit", "expected"),
    [
        ("600000", 600_000 - 400_000),  # the limit less what the group uses
        ("max", FREE),  # no limit: psutil's figure
        ("5000000", FREE),  # a limit above what is free: psutil's figure
    ],
)
def test_a_cgroup_limit_caps_the_available_memory(cgroups, limit, expected):
    mount, _ = cgroups  # a container: its group is the mount's root
    _group(mount, limit, 400_000)
    assert available_memory() == expected


def test_a_limit_above_the_process_group_counts_too(cgroups):
    """SLURM limits the job's group; its steps and tasks are groups below it."""
    mount, listing = cgroups
    listing.write_text("0::/system.slice/slurmstepd.scope/job_42/step_0/user/task_0\n")
    job = mount / "system.slice" / "slurmstepd.scope" / "job_42"
    _group(job, 700_000, 450_000)
    _group(job / "step_0" / "user" / "task_0", "max", 100_000)
    assert available_memory() == 250_000


def test_the_page_cache_the_kernel_reclaims_counts_as_room(cgroups):
    """A job that copied its data has most of its use in the page cache (memory.stat's
    inactive_file), which psutil also counts as available."""
    mount, _ = cgroups
    _group(mount, 900_000, 850_000)
    (mount / "memory.stat").write_text("anon 100000\nfile 700000\ninactive_file 600000\n")
    assert available_memory() == 900_000 - 850_000 + 600_000


def test_a_cgroup_v1_memory_limit_counts(cgroups):
    mount, listing = cgroups
    listing.write_text("4:memory:/docker/abc\n1:cpu:/\n")
    v1 = ("memory.limit_in_bytes", "memory.usage_in_bytes")
    _group(mount / "memory", 9223372036854771712, 5_000, v1)  # "no limit" in v1
    _group(mount / "memory" / "docker" / "abc", 800_000, 300_000, v1)
    assert available_memory() == 500_000


def test_without_a_cgroup_the_available_memory_is_psutils(cgroups, monkeypatch, tmp_path):
    monkeypatch.setattr(memory_limits, "_CGROUP", tmp_path / "absent")
    assert available_memory() == FREE
    monkeypatch.setattr(memory_limits, "_PROC_CGROUP", tmp_path / "absent" / "cgroup")  # not Linux
    assert available_memory() == FREE


@pytest.mark.parametrize(
    ("n_bytes", "said"),
    [(5.7 * 2**30, "5.7 GiB"), (2**30, "1.0 GiB"), (350 * 2**20, "350 MiB"), (1000, "0 MiB"),
     (-5, "0 MiB")],
)  # fmt: skip
def test_memory_is_said_in_gib_or_below_one_in_mib(n_bytes, said):
    assert memory_size(n_bytes) == said

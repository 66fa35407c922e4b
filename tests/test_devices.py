import pytest
import torch

from napari_unet.core import devices
from napari_unet.core.devices import resolve_device


@pytest.mark.parametrize(
    ("cuda", "mps", "expected"),
    [(True, True, "cuda"), (False, True, "mps"), (False, False, "cpu"), (True, False, "cuda")],
)
def test_auto_prefers_cuda_then_mps_then_cpu(monkeypatch, cuda, mps, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(devices, "_mps_available", lambda: mps)
    assert resolve_device("auto") == torch.device(expected)
    assert resolve_device(None) == torch.device(expected)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("cuda", "CUDA is not available"),
        ("cuda:1", "CUDA is not available"),
        ("mps", "MPS"),
        ("mps:0", "MPS is not available"),
    ],
)
def test_unavailable_device_says_so(monkeypatch, name, message):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(devices, "_mps_available", lambda: False)
    with pytest.raises(ValueError, match=message):
        resolve_device(name)


def test_a_cuda_device_this_machine_lacks_says_how_many_it_has(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    lacking = r"'cuda:7' requested but this machine has 1 CUDA device \(cuda:0\)"
    with pytest.raises(ValueError, match=lacking):
        resolve_device("cuda:7")
    assert resolve_device("cuda:0") == torch.device("cuda:0")
    assert resolve_device("cuda") == torch.device("cuda")


def test_explicit_cpu_and_unknown_names():
    assert resolve_device("CPU") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    with pytest.raises(ValueError, match="unknown device"):
        resolve_device("tpu")


def test_torch_threads_sets_the_count_inside_and_restores_it_after():
    before = torch.get_num_threads()
    inside = 1 if before != 1 else 2
    with devices.torch_threads(inside):
        assert torch.get_num_threads() == inside
    assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError), devices.torch_threads(inside):
        raise RuntimeError("the count is restored however the block ends")
    assert torch.get_num_threads() == before
    for unset in (None, 0):
        with devices.torch_threads(unset):
            assert torch.get_num_threads() == before

import threading

import numpy as np
import pytest
import torch

from helpers import seeded_unet
from napari_unet import ModelConfig, UNet, predict
from napari_unet.core import engine as engine_module
from napari_unet.core import inference
from napari_unet.core.engine import DEFAULT_ENGINE, EngineOptions
from napari_unet.core.inference import (
    Cancelled,
    auto_tile_size,
    default_tile_size,
    normalization_stats,
    normalize,
    tile_layout,
    tile_memory,
    usable_tile_sizes,
)


@pytest.fixture(scope="module")
def valid_model():
    return seeded_unet(depth=3)


@pytest.mark.parametrize("shape", [(1, 1), (3, 3), (37, 101), (150, 133)])
def test_tiled_equals_one_pass_valid(valid_model, shape):
    image = np.random.default_rng(1).normal(size=shape).astype(np.float32)
    whole = predict(image, valid_model)
    for tile_size in (108, 124, 148):  # valid sizes for depth 3 (92 + 8k, stride > 0)
        tiled = predict(image, valid_model, tile_size=tile_size, batch_size=3)
        assert np.abs(tiled - whole).max() < 1e-4


def test_one_pass_equals_direct_forward_on_mirrored_image(valid_model):
    image = np.random.default_rng(2).normal(size=(60, 60)).astype(np.float32)
    offset, scale = normalization_stats(image)
    halo = valid_model.halo
    size = valid_model.smallest_valid_input_covering(60)
    normalised = ((image - offset[0]) / scale[0]).astype(np.float32)
    padded = np.pad(normalised, ((halo, size - 60 - halo),) * 2, mode="reflect")
    with torch.inference_mode():
        direct = torch.softmax(valid_model(torch.from_numpy(padded)[None, None]), 1)[0].numpy()
    assert np.abs(predict(image, valid_model) - direct[:, :60, :60]).max() < 1e-5


def test_every_pixel_written_once():
    model = seeded_unet(depth=2)
    out = np.full((2, 77, 45), np.nan, np.float32)
    predict(np.ones((77, 45)), model, tile_size=48, out=out)
    assert not np.isnan(out).any()
    assert np.allclose(out.sum(0), 1, atol=1e-5)
    with pytest.raises(ValueError, match=r"out has shape \(2, 45, 77\); the probabilities"):
        predict(np.ones((77, 45)), model, tile_size=48, out=np.zeros((2, 45, 77), np.float32))


def test_a_model_in_train_mode_stays_in_train_mode_even_when_stopped():
    model = seeded_unet(depth=2).train()
    probabilities = predict(np.ones((40, 40)), model)
    assert model.training and probabilities.shape == (2, 40, 40)
    with pytest.raises(Cancelled):
        predict(np.ones((40, 40)), model, stop=lambda: True)
    assert model.training
    predict(np.ones((40, 40)), model.eval())
    assert not model.training


def test_same_padding_tiled_within_documented_tolerance():
    model = seeded_unet(depth=3, padding="same", batch_norm=True)
    image = np.random.default_rng(3).normal(size=(130, 90)).astype(np.float32)
    whole = predict(image, model)
    tiled = predict(image, model, tile_size=112)
    assert np.abs(tiled - whole).max() < 1e-4  # documented in the README


@pytest.mark.parametrize(
    "dtype", [np.uint8, np.uint16, np.uint32, np.int32, np.int64, np.float32, np.float64, bool]
)
def test_any_numeric_dtype(valid_model, dtype):
    image = (np.random.default_rng(4).random((40, 30)) * 200).astype(dtype)
    probabilities = predict(image, valid_model, tile_size=108)
    assert probabilities.shape == (2, 40, 30) and probabilities.dtype == np.float32
    reference = predict(image.astype(np.float64), valid_model, tile_size=108)
    np.testing.assert_allclose(probabilities, reference, rtol=0, atol=1e-5)


def test_multichannel_and_channel_mismatch():
    model = seeded_unet(depth=2, in_channels=3)
    image = np.random.default_rng(5).random((3, 30, 20))
    assert predict(image, model).shape == (2, 30, 20)
    with pytest.raises(ValueError, match="expects 3 input channel"):
        predict(image[0], model)


def test_normalisation_is_per_image_not_per_tile(valid_model):
    # a gradient image: per-tile normalisation would make tiles differ
    image = np.linspace(0, 1000, 150 * 150).reshape(150, 150)
    assert (
        np.abs(predict(image, valid_model, tile_size=108) - predict(image, valid_model)).max()
        < 1e-4
    )


def test_progress_and_stop(valid_model):
    seen = []
    predict(np.zeros((100, 100)), valid_model, tile_size=108, batch_size=1, progress=seen.append)
    assert seen[0].done == 0 and seen[-1].done == seen[-1].total == len(seen) - 1 > 1
    stop = threading.Event()
    stop.set()
    with pytest.raises(Cancelled):
        predict(np.zeros((100, 100)), valid_model, tile_size=108, stop=stop)


def test_bad_inputs(valid_model):
    with pytest.raises(ValueError, match="NaN"):
        predict(np.full((20, 20), np.nan), valid_model)
    with pytest.raises(ValueError, match="nearest valid sizes"):
        predict(np.zeros((300, 300)), valid_model, tile_size=105)
    with pytest.raises(ValueError, match="at least"):
        predict(np.zeros((300, 300)), valid_model, tile_size=92)


def test_default_tile_size_with_the_paper_target_is_paper_size():
    assert default_tile_size(UNet(ModelConfig(base_features=2)), 572) == 572


@pytest.mark.parametrize("depth", [2, 3, 4])
def test_auto_tile_size_is_the_largest_usable_tile_within_the_memory_budget(depth):
    model = UNet(ModelConfig(depth=depth, base_features=16))
    plenty = 2**40
    largest = auto_tile_size(model, available=plenty, maximum=1024)
    usable = usable_tile_sizes(model, 1024)
    assert largest == usable[-1] and largest <= 1024
    # a budget just big enough for 700-ish tiles picks the largest tile that fits
    budget = tile_memory(model, 700)
    chosen = auto_tile_size(model, available=budget, maximum=1024, fraction=1.0)
    assert (
        tile_memory(model, chosen) <= budget < tile_memory(model, usable[usable.index(chosen) + 1])
    )
    assert model.is_valid_input_size(chosen) and chosen in usable
    # stride on the pooling grid: a multiple of 2 ** depth, and some output is kept
    stride = model.output_size(chosen) - model.output_size(chosen) % 2**depth
    assert stride > 0 and stride % 2**depth == 0
    # no memory at all: the smallest usable tile, never an invalid one
    assert auto_tile_size(model, available=0) == usable[0]
    # the default tile is the automatic one
    assert default_tile_size(model) == auto_tile_size(model)


def test_auto_tile_size_reads_the_available_memory(monkeypatch):
    import psutil

    from napari_unet.core import memory_limits

    monkeypatch.setattr(memory_limits, "cgroup_room", lambda: None)  # this machine's aside
    model = UNet(ModelConfig(depth=4, base_features=16))
    free = tile_memory(model, 572) * 4
    monkeypatch.setattr(psutil, "virtual_memory", lambda: type("Memory", (), {"available": free})())
    assert auto_tile_size(model, fraction=0.25) == 572
    # with a CUDA device that has less free memory than the RAM, its memory decides
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda: (tile_memory(model, 380), 2**40))
    assert auto_tile_size(model, fraction=1.0) == 380


def test_auto_tile_size_keeps_within_the_process_cgroup_limit(monkeypatch):
    import psutil

    from napari_unet.core import memory_limits

    model = UNet(ModelConfig(depth=4, base_features=16))
    plenty = type("Memory", (), {"available": 2**40})()
    monkeypatch.setattr(psutil, "virtual_memory", lambda: plenty)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(memory_limits, "cgroup_room", lambda: tile_memory(model, 572) * 4)
    assert auto_tile_size(model, fraction=0.25) == 572  # a SLURM job's limit, not the node's


@pytest.mark.parametrize("size", [37, 150, 300, 1000])
def test_tiles_shrink_to_the_image_keeping_their_number(size):
    model = UNet(ModelConfig(depth=3, base_features=2))
    shrunk_shape, shrunk = tile_layout(model, (size, size), 148)
    plain_engine = EngineOptions(shrink_tiles_to_image=False)
    plain_shape, plain = tile_layout(model, (size, size), 148, plain_engine)
    assert len(shrunk) == len(plain)
    tile = shrunk_shape[0]
    assert tile <= plain_shape[0] and model.is_valid_input_size(tile)
    smaller = [n for n in usable_tile_sizes(model, 148) if n < tile]
    if len(plain) > 1 and smaller:  # the next smaller tile would need more tiles
        assert len(tile_layout(model, (size, size), smaller[-1])[1]) > len(plain)


def test_tiles_shrink_for_a_2048_image_with_the_paper_network():
    model = UNet(ModelConfig(depth=4, base_features=2))
    # 572: stride 384, 6 tiles; 540 (stride 352) still covers 2048 in 6, 524 (336) does not
    assert tile_layout(model, (2048, 2048), 572)[0] == (540, 540)
    # 1020: stride 832, 3 tiles; 876 (stride 688) still covers 2048 in 3
    shape, tiles = tile_layout(model, (2048, 2048), 1020)
    assert shape == (876, 876) and len(tiles) == 9
    assert tiles[-1].x.keep_start == 2 * 688 and tiles[-1].x.keep_stop == 2048


ENGINES = [
    EngineOptions(
        channels_last=channels_last,
        fused_conv_relu=fused,
        shrink_tiles_to_image=shrink,
        cpu_tiles_per_pass=per_pass,
    )
    for channels_last in (True, False)
    for fused in (True, False)
    for shrink in (True, False)
    for per_pass in (1, 3)
]


def test_the_default_engine_is_the_measured_fastest():
    assert DEFAULT_ENGINE == EngineOptions() == EngineOptions(True, True, True, 1)
    with pytest.raises(ValueError, match="at least 1"):
        EngineOptions(cpu_tiles_per_pass=0)


@pytest.mark.parametrize("engine", ENGINES, ids=repr)
def test_every_engine_gives_the_default_probabilities(valid_model, engine):
    # Each engine option changes how the work is done, never the result: tiled and
    # untiled, every combination gives the default engine's probabilities.
    image = np.random.default_rng(4).normal(size=(150, 133)).astype(np.float32)
    whole = predict(image, valid_model, device="cpu")
    for tile_size in (None, 100, 108, 148):
        default = predict(image, valid_model, tile_size=tile_size, batch_size=4, device="cpu")
        other = predict(
            image, valid_model, tile_size=tile_size, batch_size=4, device="cpu", engine=engine
        )
        assert np.abs(other - default).max() < 1e-4, tile_size
        assert np.abs(other - whole).max() < 1e-4, tile_size


def test_the_engine_reaches_the_network(valid_model, monkeypatch):
    # the options are passed down, not read from anywhere else: record what arrives
    seen = []
    forward = engine_module.forward
    monkeypatch.setattr(
        engine_module,
        "forward",
        lambda model, inputs, engine: (
            seen.append((inputs.shape[0], engine)) or forward(model, inputs, engine)
        ),
    )
    engine = EngineOptions(channels_last=False, fused_conv_relu=False, cpu_tiles_per_pass=2)
    image = np.zeros((150, 133), np.float32)
    predict(image, valid_model, tile_size=100, batch_size=4, device="cpu", engine=engine)
    assert seen and all(passed is engine for _, passed in seen)
    assert max(size for size, _ in seen) == 2


def test_no_module_level_engine_flag_remains():
    for name in (
        "CHANNELS_LAST_ON_CPU",
        "FUSED_CONV_RELU_ON_CPU",
        "SHRINK_TILES_TO_IMAGE",
        "CPU_TILES_PER_PASS",
    ):
        assert not hasattr(inference, name), name
    # no other on/off switch at module level either (EngineOptions holds them)
    switches = [name for name, value in vars(inference).items() if isinstance(value, bool)]
    assert switches == [], switches


@pytest.mark.parametrize(
    "options",
    [
        {"depth": 3},
        {"depth": 2, "padding": "same"},
        {"depth": 2, "batch_norm": True},
        {"depth": 2, "upsampling": "bilinear"},
        {"depth": 1, "in_channels": 2, "n_classes": 3},
    ],
)
def test_fused_forward_equals_the_model(options):
    model = seeded_unet(**options)
    with torch.no_grad():  # non-zero batch-norm statistics and biases
        for parameter in model.parameters():
            parameter.add_(0.05)
    size = 92 if model.config.padding == "valid" else 64
    size = model.nearest_valid_sizes(size)[1]
    inputs = torch.randn(2, model.config.in_channels, size, size)
    with torch.inference_mode():
        expected = model(inputs)
        fused = engine_module.fused_unet_forward(model, inputs)
        channels_last = engine_module.forward(
            model, inputs.contiguous(memory_format=torch.channels_last)
        )
    assert engine_module.FUSED_CONV_RELU is not None
    # channels-last convolutions sum in another order: equal up to float32 rounding of
    # the largest values (the shifted weights make outputs of up to 1e7 here)
    tolerance = 1e-5 * max(1.0, float(expected.abs().max()))
    assert torch.allclose(fused, expected, rtol=0, atol=tolerance)
    assert torch.allclose(channels_last, expected, rtol=0, atol=tolerance)


def test_constant_image_is_finite(valid_model):
    """A constant image normalises to zeros (its scale is 1, not 0): the network's output
    on a zero input, whatever the constant, and no NaN."""
    probabilities = predict(np.full((30, 30), 7, np.uint8), valid_model)
    size = valid_model.smallest_valid_input_covering(30)
    with torch.inference_mode():
        direct = torch.softmax(valid_model(torch.zeros(1, 1, size, size)), 1)[0].numpy()
    assert np.isfinite(probabilities).all()
    assert np.abs(probabilities - direct[:, :30, :30]).max() < 1e-6
    assert np.abs(probabilities.sum(0) - 1).max() < 1e-6
    other = predict(np.full((30, 30), 60000, np.uint16), valid_model)
    assert np.abs(other - probabilities).max() < 1e-6
    # bilinear upsampling keeps a constant input constant (up-convolutions add a period 2)
    smooth = predict(np.full((30, 30), 7, np.uint8), seeded_unet(depth=3, upsampling="bilinear"))
    assert np.ptp(smooth, axis=(1, 2)).max() < 1e-6
    assert np.abs(smooth.sum(0) - 1).max() < 1e-6


def test_usable_tile_sizes_all_work_and_the_next_smaller_does_not(valid_model):
    from napari_unet.core.inference import usable_tile_sizes

    sizes = usable_tile_sizes(valid_model, maximum=140)
    assert sizes[0] == 100 and all(valid_model.is_valid_input_size(n) for n in sizes)
    image = np.zeros((130, 130), np.float32)
    assert not np.isnan(predict(image, valid_model, tile_size=sizes[0])).any()
    with pytest.raises(ValueError, match="use at least 100"):
        predict(image, valid_model, tile_size=92)


@pytest.mark.parametrize("batch_size", [0, -1])
def test_batch_size_must_be_positive(batch_size):
    with pytest.raises(ValueError, match="batch_size must be at least 1"):
        predict(np.zeros((40, 40), np.float32), seeded_unet(depth=2), batch_size=batch_size)


def test_non_finite_pixel_missed_by_the_statistics_sample_is_refused(monkeypatch):
    """Large images are normalised from a subsample; each tile is checked too."""
    image = np.random.default_rng(0).random((60, 60)).astype(np.float32)
    image[31, 17] = np.nan
    offset, scale = np.zeros(1), np.ones(1)
    monkeypatch.setattr(
        "napari_unet.core.inference.normalization_stats", lambda *args, **kwargs: (offset, scale)
    )
    with pytest.raises(ValueError, match="NaN or infinite"):
        predict(image, seeded_unet(depth=2), tile_size=48)


def test_wide_integer_types_keep_their_contrast():
    """uint32 near 3e9: normalised in float64, the same prediction as the offset-free image."""
    model = seeded_unet(depth=2)
    values = np.random.default_rng(1).integers(0, 200, (40, 40))
    wide = (3_000_000_000 + values).astype(np.uint32)
    offset, scale = normalization_stats(wide)
    normalised = normalize(wide[None], offset, scale)
    assert normalised.dtype == np.float32 and len(np.unique(normalised)) == len(np.unique(values))
    expected = predict(values.astype(np.float32), model)
    np.testing.assert_allclose(predict(wide, model), expected, atol=1e-5)


def test_stop_is_checked_between_the_forward_passes_of_a_batch():
    """On the CPU a batch of 4 tiles is 4 passes: a stop after the first ends it there."""
    model = seeded_unet(depth=2)
    passes = []
    model.register_forward_hook(lambda *_: passes.append(1))
    checks = {"n": 0}

    def stop_at_second_check():
        checks["n"] += 1
        return checks["n"] >= 2

    with pytest.raises(Cancelled):
        predict(np.zeros((100, 100), np.float32), model, tile_size=48, batch_size=4,
                device="cpu", stop=stop_at_second_check)  # fmt: skip
    assert len(passes) == 1


@pytest.mark.parametrize("channels_last", [True, False])
def test_fused_forward_keeps_the_asked_layout_after_a_one_channel_input(monkeypatch, channels_last):
    # oneDNN returns the convolution of a one-channel input (both layouts at once) in the
    # default layout; channels-last must hold from the first layer on, or the
    # full-resolution layers run at a fraction of their speed
    from napari_unet.core import fused as fused_module

    model = seeded_unet(depth=2)
    inputs_seen = []
    real = fused_module.FUSED_CONV_RELU

    def spy(x, *args):
        inputs_seen.append(x)
        return real(x, *args)

    additions = []
    real_add = fused_module.FUSED_CONV_ADD_RELU

    def spy_add(x, other, *args):
        additions.append((x, other))
        return real_add(x, other, *args)

    monkeypatch.setattr(fused_module, "FUSED_CONV_RELU", spy)
    monkeypatch.setattr(fused_module, "FUSED_CONV_ADD_RELU", spy_add)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    inputs = torch.randn(1, 1, 92, 92).contiguous(memory_format=layout)
    with torch.inference_mode():
        result = fused_module.fused_unet_forward(model, inputs, channels_last)
        expected = model(inputs)
    # each decoder block's first convolution: the skip's part, then the up-sampled part
    # added to it, without concatenating the two
    assert len(additions) == model.config.depth
    assert len(inputs_seen) == 2 * (2 * model.config.depth + 1)
    assert all(
        x.is_contiguous(memory_format=torch.channels_last) == channels_last
        for pair in additions
        for x in pair
    )
    later = inputs_seen[1:]  # every convolution after the first has 16 channels or more
    assert all(x.shape[1] > 1 for x in later)
    assert all(x.is_contiguous(memory_format=torch.channels_last) == channels_last for x in later)
    assert torch.allclose(result, expected, atol=1e-5)

import pytest
import torch

from napari_unet import ModelConfig, UNet


def test_paper_geometry_572_to_388():
    model = UNet(ModelConfig(base_features=2))
    assert model.halo == 92
    assert model.output_size(572) == 388
    assert model.min_input_size == 188
    sizes = model.valid_input_sizes(maximum=700)
    assert sizes[:3] == [188, 204, 220]
    assert all(n % 16 == 12 for n in sizes)
    assert 572 in sizes


@pytest.mark.parametrize("depth", [1, 2, 3, 4])
def test_forward_shape_matches_output_size(depth):
    model = UNet(ModelConfig(base_features=2, depth=depth))
    size = model.valid_input_sizes()[2]
    out = model(torch.zeros(1, 1, size, size + model.size_multiple))
    assert out.shape == (
        1,
        2,
        model.output_size(size),
        model.output_size(size + model.size_multiple),
    )


def test_same_padding_keeps_size_and_options():
    config = ModelConfig(
        in_channels=3,
        n_classes=4,
        base_features=4,
        depth=3,
        padding="same",
        batch_norm=True,
        upsampling="bilinear",
    )
    model = UNet(config)
    out = model(torch.zeros(2, 3, 64, 40))
    assert out.shape == (2, 4, 64, 40)
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    assert not any(isinstance(m, torch.nn.ConvTranspose2d) for m in model.modules())


def test_paper_architecture_has_up_convolutions_and_skips():
    model = UNet(ModelConfig())
    assert sum(isinstance(m, torch.nn.ConvTranspose2d) for m in model.modules()) == 4
    # 23 convolutional layers in the paper: 18 3x3 convs, 4 up-convs, 1 final 1x1
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert sum(m.kernel_size == (3, 3) for m in convs) == 18
    assert sum(m.kernel_size == (1, 1) for m in convs) == 1


def test_bad_size_names_nearest_valid_sizes():
    model = UNet(ModelConfig(base_features=2))
    with pytest.raises(ValueError, match="492 or 508"):
        model.check_input_size(500)
    with pytest.raises(ValueError, match="188"):
        model.output_size(100)
    same = UNet(ModelConfig(base_features=2, padding="same"))
    with pytest.raises(ValueError, match=r"multiple of 16.*96 or 112"):
        same.check_input_size(100)


def test_bad_config_values_raise():
    with pytest.raises(ValueError, match="padding"):
        ModelConfig(padding="reflect")
    with pytest.raises(ValueError, match="n_classes"):
        ModelConfig(n_classes=1)


def test_config_round_trip():
    config = ModelConfig(depth=3, padding="same")
    assert ModelConfig.from_dict({**config.to_dict(), "unknown_future_key": 1}) == config

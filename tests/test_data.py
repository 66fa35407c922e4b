"""Tests for napari_unet.io.data."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import tifffile
from scipy import ndimage
from skimage import io as skimage_io

from napari_unet.io.data import (
    DATA_ENV_VAR,
    ImageReadError,
    data_dir,
    load_dsb2018,
    load_isbi,
    read_image,
    simulate_scribbles,
    synthetic_nuclei,
    to_channels_first,
    write_tiff,
)


def test_data_dir_follows_environment_variable(monkeypatch, tmp_path):
    monkeypatch.setenv(DATA_ENV_VAR, str(tmp_path))
    assert data_dir() == tmp_path
    monkeypatch.delenv(DATA_ENV_VAR)
    monkeypatch.chdir(tmp_path)
    assert data_dir().parts[-2:] == ("shared", "data")


def test_read_png_and_tiff_round_trip(tmp_path, rng):
    image = rng.integers(0, 256, (12, 10), dtype=np.uint8)
    skimage_io.imsave(tmp_path / "image.png", image, check_contrast=False)
    np.testing.assert_array_equal(read_image(tmp_path / "image.png"), image)
    stack = rng.integers(0, 60000, (3, 8, 9), dtype=np.uint16)
    write_tiff(tmp_path / "stack.tif", stack)
    result = read_image(tmp_path / "stack.tif")
    assert result.dtype == np.uint16
    np.testing.assert_array_equal(result, stack)


def test_write_tiff_is_compressed_atomic_and_leaves_no_temporary_files(tmp_path, monkeypatch):
    target = tmp_path / "sub" / "mask.tif"
    write_tiff(target, np.zeros((64, 64), np.uint8))
    write_tiff(target, np.ones((64, 64), bool))  # replaces the file
    assert [p.name for p in target.parent.iterdir()] == ["mask.tif"]
    with tifffile.TiffFile(target) as tiff:
        assert tiff.pages[0].compression == tifffile.COMPRESSION.ADOBE_DEFLATE
    np.testing.assert_array_equal(read_image(target), np.ones((64, 64), np.uint8))
    reference = tmp_path / "reference.bin"
    reference.write_bytes(b"")  # the usual permissions, not a temporary file's 0600
    assert target.stat().st_mode & 0o777 == reference.stat().st_mode & 0o777

    def fail_half_way(stream, *args, **kwargs):
        stream.write(b"II*\x00 half a file")
        raise OSError("disk full")

    monkeypatch.setattr(tifffile, "imwrite", fail_half_way)
    with pytest.raises(OSError, match="disk full"):
        write_tiff(target, np.zeros((64, 64), np.uint8))
    assert [p.name for p in target.parent.iterdir()] == ["mask.tif"]
    np.testing.assert_array_equal(read_image(target), np.ones((64, 64), np.uint8))


def test_read_image_reports_missing_and_truncated_files(tmp_path, rng):
    with pytest.raises(ImageReadError, match="file not found") as missing:
        read_image(tmp_path / "absent.png")
    assert missing.value.path == tmp_path / "absent.png"
    image = rng.integers(0, 256, (64, 64), dtype=np.uint8)
    for name in ("cut.png", "cut.tif"):
        path = tmp_path / name
        if name.endswith(".png"):
            skimage_io.imsave(path, image, check_contrast=False)
        else:
            tifffile.imwrite(path, image)
        content = path.read_bytes()
        path.write_bytes(content[: len(content) // 2])
        with pytest.raises(ImageReadError, match=name):
            read_image(path)
    error = pickle.loads(pickle.dumps(ImageReadError(tmp_path, "reason")))
    assert error.reason == "reason"


def test_load_isbi_shapes(shared_data):
    images, labels = load_isbi(indices=[0, 19])
    assert images.shape == labels.shape == (2, 512, 512)
    assert images.dtype == labels.dtype == np.uint8
    assert set(np.unique(labels)) == {0, 255}


def test_load_dsb2018_shapes(shared_data):
    image, instances = load_dsb2018()
    assert image.shape == instances.shape == (256, 512)
    assert image.dtype == instances.dtype == np.uint16
    assert len(np.unique(instances)) - 1 == 64


def test_loaders_explain_a_missing_data_folder(monkeypatch, tmp_path):
    monkeypatch.setenv(DATA_ENV_VAR, str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match=DATA_ENV_VAR):
        load_dsb2018()


def _touching_pairs(instances: np.ndarray) -> set[tuple[int, int]]:
    """Pairs of different labels that are 4-adjacent."""
    pairs = set()
    for a, b in ((instances[:, :-1], instances[:, 1:]), (instances[:-1], instances[1:])):
        touching = (a != b) & (a > 0) & (b > 0)
        pairs |= {tuple(sorted(p)) for p in zip(a[touching].tolist(), b[touching].tolist())}
    return pairs


def test_synthetic_nuclei_is_deterministic_with_exact_touching_labels():
    image, instances = synthetic_nuclei((96, 96), n_nuclei=10, rng=7)
    again_image, again_instances = synthetic_nuclei((96, 96), n_nuclei=10, rng=7)
    np.testing.assert_array_equal(image, again_image)
    np.testing.assert_array_equal(instances, again_instances)
    assert image.dtype == np.float32 and instances.dtype == np.uint16
    assert np.array_equal(np.unique(instances), np.arange(11))
    assert len(_touching_pairs(instances)) >= 1
    for label in range(1, 11):  # every nucleus is one connected object
        assert ndimage.label(instances == label)[1] == 1
    assert image[instances > 0].mean() > image[instances == 0].mean() + 0.2
    _, other = synthetic_nuclei((96, 96), n_nuclei=10, rng=8)
    assert not np.array_equal(instances, other)


def test_synthetic_nuclei_without_touching_pairs():
    _, instances = synthetic_nuclei((96, 96), n_nuclei=6, rng=1, touching=False)
    assert instances.max() == 6 and not _touching_pairs(instances)
    with pytest.raises(ValueError, match="could only place"):
        synthetic_nuclei((24, 24), n_nuclei=10, rng=1)


def test_simulate_scribbles_is_sparse_correct_and_deterministic(rng):
    dense = np.ones((80, 80), np.uint8)
    dense[10:40, 10:40] = 2
    dense[50:75, 45:78] = 3
    scribbles = simulate_scribbles(dense, np.random.default_rng(5), fraction=0.03)
    again = simulate_scribbles(dense, np.random.default_rng(5), fraction=0.03)
    np.testing.assert_array_equal(scribbles, again)
    assert scribbles.dtype == np.uint8
    assert np.count_nonzero(scribbles) <= 0.03 * dense.size
    assert set(np.unique(scribbles)) == {0, 1, 2, 3}
    drawn = scribbles > 0
    np.testing.assert_array_equal(scribbles[drawn], dense[drawn])
    wide = simulate_scribbles(dense, rng, fraction=0.05, stroke_width=3)
    assert np.count_nonzero(wide) <= 0.05 * dense.size
    np.testing.assert_array_equal(wide[wide > 0], dense[wide > 0])


def test_simulate_scribbles_keeps_a_tiny_class():
    dense = np.ones((50, 50), np.uint8)
    dense[20, 20] = 2  # a single pixel of class 2
    scribbles = simulate_scribbles(dense, 0, fraction=0.01)
    assert scribbles[20, 20] == 2
    with pytest.raises(ValueError, match="fewer than"):
        simulate_scribbles(dense, 0, fraction=0.0001)


@pytest.mark.parametrize(
    ("shape", "kwargs", "expected"),
    [
        ((5, 6), {}, (1, 5, 6)),
        ((5, 6, 3), {}, (1, 5, 6)),  # RGB -> luminance
        ((5, 6, 4), {}, (1, 5, 6)),  # RGBA: alpha dropped first
        ((2, 5, 6), {}, (2, 5, 6)),
        ((3, 5, 6), {"rgb": True}, (1, 5, 6)),  # channels-first RGB
        ((4, 5, 3), {"rgb": False}, (4, 5, 3)),  # forced channels-first
    ],
)
def test_to_channels_first_shapes(shape, kwargs, expected):
    image = np.arange(np.prod(shape), dtype=np.uint16).reshape(shape)
    result = to_channels_first(image, in_channels=expected[0], **kwargs)
    assert result.shape == expected and result.dtype == np.float32


def test_to_channels_first_values():
    rgb = np.zeros((6, 5, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 100, 200, 50
    gray = to_channels_first(rgb, 1)
    np.testing.assert_allclose(gray, 0.299 * 100 + 0.587 * 200 + 0.114 * 50, rtol=1e-6)
    kept = to_channels_first(rgb, 3)
    np.testing.assert_array_equal(kept[1], np.full((6, 5), 200))


def test_to_channels_first_explains_a_channel_mismatch():
    expected = r"the model expects 3 input channels \(RGB\) but the image has 1 channel "
    with pytest.raises(ValueError, match=expected):
        to_channels_first(np.zeros((8, 8)), 3)
    with pytest.raises(ValueError, match="expects 1 input channel but the image has 2 channels"):
        to_channels_first(np.zeros((2, 8, 8)), 1)
    with pytest.raises(ValueError, match="shape"):
        to_channels_first(np.zeros((1, 2, 8, 8)), 1)

import numpy as np
import pytest

from napari_unet.core.tiling import mirror_indices, plan_axis, plan_tiles, read_mirrored


@pytest.mark.parametrize("size", [1, 2, 5, 17])
@pytest.mark.parametrize("pad", [0, 3, 40])
def test_mirror_matches_numpy_reflect(size, pad):
    line = np.arange(size)
    expected = np.pad(line, pad, mode="reflect") if size > 1 else np.pad(line, pad, mode="edge")
    assert np.array_equal(line[mirror_indices(-pad, size + pad, size)], expected)


def test_read_mirrored_equals_padded_image():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 100, (2, 13, 9))
    padded = np.pad(image, ((0, 0), (20, 20), (20, 20)), mode="reflect")
    for y, x in [(-20, -20), (-5, 3), (0, 0), (7, 4), (10, 5)]:
        window = read_mirrored(image, y, x, (15, 11))
        assert np.array_equal(window, padded[:, y + 20 : y + 35, x + 20 : x + 31])


@pytest.mark.parametrize(("size", "stride"), [(1, 16), (100, 16), (97, 32), (33, 33)])
def test_kept_regions_partition_the_axis(size, stride):
    tiles = plan_axis(size, stride, halo=5, margin=0)
    covered = np.zeros(size, int)
    for tile in tiles:
        covered[tile.keep_start : tile.keep_stop] += 1
        assert tile.read_start == tile.keep_start - 5
    assert (covered == 1).all()


def test_plan_tiles_covers_image_once():
    tiles = plan_tiles((50, 70), (16, 32), halo=8, margin=8)
    hits = np.zeros((50, 70), int)
    for tile in tiles:
        hits[tile.keep] += 1
        assert tile.crop()[0].start == 8
    assert (hits == 1).all()
    assert len(tiles) == 4 * 3


def test_plan_axis_rejects_zero_stride():
    with pytest.raises(ValueError, match="stride"):
        plan_axis(10, 0, 1, 0)

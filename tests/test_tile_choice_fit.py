"""The tile sizes offered for an image tile it differently, each once (core.tile_choice)."""

from __future__ import annotations

import pytest

from napari_unet.config import ModelConfig
from napari_unet.core.checkpoint import load_model, new_model
from napari_unet.core.inference import tile_layout
from napari_unet.core.tile_choice import (
    TileChoice,
    distinct_tile_sizes,
    equivalent_tile_size,
    kept_share,
    tile_counts,
    usable_tile_sizes,
    whole_image_input,
)

MODELS = {
    "valid depth 1": lambda: new_model(ModelConfig(depth=1, base_features=4)),
    "same depth 2": lambda: new_model(ModelConfig(depth=2, base_features=4, padding="same")),
    "em-membranes": lambda: load_model("em-membranes"),
}
SHAPES = [(60, 72), (128, 128), (300, 1100), (1024, 1024)]


def layout(model, shape, size):
    tile_shape, tiles = tile_layout(model, shape, size)
    return tile_shape, tuple(tiles)


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("shape", SHAPES)
def test_each_offered_size_tiles_the_image_its_own_way(name, shape):
    model = MODELS[name]()
    choices = distinct_tile_sizes(model, shape, 1024)
    layouts = [layout(model, shape, choice.size) for choice in choices]
    assert len(set(layouts)) == len(layouts)  # no two choices give the same tiles
    assert choices[-1] == TileChoice(None, (1, 1))  # the whole image, last and once
    whole = whole_image_input(model, shape)
    assert layout(model, shape, None)[0] == whole
    sizes = [choice.size for choice in choices[:-1]]
    assert sizes == sorted(sizes) and all(size < max(whole) for size in sizes)
    # every usable size tiles like the offered one it maps to, the counts say how; one
    # below those offered (mostly context: kept_share < 1/4) maps to the smallest offered
    smallest = choices[0].size or max(whole)
    for size in usable_tile_sizes(model, 1024):
        same = equivalent_tile_size(model, shape, size, choices)
        if size < smallest:
            assert same == choices[0].size and kept_share(model, size) < 0.25
            continue
        assert layout(model, shape, size) == layout(model, shape, same)
        rows, columns = tile_counts(model, shape, size)
        assert len(layout(model, shape, size)[1]) == rows * columns
        assert size >= (same or 0)  # the smallest size of its tiling is offered


def test_a_small_image_gets_few_choices_and_a_large_one_more():
    model = load_model("em-membranes")  # valid sizes 188 + 16 k; up to 1024: 50 usable
    assert len(usable_tile_sizes(model, 1024)) > 40
    small = distinct_tile_sizes(model, (60, 72), 1024)
    assert [(c.size, c.tiles) for c in small] == [(None, 1)]  # 204-252 px: mostly context
    assert max(kept_share(model, size) for size in (204, 220, 236, 252)) < 0.25
    assert whole_image_input(model, (60, 72)) == (252, 268)
    large = distinct_tile_sizes(model, (2048, 2048), 1024)
    assert 8 < len(large) < len(usable_tile_sizes(model, 1024))
    assert large[-2].size is not None and large[-2].size <= 1024


def test_without_an_image_every_size_keeping_a_quarter_is_offered():
    model = new_model(ModelConfig(depth=2, base_features=4))
    choices = distinct_tile_sizes(model, None, 200, extra=(236,))
    worth = [size for size in usable_tile_sizes(model, 200) if kept_share(model, size) >= 0.25]
    assert worth[0] > usable_tile_sizes(model, 200)[0]  # the smallest are left out
    assert [c.size for c in choices[:-1]] == [*worth, 236]
    assert choices[-1].size is None and choices[0].tiles is None
    assert equivalent_tile_size(model, None, 236, choices) == 236
    assert equivalent_tile_size(model, None, 198, choices) == max(s for s in worth if s <= 198)

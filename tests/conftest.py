"""Shared pytest fixtures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


@pytest.fixture
def shared_data() -> Path:
    """The real-data folder (``NAPARI_UNET_DATA`` or ``../shared/data``).

    Skips the test, saying where it looked, only when the folder is absent.
    """
    from napari_unet.data import data_dir

    folder = data_dir()
    if not folder.is_dir():
        pytest.skip(
            f"real data folder {folder} not found; set NAPARI_UNET_DATA to the folder "
            "holding isbi2012-em/ and dsb2018-nuclei/"
        )
    return folder


@pytest.fixture
def rng() -> np.random.Generator:
    """A seeded random generator, so tests are reproducible."""
    return np.random.default_rng(20150518)

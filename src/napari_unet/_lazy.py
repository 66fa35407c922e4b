"""Public names of a package imported on first use (PEP 562).

``import napari_unet`` and ``napari_unet._widgets`` would otherwise import every module
behind their names, PyTorch among them, although napari's reader and sample data (and a
script that only reads a config) need none of it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from importlib import import_module
from typing import Any


def lazy_attributes(
    package: str, modules: dict[str, str], public: Sequence[str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """A package's ``__getattr__`` and ``__dir__`` for names imported on first use.

    Parameters
    ----------
    package : str
        The package's ``__name__``.
    modules : dict of str to str
        Each lazy name's module, relative to the package (``"core.inference"``).
    public : sequence of str
        The package's ``__all__``, listed by ``dir()`` before they are imported.
    """

    def __getattr__(name: str) -> Any:
        module = modules.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(import_module(f".{module}", package), name)
        setattr(sys.modules[package], name, value)  # later uses skip this function
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(public))

    return __getattr__, __dir__

"""Public names and submodules of a package imported on first use (PEP 562).

``import napari_unet`` and ``napari_unet._widgets`` would otherwise import every module
behind their names, PyTorch among them, although napari's reader and sample data (and a
script that only reads a config) need none of it. Attribute chains through submodules
(``napari_unet.io.bioimageio.export_bioimageio``) import each submodule when reached, as
they worked when the package imported everything.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable, Sequence
from importlib import import_module
from types import ModuleType
from typing import Any


def lazy_attributes(
    package: str, modules: dict[str, str] | None = None, public: Sequence[str] = ()
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """A package's ``__getattr__`` and ``__dir__`` for names imported on first use.

    Parameters
    ----------
    package : str
        The package's ``__name__``.
    modules : dict of str to str, optional
        Each lazy name's module, relative to the package (``"core.inference"``). Any
        other name that is a submodule of the package is imported as that module.
    public : sequence of str
        The package's ``__all__``, listed by ``dir()`` before they are imported.

    Notes
    -----
    Nothing is cached in the package: each use looks the name up in its module (a
    dictionary lookup once imported), so a test's monkeypatch of that module, undone,
    leaves nothing behind.
    """
    names = modules or {}

    def __getattr__(name: str) -> Any:
        module = names.get(name)
        if module is not None:
            return getattr(import_module(f".{module}", package), name)
        submodule = _submodule(package, name)
        if submodule is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return submodule

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(public))

    return __getattr__, __dir__


def _submodule(package: str, name: str) -> ModuleType | None:
    """The submodule ``name`` of ``package``, imported; None when there is none."""
    if name.startswith("__"):  # probes such as __wrapped__ or __path__ of tools
        return None
    full_name = f"{package}.{name}"
    try:
        found = importlib.util.find_spec(full_name)
    except (ImportError, ValueError):
        return None
    return None if found is None else import_module(full_name)

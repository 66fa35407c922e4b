"""Images in and results out: files, axes, stacks, many files at once, model packages.

Owns image I/O, the shared and synthetic data sets (``data``, ``synthetic``), the axes and
channel rule (``axes``), stacks predicted slice by slice into memory (``volumes``) or tile
by tile into zarr (``outofcore``), batch prediction of files here or on dask workers
(``inputs``, ``batch``, ``_cluster``, ``reruns``) and bioimage.io model packages
(``bioimageio``). Builds on :mod:`napari_unet.core`; no napari or Qt.
"""

# Teaches napari_unet.load_model (in the core, which imports nothing from io) to open
# bioimage.io packages. Neither PyTorch nor bioimageio.spec is imported here: the
# loader imports them when a package is opened.
from .._lazy import lazy_attributes as _lazy_attributes
from ..core.model_formats import register_model_format as _register_model_format
from ._package_format import is_bioimageio_package as _is_package
from ._package_format import load_package as _load_package

_register_model_format(_is_package, _load_package)

__getattr__, __dir__ = _lazy_attributes(__name__)  # napari_unet.io.batch etc. on first use

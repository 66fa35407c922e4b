"""The segmentation core: the U-Net, its checkpoints, and image → probabilities → mask/instances.

Owns the network (``model``, ``fused``), its files (``checkpoint`` with the bounds of
``_limits`` and the atomic writes of ``_atomic``), overlap-tile inference (``tiling``,
``tile_choice``, ``normalization``, ``inference``, ``devices``) and the post-processing
of probabilities (``postprocess``). Imports no napari, Qt or training code.
"""

from .._lazy import lazy_attributes as _lazy_attributes

__getattr__, __dir__ = _lazy_attributes(__name__)  # submodules imported on first use

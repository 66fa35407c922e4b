"""Training a U-Net from annotations: what a patch is made of and the loop that learns from it.

Owns the paper's weight map (``weights``), augmentation (``augment``), annotation checks and
patch sampling (``sampling``), the ``finetune``/``train`` loop (``loop``) with its
learning rate (``schedule``), distillation term (``distillation``), progress records
(``history``) and the optional batch-norm re-estimation (``batchnorm``). Builds on
:mod:`napari_unet.core`; no napari or Qt.
"""

from .._lazy import lazy_attributes as _lazy_attributes

__getattr__, __dir__ = _lazy_attributes(__name__)  # submodules imported on first use

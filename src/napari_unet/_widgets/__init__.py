"""The napari widgets of napari-unet (the only Qt code of the package).

``UNetWidget`` holds all four sections in one dock; ``ModelWidget``,
``AnnotateWidget``, ``FinetuneWidget`` and ``PredictWidget`` are the sections on
their own, and ``ModelDock``, ``AnnotateDock``, ``FinetuneDock`` and ``PredictDock``
put one in a dock of its own that scrolls (``.section`` holds it). All widgets of one
viewer share one model through :func:`model_state`.
"""

from typing import TYPE_CHECKING

from .._lazy import lazy_attributes as _lazy_attributes

if TYPE_CHECKING:
    from ._annotate import AnnotateWidget
    from ._finetune import FinetuneWidget
    from ._model import ModelWidget
    from ._predict import PredictWidget
    from ._section_scroll import AnnotateDock, FinetuneDock, ModelDock, PredictDock
    from ._state import ModelState, model_state
    from ._unet import UNetWidget

#: Imported on first use, so that napari's reader can use ``_layers`` without the model.
_PUBLIC_MODULES = {
    "AnnotateWidget": "_annotate",
    "FinetuneWidget": "_finetune",
    "ModelWidget": "_model",
    "PredictWidget": "_predict",
    "AnnotateDock": "_section_scroll",
    "FinetuneDock": "_section_scroll",
    "ModelDock": "_section_scroll",
    "PredictDock": "_section_scroll",
    "ModelState": "_state",
    "model_state": "_state",
    "UNetWidget": "_unet",
}

__all__ = [
    "AnnotateDock",
    "AnnotateWidget",
    "FinetuneDock",
    "FinetuneWidget",
    "ModelDock",
    "ModelState",
    "ModelWidget",
    "PredictDock",
    "PredictWidget",
    "UNetWidget",
    "model_state",
]

__getattr__, __dir__ = _lazy_attributes(__name__, _PUBLIC_MODULES, __all__)

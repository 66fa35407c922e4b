"""The napari widgets of napari-unet (the only Qt code of the package).

``UNetWidget`` holds all four sections in one dock; ``ModelWidget``,
``AnnotateWidget``, ``FinetuneWidget`` and ``PredictWidget`` are the sections on
their own. All widgets of one viewer share one model through
:func:`model_state`.
"""

from ._annotate import AnnotateWidget
from ._finetune import FinetuneWidget
from ._model import ModelWidget
from ._predict import PredictWidget
from ._state import ModelState, model_state
from ._unet import UNetWidget

__all__ = [
    "AnnotateWidget",
    "FinetuneWidget",
    "ModelState",
    "ModelWidget",
    "PredictWidget",
    "UNetWidget",
    "model_state",
]

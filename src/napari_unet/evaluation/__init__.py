"""How good a segmentation is, and what a user looks at to judge it.

Owns the metrics (``metrics`` with ``evaluate``, the ISBI scores of ``membrane_metrics``,
instance ``matching``, a whole stack's ``stack``), what a user reviews after a prediction
or a fine-tune (``review``: uncertainty, class changes) and the simulated user of the
annotation-loop benchmark (``annotator``). numpy/scipy/scikit-image only: no torch model,
napari or Qt.
"""

from .._lazy import lazy_attributes as _lazy_attributes

__getattr__, __dir__ = _lazy_attributes(__name__)  # submodules imported on first use

"""A warning for an instance image passed where class labels are expected.

Class labels are 0 (unlabelled or none), 1 (background) and 2..K (classes). An instance
image (0 = background, 1..N = objects) read that way has its background ignored, object 1
taken for background and every other object for a class of its own: no error shows it.
"""

from __future__ import annotations

import warnings

import numpy as np

#: More label values than this in class labels (0 and 1 aside) suggest an instance image.
LIKELY_MOST_CLASSES = 16


def warn_if_instance_image(labels: np.ndarray, stacklevel: int = 2) -> None:
    """Warn when class ``labels`` hold more classes than any model here is likely to have
    and some 0 (a model's mask has none: its background is 1).

    ``stacklevel`` counts from the caller of this function: 1 names the caller's line, 2
    the line that called the caller (a public function's user), and so on.
    """
    if not labels.size or labels.dtype.kind not in "iu":
        return
    if int(labels.max()) <= LIKELY_MOST_CLASSES + 1 or int(labels.min()) != 0:
        return  # few classes, or a model's mask (no 0 anywhere), however many classes
    classes = np.unique(labels)
    n_classes = int(np.count_nonzero(classes >= 2))
    if n_classes > LIKELY_MOST_CLASSES:
        warnings.warn(
            f"labels hold {n_classes} foreground classes (values up to {int(classes[-1])}): "
            "is this an instance image? Labels are 0 = unlabelled, 1 = background, "
            "2.. = classes; annotation_from_instances(instances) makes them from one "
            "(pass the instances as instances=)",
            UserWarning,
            stacklevel=stacklevel + 1,
        )

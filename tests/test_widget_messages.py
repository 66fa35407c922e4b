"""Words the widgets choose without a viewer: save names, truth conventions, advice."""

from __future__ import annotations

import numpy as np
import pytest

from napari_unet._widgets._evaluate import semantic_offset
from napari_unet._widgets._model import default_save_name
from napari_unet._widgets._state import NEW_MODEL_NAME, trained_name
from napari_unet._widgets._tasks import explain


@pytest.mark.parametrize(
    ("name", "proposed"),
    [("m.safetensors (fine-tuned)", "m-fine-tuned.safetensors"),
     ("run.v2 (fine-tuned)", "run.v2-fine-tuned.safetensors"),
     ("run.v2.safetensors", "run.v2.safetensors"),
     ("cells.PTH (fine-tuned)", "cells-fine-tuned.safetensors"),
     ("package.zip", "package.safetensors"),
     ("nuclei", "nuclei.safetensors"),
     (NEW_MODEL_NAME, "new-model.safetensors"),
     (f"{NEW_MODEL_NAME} (fine-tuned)", "new-model-fine-tuned.safetensors"),
     (trained_name(NEW_MODEL_NAME), "new-model-trained.safetensors"),
     ("new model (trained) (fine-tuned)", "new-model-fine-tuned.safetensors"),
     ("", "unet.safetensors")],
)  # fmt: skip
def test_the_save_name_keeps_the_name_and_marks_a_fine_tune(name, proposed):
    assert default_save_name(name) == proposed


def test_semantic_truth_conventions():
    binary = np.array([[0, 1], [1, 0]], np.uint8)
    assert semantic_offset(binary, 2, annotation=False)[0] == 1  # 0 = background, 1 = class 2
    assert semantic_offset(binary, 2, annotation=True) == (0, "")  # painted: as it is
    assert semantic_offset(binary + 1, 2, annotation=False) == (0, "")
    for truth, n_classes, said in [
        (binary * 3, 2, "instance labels"),
        (binary * 0, 2, "no labels"),
        (binary, 3, "binary mask"),
    ]:
        with pytest.raises(ValueError, match=said):
            semantic_offset(truth, n_classes, annotation=False)


def test_out_of_memory_advice_fits_the_task():
    error = RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
    finetune = explain(error, "Fine-tuning").error
    assert "tile size" not in finetune  # the Fine-tune section has none
    assert "CPU as device" in finetune and "live preview" in finetune
    assert "tile size" in explain(error, "Prediction").error
    assert "fewer base features" in explain(error, "Training").error  # a new model's run
    assert "tile size" not in explain(MemoryError(), "Loss weights").error


@pytest.mark.parametrize(
    ("name", "fine_tuned", "after"),
    [(NEW_MODEL_NAME, False, "new model (trained)"),
     ("new model (trained)", False, "new model (trained)"),
     ("new model (trained)", True, "new model (trained) (fine-tuned)"),
     ("new-model-trained.safetensors", False, "new-model-trained.safetensors (trained)"),
     ("tiny", False, "tiny (trained)"),
     ("nuclei", True, "nuclei (fine-tuned)"),
     ("nuclei (fine-tuned)", True, "nuclei (fine-tuned)"),
     ("cells.safetensors", True, "cells.safetensors (fine-tuned)")],
)  # fmt: skip
def test_a_trained_model_is_named_trained_not_untrained(name, fine_tuned, after):
    """A run that trained a model still learning marks it "(trained)", a fine-tune of a
    trained model "(fine-tuned)" (what the run was, not what the name says)."""
    assert trained_name(name, fine_tuned=fine_tuned) == after

"""The research variants of benchmarks/bench_isbi_scribbles.py stay runnable.

They are test doubles of private training functions, patched in by that script only
(its ``research_patches`` says why). A change to those private functions must fail here,
not in a benchmark run hours later: ``--pairwise`` once broke silently when
``_forward_loss`` gained its ``teacher`` argument.
"""

import sys
from pathlib import Path

import numpy as np
import pytest

from napari_unet import ModelConfig, TrainConfig, new_model
from napari_unet.training import loop, run_state, sampling
from napari_unet.training.loop import finetune
from napari_unet.training.sampling import PatchSampler

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import bench_isbi_scribbles as bench  # from the benchmarks folder

VARIANTS = {
    "none": [],
    "uniform": ["--sampling", "uniform"],
    "ema": ["--ema", "0.9"],
    "warmup": ["--warmup", "0.5"],
    "entropy": ["--entropy-weight", "0.5", "1", "1"],
    "pairwise": ["--pairwise", "1", "0.1", "2"],
    "membrane": ["--membrane-weight", "0.3"],
    "all": [
        *["--sampling", "uniform", "--ema", "0.9", "--warmup", "0.5"],
        *["--entropy-weight", "0.5", "1", "1", "--pairwise", "1", "0.1", "2"],
        *["--membrane-weight", "0.3"],
    ],
}

PATCHED = [
    (loop, "_apply_update"),
    (loop, "learning_rate_at"),
    (loop, "weighted_loss"),
    (loop, "_forward_loss"),
    (run_state.BestWeights, "restore"),
    (sampling, "weight_map"),
    (PatchSampler, "_pick_centre"),
]

#: The names each variant patches: the last-weights bookkeeping (``restore``) always.
PATCHED_BY = {
    "none": {"restore"},
    "uniform": {"restore", "_pick_centre"},
    "ema": {"restore", "_apply_update"},
    "warmup": {"restore", "learning_rate_at"},
    "entropy": {"restore", "weighted_loss"},
    "pairwise": {"restore", "_forward_loss"},
    "membrane": {"restore", "weight_map"},
    "all": {name for _, name in PATCHED},
}

ITERATIONS = 3


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_each_research_variant_trains_and_is_undone(variant):
    originals = [getattr(owner, name) for owner, name in PATCHED]
    rng = np.random.default_rng(0)
    image = rng.random((48, 48)).astype(np.float32)
    annotation = np.zeros((48, 48), np.uint8)
    annotation[5:40:6, 4:44] = 1
    annotation[8:40:6, 4:44] = 2
    model = new_model(ModelConfig(depth=1, base_features=2, padding="same"), seed=0)
    config = TrainConfig(
        seconds=None, iterations=ITERATIONS, patch_size=32, batch_size=2, device="cpu"
    )
    with bench.research_patches(bench.parse_arguments(VARIANTS[variant])):
        patched = {
            name
            for (owner, name), original in zip(PATCHED, originals)
            if getattr(owner, name) is not original
        }
        assert patched == PATCHED_BY[variant]
        # twice: the second run fine-tunes a trained model, so it distils from a teacher
        for seed in (0, 1):
            bench._LAST.clear()  # what this run keeps, not an earlier one's
            steps = list(finetune(model, [image], [annotation], config.replace(seed=seed)))
            assert [step.iteration for step in steps] == list(range(1, ITERATIONS + 1))
            assert np.isfinite(steps[-1].smoothed_loss)
            assert 0 <= bench._LAST["best_iteration"] <= ITERATIONS
            assert bench._LAST["state"].keys() == model.state_dict().keys()
            if patched & {"_apply_update"}:  # one EMA of this model, over every update
                assert bench._LAST["ema_of"] is model
                assert int(bench._LAST["ema"].n_averaged) == ITERATIONS
            else:
                assert bench._LAST.keys() == {"state", "best_iteration"}
    assert [getattr(owner, name) for owner, name in PATCHED] == originals

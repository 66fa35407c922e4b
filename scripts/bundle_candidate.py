"""Make a trained checkpoint the bundled model: its names, its data record, float16.

Usage::

    python benchmarks/bench_width.py --features 8 --minutes 90 --seed 1 --save em_f8_s1.safetensors
    python scripts/bundle_candidate.py em-membranes em_f8_s1.safetensors --tta \\
        --how "benchmarks/bench_width.py --features 8 --minutes 90 --seed 1"
    python scripts/calibrate_bundled.py em-membranes --write
    python scripts/choose_tta_transforms.py em-membranes --write   # with --tta

The weights are copied unchanged (stored as float16, as every bundled model). The
class names and description come from ``scripts/train_bundled.py``'s recipe; the record
of what the weights saw (``trained_on``, ``selected_on``, ``held_out_test``) is that of
the parts ``scripts/train_validated.py`` uses, so a candidate must have been trained on
the training part only and chosen on the validation part only (``bench_width.py`` does
both). Its background threshold is reset to 0.5: choose it afterwards with
``scripts/calibrate_bundled.py``. ``--tta``: the checkpoint asks Predict for test-time
augmentation (when the candidate was chosen with it, ``bench_width.py --score --tta``) over
all 8 rotations and flips; ``scripts/choose_tta_transforms.py`` may then choose the 4
rotations on the validation part.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from train_bundled import MODELS, RECIPES
from train_validated import SETUPS

from napari_unet import load_model, save_model


def bundle(name: str, checkpoint: str, how: str, output: Path, tta: bool = False) -> Path:
    model = load_model(checkpoint)
    setup, recipe = SETUPS[name], RECIPES[name]
    model.metadata.pop("source", None)
    model.metadata.pop("background_threshold_chosen_on", None)
    model.metadata["background_threshold"] = 0.5
    model.metadata.pop("test_time_augmentation", None)
    model.metadata.pop("test_time_transforms", None)
    if tta:
        model.metadata["test_time_augmentation"] = True
    model.metadata["parent"] = None
    model.metadata["class_names"] = recipe["class_names"]
    model.metadata["description"] = recipe["description"]
    training_part = setup["trained_on"].split(";")[0]
    model.metadata["trained_on"] = (
        f"{training_part}; weights chosen on {setup['validation']} ({how}); "
        f"held out, never used: {setup['test']}"
    )
    model.metadata["selected_on"] = setup["validation"]
    model.metadata["held_out_test"] = setup["test"]
    return save_model(model, output, half=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", choices=sorted(SETUPS))
    parser.add_argument("checkpoint")
    parser.add_argument("--how", required=True, help="the command that trained it")
    parser.add_argument("--tta", action="store_true", help="ask for test-time augmentation")
    parser.add_argument("--output", default=None, help="default: the bundled model's file")
    args = parser.parse_args()
    output = Path(args.output or MODELS / f"{args.model}.safetensors")
    print(f"wrote {bundle(args.model, args.checkpoint, args.how, output, args.tta)}")


if __name__ == "__main__":
    main()

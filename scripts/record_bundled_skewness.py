"""Record in a bundled model the skewness of the images it was trained on.

Usage::

    python scripts/record_bundled_skewness.py nuclei --write
    python scripts/record_bundled_skewness.py em-membranes --write

Training runs record the median skewness of their images' intensities
(``TrainingRun.image_skewness``) since 2026-12-05, so that Predict can note an image
skewed the other way (``napari_unet.core.contrast``: a bright-field image given to a
fluorescence model). The bundled models were trained before; this computes the value
from their training images (those of ``scripts/train_bundled.py``: ``nuclei`` the DSB
left half and the 8 synthetic images, ``em-membranes`` ISBI slices 00-14) and, with
``--write``, stores it in the model's last training run (weights unchanged, float16).
A rerun of ``train_bundled.py`` records it by itself.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from train_bundled import em_data, nuclei_data

from napari_unet import load_model, save_model
from napari_unet.core.contrast import training_skewness

MODELS = Path(__file__).resolve().parents[1] / "src" / "napari_unet" / "models"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", choices=("nuclei", "em-membranes"))
    parser.add_argument("--write", action="store_true", help="store the value in the model")
    args = parser.parse_args()
    images, _ = nuclei_data() if args.model == "nuclei" else em_data()
    skewness = round(training_skewness(images), 3)
    print(f"{args.model}: median skewness of its {len(images)} training images {skewness:+.3f}")
    if args.write:
        model = load_model(args.model)
        model.metadata.pop("source", None)
        model.metadata["training_history"][-1]["image_skewness"] = skewness
        print(f"wrote {save_model(model, MODELS / f'{args.model}.safetensors', half=True)}")


if __name__ == "__main__":
    main()

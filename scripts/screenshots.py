"""Screenshots of the U-Net dock for the documentation.

Run under a virtual display::

    xvfb-run -a -s "-screen 0 1600x1200x24" python scripts/screenshots.py

Loads synthetic nuclei, opens the U-Net dock, paints a few strokes, fine-tunes
a small new model for a short while, predicts, and saves one picture of the
whole window per section to ``docs/screenshots/{model,annotate,finetune,predict}.png``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import napari
import numpy as np
from qtpy.QtWidgets import QApplication

from napari_unet._widgets import UNetWidget
from napari_unet._widgets._state import NEW_MODEL_NAME
from napari_unet.config import TIME_BUDGET_SECONDS
from napari_unet.core.checkpoint import bundled_models
from napari_unet.io.data import simulate_scribbles, synthetic_nuclei
from napari_unet.training.weights import annotation_from_instances

OUTPUT = Path(__file__).resolve().parents[1] / "docs" / "screenshots"
WINDOW_SIZE = (1500, 980)


def wait_until(done: Callable[[], bool], timeout: float) -> None:
    """Process Qt events until ``done()`` is true or ``timeout`` seconds passed."""
    end = time.monotonic() + timeout
    while not done() and time.monotonic() < end:
        QApplication.processEvents()
        time.sleep(0.02)
    settle()


def settle(seconds: float = 0.5) -> None:
    """Let Qt draw everything (the canvas, the plot) before a screenshot."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        QApplication.processEvents()
        time.sleep(0.02)


def save(viewer: napari.Viewer, name: str) -> Path:
    """Screenshot of the whole window."""
    settle()
    path = OUTPUT / f"{name}.png"
    viewer.screenshot(path=str(path), canvas_only=False)
    print(f"wrote {path}")
    return path


def paint_strokes(image_shape: tuple[int, int], truth: np.ndarray) -> np.ndarray:
    """A few background and nucleus strokes, as a user would paint them."""
    dense = annotation_from_instances(truth)
    return simulate_scribbles(dense, np.random.default_rng(3), fraction=0.01, stroke_width=2)


def main(seconds: float) -> None:
    """Drive the dock through the loop and save the screenshots."""
    OUTPUT.mkdir(parents=True, exist_ok=True)
    image, truth = synthetic_nuclei(shape=(256, 256), n_nuclei=40, rng=0)
    viewer = napari.Viewer(title="napari-unet")
    viewer.window.resize(*WINDOW_SIZE)
    viewer.add_image(image, name="nuclei", colormap="gray")
    dock = UNetWidget(viewer)
    viewer.window.add_dock_widget(dock, name="U-Net", area="right")
    settle()
    viewer.reset_view()  # fit the image to the canvas as it is now, beside the dock

    # 1 Model: the bundled nuclei model if there is one, else a small new model
    if "nuclei" in bundled_models():
        dock.model.source.value = "nuclei"
    else:
        dock.model.source.value = NEW_MODEL_NAME
        dock.model.new_options.base_features.value = 16
        dock.model.new_options.depth.value = 3
    if (
        dock.model.source.value != dock.model.state.name
        or dock.model.source.value == NEW_MODEL_NAME
    ):
        dock.model.load()  # the bundled default is loaded already
    dock.show_section(dock.model)
    save(viewer, "model")

    # 2 Annotate: create the layer, paint strokes
    dock.show_section(dock.annotate)
    annotations = dock.annotate.create_annotation_layer()
    annotations.data = paint_strokes(image.shape, truth)
    dock.annotate.update_counts()
    save(viewer, "annotate")

    # 3 Fine-tune: a short run with the live preview and loss curve
    dock.show_section(dock.finetune)
    dock.finetune.settings.seconds.value = int(seconds)
    dock.finetune.start_finetune()
    wait_until(lambda: dock.finetune.worker is None, timeout=seconds + 120)
    save(viewer, "finetune")

    # 4 Predict: all outputs
    dock.show_section(dock.predict)
    annotations.visible = False  # Predict hides the fine-tune's preview itself
    dock.predict.run_prediction()
    wait_until(lambda: dock.predict.worker is None, timeout=300)
    save(viewer, "predict")
    viewer.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--seconds",
        type=float,
        default=TIME_BUDGET_SECONDS,
        help="fine-tuning budget (default: the dock's, %(default)g s)",
    )
    main(parser.parse_args().seconds)

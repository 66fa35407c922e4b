"""A new model's first run: iterations in the dock (live preview on) against the core alone.

The new-domain benchmark (``bench_scratch_vs_forest.py``) gives a new model 750 iterations,
what 60 s give ``finetune`` at 2 threads on an idle machine; a user trains in the dock, where
napari draws the loss curve and the live preview beside the run. Here one ISBI slice with
2 % scribbles trains a new model (``config.NEW_MODEL_CONFIG``) for ``--seconds`` in the dock
(``UNetWidget``, Xvfb) and through ``finetune`` in the same process, alternately; one JSON line
per run. Run under a virtual display::

    xvfb-run -a -s "-screen 0 1600x1200x24" python benchmarks/bench_first_minute.py \\
        --seconds 60 --repeats 2 --out FILE.jsonl [--no-preview] [--hidden]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
from bench_annotation_loop import write_record

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))


def _data():
    from napari_unet.io.data import load_isbi, simulate_scribbles
    from napari_unet.training.weights import annotation_from_binary

    images, labels = load_isbi([15])
    dense = annotation_from_binary(labels[0])  # 1 = membrane, 2 = cell
    return images[0], simulate_scribbles(dense, np.random.default_rng(0), fraction=0.02)


def core_run(image, strokes, seconds: float) -> dict:
    """Iterations of a new model's run through ``finetune`` alone."""
    from napari_unet.config import NEW_MODEL_CONFIG, TrainConfig
    from napari_unet.core.checkpoint import new_model
    from napari_unet.training.loop import finetune

    model = new_model(NEW_MODEL_CONFIG, seed=0)
    start = time.perf_counter()
    for _ in finetune(model, [image], [strokes], TrainConfig(seconds=seconds, seed=0)):
        pass
    wall = time.perf_counter() - start
    return {"where": "core", "iterations": model.info.training_history[-1].iterations, "wall": wall}


def dock_run(image, strokes, seconds: float, preview: bool = True, shown: bool = True) -> dict:
    """Iterations of a new model's run started from the dock (live preview on or off; the
    window shown, or hidden: then Xvfb's software OpenGL draws nothing)."""
    import napari
    from screenshots import WINDOW_SIZE, settle, wait_until

    from napari_unet._widgets import UNetWidget
    from napari_unet._widgets._state import NEW_MODEL_NAME

    viewer = napari.Viewer(title="first minute")
    viewer.window.resize(*WINDOW_SIZE)
    if not shown:
        viewer.window._qt_window.hide()
    viewer.add_image(image, name="isbi")
    dock = UNetWidget(viewer)
    viewer.window.add_dock_widget(dock, name="U-Net", area="right")
    settle()
    dock.model.source.value = NEW_MODEL_NAME
    dock.model.load()
    layer = dock.annotate.create_annotation_layer()
    layer.data = strokes
    dock.show_section(dock.finetune)
    dock.finetune.settings.seconds.value = int(seconds)
    dock.finetune.settings.live_preview.value = preview
    start = time.perf_counter()
    dock.finetune.start_finetune()
    wait_until(lambda: dock.finetune.worker is None, timeout=seconds * 4 + 60)
    wall = time.perf_counter() - start
    history = dock.model.state.model.info.training_history
    viewer.close()
    where = "dock" + ("" if preview else ", no preview") + ("" if shown else ", hidden")
    return {"where": where, "iterations": history[-1].iterations, "wall": wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", default=None)
    parser.add_argument(
        "--no-preview", action="store_true", help="the dock's runs without the live preview"
    )
    parser.add_argument("--hidden", action="store_true", help="the dock's window hidden")
    args = parser.parse_args()
    image, strokes = _data()
    for repeat in range(args.repeats):
        for where in ("dock", "core"):
            load = os.getloadavg()[0]
            if where == "dock":
                options = {"preview": not args.no_preview, "shown": not args.hidden}
                result = dock_run(image, strokes, args.seconds, **options)
            else:
                result = core_run(image, strokes, args.seconds)
            record = {**result, "repeat": repeat}
            record.update(seconds=args.seconds, load_before=round(load, 2))
            write_record(record, args.out)  # a JSON line, printed and appended to --out


if __name__ == "__main__":
    main()

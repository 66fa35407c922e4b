"""What importing napari-unet costs: time and memory of its light entry points.

napari imports the reader whenever a user opens a folder or a ``.zarr`` store (every folder
is offered to every reader that takes folders), and the sample data from its menu. Neither
needs the network, so neither should pay for PyTorch. Each case runs in a fresh interpreter
and measures the wall time and the growth of the resident set (``/proc/self/statm``) of its
step alone, after what napari itself has already imported (``napari``, ``dask.array``,
``zarr``, ``tifffile``):

``package``
    ``import napari_unet``.
``reader``
    ``napari_unet._reader.get_reader`` on a prediction store and its output folder, and the
    store's mask read (``np.asarray``), as napari does on *File > Open*.
``sample``
    both sample-data contributions called.
``model``
    ``napari_unet.load_model("nuclei")``: what the dock's first use costs, for scale.

Each case is run ``--repeats`` times, alternating between the source trees given with
``--tree LABEL=SRC`` (a ``src`` folder; e.g. one from ``git archive`` of an older commit),
so that the trees see the same machine load; medians are printed and written as JSON.

    python benchmarks/bench_import.py --tree current=src --tree before=/tmp/ref/src \\
        --repeats 7 --json benchmarks/results/import_cost.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent

PRELUDE = """
import os, sys, time, json
import numpy as np
def rss():
    return int(open('/proc/self/statm').read().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 2**20
import napari, dask.array, zarr, tifffile
start_rss, start = rss(), time.perf_counter()
"""

CASES = {
    "package": "import napari_unet\n",
    "reader": (
        "from napari_unet._reader import get_reader\n"
        "for path in (STORE, os.path.dirname(STORE)):\n"
        "    layers = get_reader(path)(path)\n"
        "    np.asarray(layers[-1][0])\n"
    ),
    "sample": (
        "import napari_unet._sample_data as sample\n"
        "sample.synthetic_nuclei_sample(); sample.cell_sample()\n"
    ),
    "model": "import napari_unet\nnapari_unet.load_model('nuclei')\n",
}

EPILOGUE = """
print(json.dumps({"seconds": time.perf_counter() - start, "mb": rss() - start_rss,
                  "torch": "torch" in sys.modules}))
"""


def make_store(folder: Path) -> Path:
    """A prediction store of a 256 x 256 synthetic image, written by the CLI."""
    import tifffile

    from napari_unet.cli import main
    from napari_unet.io.data import synthetic_nuclei

    image, _ = synthetic_nuclei(shape=(256, 256), n_nuclei=20, rng=0)
    tifffile.imwrite(folder / "nuclei.tif", image)
    argv = ["predict", str(folder / "nuclei.tif"), "--model", "nuclei"]
    if main([*argv, "--output", str(folder), "--output-format", "zarr"]) != 0:
        raise SystemExit("could not write the prediction store")
    return folder / "nuclei_prediction.zarr"


def run_case(case: str, source: str, store: Path) -> dict:
    """One fresh interpreter with ``source`` first on the path; the step's cost."""
    code = PRELUDE + f"STORE = {str(store)!r}\n" + CASES[case] + EPILOGUE
    environment = {**os.environ, "PYTHONPATH": str(Path(source).resolve())}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=environment, check=True
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--tree", action="append", metavar="LABEL=SRC", help="default: current=<repo>/src"
    )
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    trees = dict(tree.split("=", 1) for tree in args.tree or [f"current={HERE.parent / 'src'}"])
    runs: dict[str, dict[str, list[dict]]] = {case: {t: [] for t in trees} for case in args.cases}
    with tempfile.TemporaryDirectory() as folder:
        store = make_store(Path(folder))
        for _ in range(args.repeats):
            for case in args.cases:
                for label, source in trees.items():
                    runs[case][label].append(run_case(case, source, store))
    summary = []
    print("| case | tree | seconds (median) | MB (median) | loads PyTorch |")
    print("|---|---|---:|---:|---|")
    for case, by_tree in runs.items():
        for label, results in by_tree.items():
            seconds = statistics.median(r["seconds"] for r in results)
            megabytes = statistics.median(r["mb"] for r in results)
            torch_loaded = all(r["torch"] for r in results)
            print(f"| {case} | {label} | {seconds:.2f} | {megabytes:.0f} | {torch_loaded} |")
            summary.append(
                {"case": case, "tree": label, "seconds": seconds, "mb": megabytes,
                 "torch": torch_loaded, "runs": results}
            )  # fmt: skip
    if args.json:
        record = {"command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]), "trees": trees}
        args.json.write_text(json.dumps({**record, "cases": summary}, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

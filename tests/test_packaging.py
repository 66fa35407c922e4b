import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import napari_unet

ROOT = Path(__file__).resolve().parents[1]


def test_top_level_manifest_is_the_packaged_one():
    top = (ROOT / "napari.yaml").read_text(encoding="utf-8")
    packaged = (ROOT / "src" / "napari_unet" / "napari.yaml").read_text(encoding="utf-8")
    assert top == packaged


def test_manifest_is_valid_and_its_python_names_resolve():
    from npe2 import PluginManifest

    manifest = PluginManifest.from_file(ROOT / "src" / "napari_unet" / "napari.yaml")
    assert manifest.name == "napari-unet"
    for command in manifest.contributions.commands:
        module, _, attribute = command.python_name.partition(":")
        imported = __import__(module, fromlist=[attribute])
        assert callable(getattr(imported, attribute)), command.python_name


GUI_TOOLKITS = ("napari", "qtpy", "PyQt5", "PyQt6", "PySide2", "PySide6", "magicgui")


def _python_succeeds(code: str) -> None:
    """Run ``code`` in a fresh interpreter (nothing imported yet); it must exit with 0."""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_core_import_pulls_no_gui_toolkit():
    """Nor bioimageio: the optional export/import imports it only when used."""
    code = (
        "import sys, napari_unet, napari_unet.cli, napari_unet.training.loop, "
        "napari_unet.cli.demo, napari_unet.io.bioimageio; napari_unet.cli.build_parser(); "
        "bad = [m for m in sys.modules if m.split('.')[0] in "
        f"{(*GUI_TOOLKITS, 'bioimageio')!r}]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    _python_succeeds(code)


@pytest.mark.parametrize("subpackage", ["core", "training", "io", "evaluation", "cli"])
def test_no_subpackage_but_widgets_imports_napari_or_qt(subpackage):
    """Every module of each subpackage (all but ``_widgets``) imports without a GUI toolkit."""
    code = (
        "import importlib, pkgutil, sys\n"
        f"package = importlib.import_module('napari_unet.{subpackage}')\n"
        "for module in pkgutil.walk_packages(package.__path__, package.__name__ + '.'):\n"
        "    if not module.name.endswith('.__main__'):\n"
        "        importlib.import_module(module.name)\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in "
        f"{GUI_TOOLKITS!r}]\n"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    _python_succeeds(code)


def _imported_subpackages(path: Path) -> set[str]:
    """The ``napari_unet`` subpackages a module of a subpackage imports (lazily or not)."""
    import ast

    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 2:  # from ..x import y
            names = [node.module] if node.module else [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module.removeprefix("napari_unet.")] * node.module.startswith(
                "napari_unet."
            )
        elif isinstance(node, ast.Import):
            names = [a.name.removeprefix("napari_unet.") for a in node.names]
            names = [n for a, n in zip(node.names, names, strict=True) if a.name != n]
        else:
            continue
        found.update(name.split(".")[0] for name in names)
    return found


def test_core_imports_no_io_training_evaluation_or_cli_module():
    """The layers: training, io, evaluation and the CLI build on the core, never the reverse.

    Formats of an outer layer reach the core by registering (``register_model_format``).
    """
    for path in (ROOT / "src" / "napari_unet" / "core").glob("*.py"):
        bad = _imported_subpackages(path) & {"io", "training", "evaluation", "cli", "_widgets"}
        assert not bad, f"{path.name} imports {sorted(bad)}"


def test_core_load_model_opens_bioimageio_packages_without_importing_io_itself():
    """The registration happens on ``import napari_unet`` (any import of the core).

    It registers a loader that imports ``io.bioimageio`` (and PyTorch) only when used.
    """
    _python_succeeds(
        "import sys, napari_unet.core.checkpoint as c\n"
        "registered = list(c._MODEL_FORMATS)  # before anything names io.bioimageio\n"
        "assert 'napari_unet.io.bioimageio' not in sys.modules\n"
        "from napari_unet.io.bioimageio import is_bioimageio_package\n"
        "detectors = [detect for detect, load in registered]\n"
        "sys.exit(0 if is_bioimageio_package in detectors else 1)"
    )


@pytest.mark.parametrize(
    "code",
    [
        "import napari_unet",
        "import napari_unet._reader",
        "import napari_unet._sample_data as s; s.synthetic_nuclei_sample(); s.cell_sample()",
    ],
)
def test_package_reader_and_sample_data_do_not_load_pytorch(code):
    """napari imports the reader for every folder and .zarr a user opens: no PyTorch.

    The public names of ``napari_unet`` are imported when first used.
    """
    _python_succeeds(f"{code}\nimport sys\nsys.exit(1 if 'torch' in sys.modules else 0)")


def test_public_names_import_on_first_use():
    _python_succeeds(
        "import sys, napari_unet as nu\n"
        "assert 'napari_unet.training.loop' not in sys.modules\n"
        "from napari_unet import finetune\n"
        "assert finetune is sys.modules['napari_unet.training.loop'].finetune\n"
        "assert set(nu.__all__) <= set(dir(nu))\n"
        "missing = [name for name in nu.__all__ if getattr(nu, name, None) is None]\n"
        "sys.exit(1 if missing else 0)"
    )
    with pytest.raises(AttributeError, match="no attribute 'no_such_name'"):
        napari_unet.no_such_name  # noqa: B018


def test_submodules_are_reached_through_the_package_as_before():
    """``import napari_unet`` then attribute chains, as the README and messages write them
    (``napari_unet.io.bioimageio.export_bioimageio``)."""
    _python_succeeds(
        "import napari_unet as nu\n"
        "chains = [nu.io.bioimageio.export_bioimageio, nu.io.data.to_channels_first,\n"
        "          nu.io.batch.PredictOptions, nu.io.volumes.segment_stack,\n"
        "          nu.core.checkpoint.load_model, nu.training.loop.finetune,\n"
        "          nu.evaluation.metrics.evaluate]\n"
        "assert all(callable(found) for found in chains)\n"
        "assert not hasattr(nu.io, 'no_such_module') and not hasattr(nu, '__wrapped__')"
    )


def test_a_patch_undone_leaves_no_trace_in_the_package(monkeypatch):
    import napari_unet.core.inference as inference

    real = inference.predict
    with monkeypatch.context() as patch:
        patch.setattr(inference, "predict", lambda *args: "patched")
        assert napari_unet.predict() == "patched"
    assert napari_unet.predict is real


def test_package_type_checks():
    """mypy, as configured in pyproject.toml ([tool.mypy]), finds no error in the package.

    About 25 s without mypy's cache (a fresh checkout), about 1 s with it.
    """
    result = subprocess.run(
        [sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_qt_binding_in_runtime_dependencies():
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    runtime = " ".join(project["dependencies"]).lower()
    for binding in ("pyqt5", "pyqt6", "pyside2", "pyside6", "napari[all]", "napari[pyqt"):
        assert binding not in runtime
    assert any("pyqt6" in dep.lower() for dep in project["optional-dependencies"]["testing"])


def test_sample_data_contributions():
    from napari_unet._sample_data import cell_sample, synthetic_nuclei_sample

    (image, _, kind_image), (truth, _, kind_labels) = synthetic_nuclei_sample()
    assert kind_image == "image" and kind_labels == "labels"
    assert image.shape == truth.shape and truth.max() > 10
    assert cell_sample()[0][0].ndim == 2


def test_cli_entry_point_runs():
    result = subprocess.run(["napari-unet", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "predict" in result.stdout
    manifest = yaml.safe_load((ROOT / "napari.yaml").read_text(encoding="utf-8"))
    assert manifest["name"] == "napari-unet"


def test_built_wheel_ships_manifest_and_entry_point(tmp_path):
    import zipfile

    from npe2 import PluginManifest

    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
    )
    assert build.returncode == 0, build.stderr
    (wheel,) = tmp_path.glob("napari_unet-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = archive.read(next(n for n in names if n.endswith(".dist-info/METADATA")))
        assert f"\nVersion: {napari_unet.__version__}\n" in metadata.decode()  # the one source
        manifest = archive.read("napari_unet/napari.yaml")
        entry_points = next(n for n in names if n.endswith("entry_points.txt"))
        assert "napari_unet:napari.yaml" in archive.read(entry_points).decode()
    (tmp_path / "napari.yaml").write_bytes(manifest)
    assert PluginManifest.from_file(tmp_path / "napari.yaml").name == "napari-unet"
    assert not any("shared/data" in n or n.endswith((".png", ".tif")) for n in names)


def test_sdist_carries_what_the_tests_read(tmp_path):
    """An sdist's tests run as the repository's: manifest copy, conftest, benchmarks, scripts.

    Built from a copy of the checkout's files (git's list, or every file of an unpacked
    sdist), so that no egg-info left by an earlier build decides what goes in.
    """
    import os
    import shutil
    import tarfile

    from setuptools import build_meta

    if (ROOT / ".git").exists():
        listed = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
    else:  # an unpacked sdist: its files are the checkout (build leftovers aside)
        leftovers = ("__pycache__", ".egg-info", ".pytest_cache", "build", "dist")
        listed = [
            str(path.relative_to(ROOT))
            for path in ROOT.rglob("*")
            if path.is_file() and not any(part.endswith(leftovers) for part in path.parts)
        ]
    checkout = tmp_path / "checkout"
    for name in listed:
        if (ROOT / name).is_file():
            (checkout / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, checkout / name)
    cwd = Path.cwd()
    try:
        os.chdir(checkout)
        archive_name = build_meta.build_sdist(str(tmp_path))
    finally:
        os.chdir(cwd)
    with tarfile.open(tmp_path / archive_name) as archive:
        top = archive.getnames()[0].split("/")[0]
        names = {name.removeprefix(f"{top}/") for name in archive.getnames()}
    needed = {"napari.yaml", "tests/conftest.py", "docs/errors.md", "docs/napari.md"}
    needed |= {"BENCHMARKS.md", "docs/cluster.md"}  # pages the README links to
    for folder in ("tests", "benchmarks", "scripts"):
        needed |= {str(path.relative_to(ROOT)) for path in (ROOT / folder).glob("*.py")}
    assert needed <= names, sorted(needed - names)
    assert not any(name.endswith((".png", ".tif", ".jsonl")) for name in names)


def test_relative_links_of_the_user_docs_lead_to_files():
    """README.md and docs/*.md link to files that exist (a moved page breaks no link).

    An unpacked sdist carries the pages but not their pictures (see above): there the
    links to pictures are left out.
    """
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    pictures_here = (ROOT / ".git").exists()
    missing = []
    for page in pages:
        for match in re.finditer(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text(encoding="utf-8")):
            target = match.group(1)
            if not pictures_here and target.endswith(".png"):
                continue
            if "://" not in target and not (page.parent / target).exists():
                missing.append(f"{page.relative_to(ROOT)}: {target}")
    assert len(pages) > 3 and missing == []

"""The Model section's file dialogs start in the folder last used, Save proposes a name no
file has, and a wrong file is answered with every kind of file that loads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from magicgui.backends._qtpy.widgets import QFILE_DIALOG_MODES
from magicgui.types import FileDialogMode

from napari_unet._widgets import _model, model_state
from napari_unet._widgets._model import FROM_FILE, ModelWidget, default_save_name
from napari_unet.core.checkpoint import save_model

pytestmark = pytest.mark.gui

EVERY_KIND = ".safetensors, .pt or .pth checkpoint, or a bioimage.io .zip package"


class Dialogs:
    """QFileDialog's static functions, answering ``answer`` and noting where they started."""

    def __init__(self, monkeypatch) -> None:
        self.started: list[tuple[str, str]] = []  # (which, the folder or file proposed)
        self.answer = ""
        monkeypatch.setattr(_model.QFileDialog, "getOpenFileName", self._open)
        monkeypatch.setattr(_model.QFileDialog, "getSaveFileName", self._save)
        # the dialog magicgui's FileEdit opens by itself (it holds the Qt function)
        monkeypatch.setitem(QFILE_DIALOG_MODES, FileDialogMode.EXISTING_FILE, self._open)

    def _open(self, _parent, _title, directory, _filter):
        self.started.append(("open", directory))
        return self.answer, ""

    def _save(self, _parent, _title, proposed, _filter):
        self.started.append(("save", proposed))
        return self.answer, ""


def test_the_dialogs_start_in_the_folder_last_used(dock, tmp_path, monkeypatch):
    viewer, widget = dock
    panel = widget.model
    dialogs = Dialogs(monkeypatch)
    saved_in, loaded_from = tmp_path / "saved", tmp_path / "loaded"
    saved_in.mkdir(), loaded_from.mkdir()
    dialogs.answer = str(saved_in / "mine.safetensors")
    panel.save_button.changed.emit(True)
    assert (saved_in / "mine.safetensors").is_file()
    panel.source.value = FROM_FILE
    dialogs.answer = ""
    panel.checkpoint_file.choose_btn.changed.emit(True)  # Select file
    assert dialogs.started[-1] == ("open", str(saved_in))  # not the working directory

    checkpoint = save_model(model_state(viewer).model, loaded_from / "other.safetensors")
    dialogs.answer = str(checkpoint)
    panel.checkpoint_file.choose_btn.changed.emit(True)
    assert panel.checkpoint_file.value == checkpoint
    assert panel.load()
    dialogs.answer = ""
    panel.save_button.changed.emit(True)
    assert Path(dialogs.started[-1][1]).parent == loaded_from

    reopened = ModelWidget(viewer)  # a dock closed and opened again: the same folder
    reopened.checkpoint_file.choose_btn.changed.emit(True)
    assert dialogs.started[-1] == ("open", str(loaded_from))


def opened_from_a_folder(viewer, data: Path) -> Path:
    """``data``, made, holding an image the viewer opens from there (File → Open)."""
    data.mkdir()
    np.save(data / "cells.npy", np.zeros((16, 16), np.float32))
    viewer.open(str(data / "cells.npy"))
    return data


def test_with_no_folder_used_the_dialogs_start_beside_the_data(
    make_napari_viewer, tmp_path, monkeypatch
):
    viewer = make_napari_viewer()
    data = opened_from_a_folder(viewer, tmp_path / "data")
    panel = ModelWidget(viewer)
    dialogs = Dialogs(monkeypatch)
    panel.checkpoint_file.choose_btn.changed.emit(True)
    assert dialogs.started == [("open", str(data))]


def test_save_passes_over_a_data_folder_the_user_cannot_write_to(
    make_napari_viewer, tmp_path, monkeypatch
):
    from napari_unet._widgets import _folders

    viewer = make_napari_viewer()
    data = opened_from_a_folder(viewer, tmp_path / "shared-data")
    monkeypatch.chdir(tmp_path)
    read_only = {data}  # as a data share mounted read-only (root may write anywhere)
    monkeypatch.setattr(_folders.os, "access", lambda path, _mode: Path(path) not in read_only)
    panel = ModelWidget(viewer)
    dialogs = Dialogs(monkeypatch)
    panel.save_button.changed.emit(True)
    assert Path(dialogs.started[-1][1]).parent == tmp_path  # the working directory
    panel.checkpoint_file.choose_btn.changed.emit(True)
    assert dialogs.started[-1] == ("open", str(data))  # a model may be read from there
    read_only.clear()
    panel.save_button.changed.emit(True)
    assert Path(dialogs.started[-1][1]).parent == data


def test_started_from_a_desktop_launcher_the_dialogs_start_at_home(
    make_napari_viewer, tmp_path, monkeypatch
):
    """A napari started from a launcher runs in /, where no model belongs (nor may be
    written): with no folder of a model or image known, the dialogs start at home."""
    viewer = make_napari_viewer()
    monkeypatch.chdir("/")
    monkeypatch.setenv("HOME", str(tmp_path))
    panel = ModelWidget(viewer)
    dialogs = Dialogs(monkeypatch)
    panel.checkpoint_file.choose_btn.changed.emit(True)
    assert dialogs.started == [("open", str(tmp_path))]
    panel.save_button.changed.emit(True)
    assert Path(dialogs.started[-1][1]).parent == tmp_path
    gone = tmp_path / "gone"  # a working directory removed since napari started
    gone.mkdir()
    monkeypatch.chdir(gone)
    gone.rmdir()
    panel.checkpoint_file.choose_btn.changed.emit(True)
    assert dialogs.started[-1] == ("open", str(tmp_path))


def test_save_proposes_a_name_no_file_has(dock, tmp_path, monkeypatch):
    viewer, widget = dock
    dialogs = Dialogs(monkeypatch)
    loaded = save_model(model_state(viewer).model, tmp_path / "m-fine-tuned.safetensors")
    widget.model.source.value = FROM_FILE
    widget.model.checkpoint_file.value = loaded
    assert widget.model.load()
    state = model_state(viewer)
    state.name = f"{state.name} (fine-tuned)"  # fine-tuned again, as Fine-tune names it
    widget.model.save_button.changed.emit(True)
    assert dialogs.started[-1] == ("save", str(tmp_path / "m-fine-tuned-2.safetensors"))
    (tmp_path / "m-fine-tuned-2.safetensors").write_bytes(b"")
    widget.model.save_button.changed.emit(True)
    assert dialogs.started[-1] == ("save", str(tmp_path / "m-fine-tuned-3.safetensors"))


@pytest.mark.parametrize(
    ("name", "proposed"),
    [("m-fine-tuned.safetensors (fine-tuned)", "m-fine-tuned.safetensors"),
     ("model_finetuned.pt (fine-tuned)", "model-fine-tuned.safetensors"),
     ("m-fine-tuned-2.safetensors (fine-tuned)", "m-fine-tuned.safetensors"),
     ("new-model-trained.safetensors (trained)", "new-model-trained.safetensors"),
     ("new-model-trained.safetensors (fine-tuned)", "new-model-fine-tuned.safetensors"),
     ("resnet-pretrained (fine-tuned)", "resnet-pretrained-fine-tuned.safetensors")],
)  # fmt: skip
def test_a_run_mark_is_never_doubled(name, proposed):
    assert default_save_name(name) == proposed


def test_a_wrong_file_is_told_every_kind_that_loads(dock, tmp_path, notifications):
    _, widget = dock
    panel = widget.model
    panel.source.value = FROM_FILE
    panel.checkpoint_file.value = tmp_path / "missing.safetensors"
    assert panel.load() is False
    assert any(EVERY_KIND in str(n.message) for n in notifications)
    notifications.clear()
    keras = tmp_path / "weights.h5"
    keras.write_bytes(bytes(range(256)))
    panel.checkpoint_file.value = keras
    assert panel.load() is False
    message = next(str(n.message) for n in notifications if "Could not load" in str(n.message))
    assert EVERY_KIND in message


def test_save_says_which_masks_keep_separations_the_file_alone_does_not_draw(
    dock, tmp_path, notifications
):
    from napari_unet._widgets._last_mask import remember_model
    from napari_unet.core.continuity import lineage

    viewer, widget = dock
    model = model_state(viewer).model
    own = viewer.add_labels(np.zeros((8, 8), np.uint8), name="discs mask")
    remember_model(own, lineage(model), continued=False)
    assert widget.model.save(tmp_path / "a") is not None
    said = notifications[-1].message  # its own mask: nothing kept
    assert said.endswith(f"“a.safetensors” in {tmp_path}.")
    remember_model(own, lineage(model), continued=True)  # predicted after a fine-tune
    other = viewer.add_labels(np.zeros((8, 8), np.uint8), name="other mask")
    remember_model(other, ["another model"], continued=True)
    assert widget.model.save(tmp_path / "b") is not None
    said = notifications[-1].message
    assert f"“b.safetensors” in {tmp_path}. “discs mask” also keeps separations" in said
    assert "“other mask”" not in said and "File → Save Selected Layers" in said

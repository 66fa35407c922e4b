"""The Model section: the name and folder the Save dialog proposes; a missing extra on load."""

from __future__ import annotations

import pytest

from helpers import annotate, as_trained, run, tiny_model
from napari_unet._widgets import _model, model_state
from napari_unet._widgets._model import FROM_FILE
from napari_unet._widgets._state import NEW_MODEL_NAME, trained_name
from napari_unet.core.checkpoint import save_model

pytestmark = pytest.mark.gui


def test_save_proposes_a_new_name_beside_the_loaded_file(dock, tmp_path, monkeypatch):
    viewer, widget = dock
    original = save_model(model_state(viewer).model, tmp_path / "m.safetensors")
    widget.model.source.value = FROM_FILE
    widget.model.checkpoint_file.value = original
    assert widget.model.load()
    state = model_state(viewer)
    state.name = f"{state.name} (fine-tuned)"  # as the Fine-tune section names it
    proposed = []

    def dialog(_parent, _title, default, _filter):
        proposed.append(default)
        return "", ""

    monkeypatch.setattr(_model.QFileDialog, "getSaveFileName", dialog)
    widget.model.save_button.changed.emit(True)
    assert proposed == [str(tmp_path / "m-fine-tuned.safetensors")]  # not "m.safetensors"


def test_a_missing_optional_extra_is_a_message_not_a_traceback(
    dock, tmp_path, monkeypatch, notifications
):
    viewer, widget = dock
    hint = "bioimage.io export/import needs bioimageio.core: pip install 'bioimageio.core>=0.11'"

    def load_model(_path):
        raise ImportError(hint)

    monkeypatch.setattr(_model, "load_model", load_model)
    package = tmp_path / "model.zip"
    package.write_bytes(b"PK")
    widget.model.source.value = FROM_FILE
    widget.model.checkpoint_file.value = package
    before = model_state(viewer).name
    assert widget.model.load() is False
    assert any(hint in str(n.message) for n in notifications)
    assert model_state(viewer).name == before


def test_details_are_behind_a_button_and_follow_the_current_model(dock):
    _, widget = dock
    panel = widget.model
    assert panel.info.text().startswith("Current model: <b>tiny</b>")
    assert panel.details.isHidden() and "Training history" in panel.details.text()
    panel.details_button.changed.emit(True)
    assert not panel.details.isHidden() and panel.details_button.text == _model.HIDE_DETAILS
    panel.details_button.changed.emit(True)
    assert panel.details.isHidden() and panel.details_button.text == _model.SHOW_DETAILS
    panel.source.value = "nuclei"
    assert panel.load()
    assert panel.info.text().startswith("Current model: <b>nuclei</b>")
    assert "2,195 iterations" in panel.details.text()  # the bundled model's first run


def test_a_new_dock_shows_where_the_current_model_came_from(dock, tmp_path):
    from napari_unet._widgets._model import ModelWidget

    viewer, widget = dock
    state = model_state(viewer)
    widget.model.source.value = "nuclei"
    assert widget.model.load()
    state.name += " (fine-tuned)"  # as the Fine-tune section names it
    reopened = ModelWidget(viewer)  # a dock closed and opened again
    assert reopened.source.value == "nuclei"  # not the first entry, em-membranes
    path = save_model(state.model, tmp_path / "mine.safetensors")
    widget.model.source.value = FROM_FILE
    widget.model.checkpoint_file.value = path
    assert widget.model.load()
    reopened = ModelWidget(viewer)
    assert reopened.source.value == FROM_FILE and reopened.checkpoint_file.value == path
    assert reopened.load_button.text == "Load model"
    state.set_model(tiny_model(), trained_name(NEW_MODEL_NAME))  # a new model, trained here
    reopened = ModelWidget(viewer)
    assert reopened.source.value == NEW_MODEL_NAME  # where it came from, so the button says
    assert reopened.source.native.currentText() == "new model"  # not "(untrained)" once trained
    assert reopened.load_button.text == "Make a new, untrained model"  # what it would do


def test_loading_the_current_checkpoint_file_again_adds_nothing_to_go_back_to(dock, tmp_path):
    viewer, widget = dock
    state = model_state(viewer)
    path = save_model(state.model, tmp_path / "m.safetensors")
    widget.model.source.value = FROM_FILE
    widget.model.checkpoint_file.value = path
    assert widget.model.load()
    history = list(state.history)
    model = state.model
    assert widget.model.load()  # the same file, unchanged since
    assert state.history == history and state.model is model
    state.name += " (fine-tuned)"
    assert widget.model.load()  # after a fine-tune it is loaded again, the tuned one kept
    assert len(state.history) == len(history) + 1 and state.model is not model


def test_a_saved_model_still_learning_is_named_trained_after_loading_a_trained_one_fine_tuned(
    qtbot, dock, tmp_path
):
    """The name says what the run was (the model's history), not what the name says: a
    still-learning new model loaded from its file is trained, a trained one fine-tuned."""
    viewer, widget = dock
    state, finetune, panel = model_state(viewer), widget.finetune, widget.model
    annotate(viewer, widget)
    finetune.settings.iterations.value = 2
    panel.use_model(tiny_model(), NEW_MODEL_NAME)
    run(qtbot, finetune, finetune.start_finetune)
    assert state.name == "new model (trained)"  # 2 iterations: still learning
    files = {"new-model-trained": ("trained", state.model)}  # as Save proposes it
    files["trained-elsewhere"] = ("fine-tuned", as_trained(tiny_model()))
    for file, (expected, model) in files.items():
        panel.use_model(model, "saved")
        path = panel.save(tmp_path / file)
        panel.source.value = FROM_FILE
        panel.checkpoint_file.value = path
        assert panel.load() and state.name == path.name
        run(qtbot, finetune, finetune.start_finetune)
        assert state.name == f"{path.name} ({expected})"


def test_loading_a_model_first_thing_keeps_no_unused_default_model_to_go_back_to(
    make_napari_viewer,
):
    from napari_unet._widgets._model import ModelWidget
    from napari_unet.core.checkpoint import bundled_models

    for used in (False, True):
        viewer = make_napari_viewer()
        panel, state = ModelWidget(viewer), model_state(viewer)  # it shows the default model
        default = state.name
        if used:  # e.g. predicted with: the user had it
            assert state.begin_task("predicting")
            state.end_task()
        panel.source.value = next(name for name in bundled_models() if name != default)
        assert panel.load()
        assert [entry.name for entry in state.history] == ([default] if used else [])
        assert panel.back_button.enabled is used
        if not used:
            assert panel.history_label.text() == "No earlier model in this session."
            loaded = state.name
            panel.source.value = default  # a model the user loaded is kept, as before
            assert panel.load() and [entry.name for entry in state.history] == [loaded]


def test_a_missing_file_and_a_picture_are_named_as_what_they_are(dock, tmp_path, notifications):
    viewer, widget = dock
    before = model_state(viewer).name
    widget.model.source.value = FROM_FILE
    widget.model.checkpoint_file.value = tmp_path / "moved.safetensors"
    assert widget.model.load() is False
    said = [str(n.message) for n in notifications]
    assert said[-1].startswith(f"No file at {tmp_path / 'moved.safetensors'}")
    picture = tmp_path / "slice.png"
    picture.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(32))
    widget.model.checkpoint_file.value = picture
    assert widget.model.load() is False
    said = str(notifications[-1].message)
    assert "not a model" in said and said.count("A model is") == 1  # the list said once
    assert model_state(viewer).name == before


def test_saving_as_pt_writes_a_safetensors_file_of_that_name(dock, tmp_path):
    _viewer, widget = dock
    written = widget.model.save(tmp_path / "mine.pt")
    assert written == tmp_path / "mine.safetensors" and written.is_file()
    assert widget.model.save(tmp_path / "mine.v2") == tmp_path / "mine.v2.safetensors"


def test_save_names_the_file_in_the_panel_and_says_the_strokes_are_not_in_it(
    qtbot, dock, tmp_path, notifications
):
    viewer, widget = dock
    panel = widget.model
    panel.save(tmp_path / "mine.safetensors")
    assert f"Saved as “mine.safetensors” in {tmp_path}" in panel.info.text()
    assert "strokes" not in str(notifications[-1].message)  # none painted
    annotate(viewer, widget)
    panel.save(tmp_path / "mine.safetensors")
    said = str(notifications[-1].message)
    assert said.startswith(f"Saved the model as “mine.safetensors” in {tmp_path}.")
    assert "save “discs annotations” too" in said
    run(qtbot, widget.finetune, widget.finetune.start_finetune)  # the model changed since
    assert "Saved as" not in panel.info.text()

"""The Model section: choose, inspect, save and go back to U-Net models."""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

import napari
from magicgui.types import FileDialogMode
from magicgui.widgets import ComboBox, Container, FileEdit, PushButton
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QFileDialog, QLabel, QVBoxLayout, QWidget

from ..core.checkpoint import (
    CheckpointError,
    NotAModelError,
    bundled_models,
    load_model,
    new_model,
    save_model,
)
from ..core.model import UNet
from ._folders import dialog_folder
from ._model_text import after_save_words, describe_model, model_details
from ._new_model import NewModelOptions
from ._state import (
    FINE_TUNED_MARK,
    NEW_MODEL_NAME,
    TRAINED_MARK,
    UNTRAINED_MARK,
    model_state,
    real_viewer,
    trained_name,
)

FROM_FILE = "checkpoint file…"
SHOW_DETAILS, HIDE_DETAILS = "Show details ▸", "Hide details ▾"
CHECKPOINT_SUFFIXES = (".safetensors", ".pt", ".pth", ".zip")
"""What :func:`~napari_unet.core.checkpoint.load_model` reads (bioimage.io packages: .zip)."""

ACCEPTED_WORDS = ".safetensors, .pt or .pth checkpoint, or a bioimage.io .zip package"
"""Every file :data:`CHECKPOINT_SUFFIXES` names, in a user's words."""

CHECKPOINT_FILTER = (
    f"U-Net checkpoints ({' '.join('*' + suffix for suffix in CHECKPOINT_SUFFIXES)});;All files (*)"
)

RUN_MARK_IN_NAME = re.compile(r"([-_ ]?fine[-_ ]?tuned|[-_ ]trained)(-\d+)?$", re.IGNORECASE)
"""A file name's end saying a run changed the model ("-fine-tuned", "_finetuned",
"-trained"), with the number a save beside an existing file added ("-fine-tuned-2")."""


class ModelWidget(QWidget):
    """Choose the U-Net (bundled, new or from a file), see what it is, save it, go back.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
        The viewer whose shared model (see :func:`model_state`) this widget manages.
    """

    def __init__(self, viewer: napari.viewer.Viewer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = real_viewer(viewer)
        self.state = model_state(self.viewer)
        # the new-model entry reads "new model": it stays chosen once that model is trained
        choices = [(name, name) for name in bundled_models()]
        choices += [("new model", NEW_MODEL_NAME), (FROM_FILE, FROM_FILE)]
        self.source = ComboBox(label="Model", choices=choices)
        self.checkpoint_file = FileEdit(
            label="File",
            mode=FileDialogMode.EXISTING_FILE,
            filter=CHECKPOINT_FILTER,
        )
        # its Select file button opens our dialog, in the folder last used: magicgui's own
        # (a private handler, kept should it be renamed) starts in the working directory
        magicgui_dialog = getattr(self.checkpoint_file, "_on_choose_clicked", None)
        if magicgui_dialog is not None:
            self.checkpoint_file.choose_btn.changed.disconnect(magicgui_dialog)
            self.checkpoint_file.choose_btn.changed.connect(self.choose_checkpoint)
        self.new_options = NewModelOptions()
        self.load_button = PushButton(text="Load model")
        self.save_button = PushButton(text="Save model…")
        self.back_button = PushButton(text="Go back to the previous model")
        self.history_label = QLabel()
        self.history_label.setWordWrap(True)
        self.info = _rich_label()
        self.details = _rich_label()
        self.details_button = PushButton(text=SHOW_DETAILS)
        self.details_button.tooltip = "Architecture, input sizes and training runs"
        self.details.setVisible(False)
        self._build_layout()
        self.source.changed.connect(self._show_source_options)
        self.load_button.changed.connect(self.load)
        self.save_button.changed.connect(self._ask_and_save)
        self.back_button.changed.connect(self.go_back)
        self.details_button.changed.connect(self._toggle_details)
        self._saved_as: Path | None = None  # the file the current model was last saved to
        self.state.model_changed.connect(self._forget_saved)  # first: refresh_info reads it
        self.state.model_changed.connect(self.refresh_info)
        self.state.history_changed.connect(self._update_buttons)
        self.state.busy_changed.connect(self._update_buttons)
        self.refresh_info()
        self._show_source_options()

    def _build_layout(self) -> None:
        layout = QVBoxLayout(self)
        choose = Container(widgets=[self.source, self.checkpoint_file])
        layout.addWidget(choose.native)
        layout.addWidget(self.new_options.native)
        layout.addWidget(self.load_button.native)
        layout.addWidget(self.info)
        layout.addWidget(self.details_button.native)
        layout.addWidget(self.details)
        layout.addWidget(self.save_button.native)
        layout.addWidget(self.back_button.native)
        layout.addWidget(self.history_label)
        layout.addStretch(1)

    def _select_current_source(self) -> None:
        """Show where the current model came from: its bundled name (also once it is
        fine-tuned), the new-model entry, or its checkpoint file."""
        base = self.state.name.removesuffix(FINE_TUNED_MARK)
        source = self.state.model.info.source if self.state.has_model else None
        if base in bundled_models():
            self.source.value = base
        elif base in (NEW_MODEL_NAME, trained_name(NEW_MODEL_NAME)):
            self.source.value = NEW_MODEL_NAME
        elif source and Path(source).is_file():
            self.source.value = FROM_FILE
            self.checkpoint_file.value = Path(source)

    def _show_source_options(self, *_: Any) -> None:
        new = self.source.value == NEW_MODEL_NAME
        self.checkpoint_file.visible = self.source.value == FROM_FILE
        self.new_options.visible = new
        # what the button does with the new-model entry: a fresh, untrained model (the
        # entry stays chosen once the user's new model is trained)
        self.load_button.text = "Make a new, untrained model" if new else "Load model"

    # ---- actions -------------------------------------------------------------
    def load(self, *_: Any) -> bool:
        """Make the model chosen in the widget current; False (and a message) if it failed."""
        if self._refuse_while_busy("load another model"):
            return False
        choice = self.source.value
        if self._is_current(choice):
            show_info(f"“{self.state.name}” is the current model already (not fine-tuned since).")
            return True  # a reload would only add an identical model to go back to
        try:
            if choice == NEW_MODEL_NAME:
                model, name = new_model(self.new_options.config()), NEW_MODEL_NAME
            elif choice == FROM_FILE:
                path = self.checkpoint_file.value  # one Path in this mode
                if not isinstance(path, Path) or path == Path() or path.is_dir():
                    show_error(f"Choose a model file first: a {ACCEPTED_WORDS}.")
                    return False
                if not path.is_file():  # typed, or moved since it was chosen
                    show_error(f"No file at {path}: choose a model file (a {ACCEPTED_WORDS}).")
                    return False
                model, name = load_model(path), path.name
                self.state.last_folder = path.parent
            else:
                model, name = load_model(choice), choice
        except (CheckpointError, OSError, ValueError, ImportError) as error:
            # ImportError: an optional extra is missing (bioimage.io); it says what to install
            show_error(f"Could not load the model: {error}. {self._what_loads(choice, error)}")
            return False
        self.state.set_model(model, name)
        return True

    def _is_current(self, choice: str) -> bool:
        """Whether loading ``choice`` would load the current, unchanged model again."""
        if not self.state.has_model:
            return False
        if choice in bundled_models():
            return self.state.name == choice
        path, source = self.checkpoint_file.value, self.state.model.info.source
        return (
            choice == FROM_FILE
            and isinstance(path, Path)
            and bool(source)
            and path.is_file()
            and Path(str(source)).resolve() == path.resolve()
            and self.state.name == path.name  # not fine-tuned since it was loaded
        )

    def _what_loads(self, choice: str, error: Exception) -> str:
        """What to do after a failed load: for a file of another suffix than those read,
        every accepted one (unless the ``error`` named them already)."""
        path = self.checkpoint_file.value
        if choice == FROM_FILE and isinstance(path, Path) and not isinstance(error, NotAModelError):
            if path.suffix.lower() not in CHECKPOINT_SUFFIXES:
                return f"A model is a {ACCEPTED_WORDS}: choose one of those."
        return "Choose another model or file."

    def use_model(self, model: UNet, name: str) -> None:
        """Make an existing model current (for scripts and tests)."""
        self.state.set_model(model, name)

    def save(self, path: str | Path) -> Path | None:
        """Save the current model to ``path`` as ``.safetensors`` (the suffix replaces a
        .pt, .pth or .zip one, napari-unet saves only checkpoints; else it is added)."""
        if self._refuse_while_busy("save the model"):
            return None
        path = Path(path)
        if path.suffix.lower() in CHECKPOINT_SUFFIXES:
            path = path.with_suffix(".safetensors")
        else:
            path = path.with_name(path.name + ".safetensors")
        try:
            written = save_model(self.state.model, path)
        except OSError as error:
            show_error(f"Could not save the model: {error}. Choose a folder you can write to.")
            return None
        self.state.last_folder = written.parent
        self._saved_as = written
        self.refresh_info()
        more = after_save_words(self.viewer, self.state.model)
        show_info(f"Saved the model as “{written.name}” in {written.parent}.{more}")
        return written

    def _forget_saved(self, *_: Any) -> None:
        self._saved_as = None  # another model, or this one changed since

    def _ask_and_save(self, *_: Any) -> None:
        folder = self.dialog_folder(writable=True)
        default = folder / default_save_name(self.state.name, folder)
        path, _filter = QFileDialog.getSaveFileName(
            self, "Save U-Net model", str(default), "U-Net checkpoints (*.safetensors)"
        )
        if path:
            self.save(path)

    def choose_checkpoint(self, *_: Any) -> Path | None:
        """Ask for a checkpoint file to load (the Select file button), starting in
        :meth:`dialog_folder`; returns the file chosen (None: cancelled)."""
        path, _filter = QFileDialog.getOpenFileName(
            self, "Select a U-Net model file", str(self.dialog_folder()), CHECKPOINT_FILTER
        )
        if not path:
            return None
        self.checkpoint_file.value = Path(path)
        self.state.last_folder = Path(path).parent
        return Path(path)

    def dialog_folder(self, *, writable: bool = False) -> Path:
        """Where the Save (``writable``) and Select file dialogs start (:func:`dialog_folder`)."""
        return dialog_folder(self.state, self.viewer, writable=writable)

    def go_back(self, *_: Any) -> bool:
        """Make the previous model current again (e.g. after a fine-tune that made it worse)."""
        if self._refuse_while_busy("go back"):
            return False
        entry = self.state.go_back()
        if entry is None:
            show_warning("There is no earlier model in this session to go back to.")
            return False
        show_info(entry.back_notice)
        return True

    def _refuse_while_busy(self, action: str) -> bool:
        if self.state.busy:
            show_warning(f"The model is busy ({self.state.busy}); stop it or wait, then {action}.")
            return True
        return False

    # ---- display -------------------------------------------------------------
    def refresh_info(self, *_: Any) -> None:
        """Describe the current model: what it does, then (behind a button) how it is built."""
        self.info.setText(describe_model(self.state.model, self.state.name, self._saved_as))
        self.details.setText(model_details(self.state.model))
        self._select_current_source()
        self._update_buttons()

    def _toggle_details(self, *_: Any) -> None:
        shown = self.details.isHidden()  # hidden by the button, whether the dock is shown or not
        self.details.setVisible(shown)
        self.details_button.text = HIDE_DETAILS if shown else SHOW_DETAILS

    def _update_buttons(self, *_: Any) -> None:
        idle = not self.state.busy
        history = self.state.history
        self.back_button.enabled = idle and bool(history)
        self.history_label.setText(
            "Earlier models (newest first):<br>&nbsp;• "
            + "<br>&nbsp;• ".join(html.escape(entry.label) for entry in reversed(history))
            if history
            else "No earlier model in this session."
        )
        self.load_button.enabled = idle
        self.save_button.enabled = idle


def default_save_name(name: str, folder: Path | None = None) -> str:
    """The file name the Save dialog proposes for a model called ``name``.

    The " (fine-tuned)" and " (untrained)" marks and then a checkpoint suffix
    (:data:`CHECKPOINT_SUFFIXES`) are taken off, "-fine-tuned" is added to a
    fine-tuned model's name (so that the file it came from is not overwritten)
    in place of the mark its file name may hold already (:data:`RUN_MARK_IN_NAME`:
    "m-fine-tuned.safetensors" fine-tuned again is saved as "m-fine-tuned", not
    "m-fine-tuned-fine-tuned"), spaces become "-", and ".safetensors" is appended.
    A name taken in ``folder`` gets the first free number: "m-fine-tuned-2".

    Parameters
    ----------
    name : str
        The model's name in the viewer, e.g. ``"cells.v2.safetensors (fine-tuned)"``.
    folder : pathlib.Path, optional
        Where it will be saved: the name proposed is no file's there.

    Returns
    -------
    str
        E.g. ``"cells.v2-fine-tuned.safetensors"``.
    """
    suffix = ""
    marks = {FINE_TUNED_MARK: "-fine-tuned", TRAINED_MARK: "-trained", UNTRAINED_MARK: ""}
    while name.endswith(tuple(marks)):
        mark = next(mark for mark in marks if name.endswith(mark))
        suffix = suffix or marks[mark]
        name = name.removesuffix(mark)
    if name.lower().endswith(CHECKPOINT_SUFFIXES):
        name = name.rsplit(".", 1)[0]
    if suffix:  # one mark: that of this run
        name = RUN_MARK_IN_NAME.sub("", name.strip())
    stem = ((name.strip() or "unet") + suffix).replace(" ", "-")
    return free_file_name(folder, stem, ".safetensors")


def free_file_name(folder: Path | None, stem: str, suffix: str) -> str:
    """``stem + suffix``, or with the first number that makes it no file's in ``folder``
    ("m-2.safetensors", "m-3.safetensors"...)."""
    name, number = stem + suffix, 1
    while folder is not None and (folder / name).exists():
        number += 1
        name = f"{stem}-{number}{suffix}"
    return name


def _rich_label() -> QLabel:
    """A word-wrapped, selectable rich-text label."""
    label = QLabel()
    label.setWordWrap(True)
    label.setTextFormat(Qt.TextFormat.RichText)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    return label

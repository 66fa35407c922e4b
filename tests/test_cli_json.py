"""What the command line prints as JSON: ``napari-unet info``'s words and ``print_json``."""

from __future__ import annotations

import json

from helpers import tiny_model
from napari_unet import save_model
from napari_unet.cli import main


def test_info_says_what_a_model_trained_in_napari_learnt_from(tmp_path, capsys):
    """Its ``trained_on`` is null (the Fine-tune widget names image layers in its runs)."""
    model = tiny_model()
    model.metadata["training_history"] = [{"iterations": 120, "image_layer": "cells"}]
    assert main(["info", str(save_model(model, tmp_path / "m.safetensors"))]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["trained_on"] is None
    assert info["learnt_from"] == "strokes on “cells” in napari (1 run, 120 iterations)"
    assert list(info).index("learnt_from") == list(info).index("trained_on") + 1


def test_printed_json_keeps_its_quotes_and_puts_lists_of_numbers_on_one_line(capsys):
    from napari_unet.cli import print_json

    data = {"said": "strokes on “cells”", "shapes": [[1, 256, 256], [2, 64, 64]], "x": [[]]}
    data["mixed"] = [1, "two"]
    print_json(data)
    text = capsys.readouterr().out
    assert json.loads(text) == data
    assert "“cells”" in text and "\n    [1, 256, 256],\n    [2, 64, 64]\n" in text
    assert '"mixed": [\n    1,' in text  # not numbers only: one item a line, as JSON has it


def test_printed_json_escapes_for_an_output_that_is_not_utf_8(monkeypatch):
    """A Windows console, file or pipe (cp1252) could encode “ but would not be UTF-8."""
    import io
    import sys

    from napari_unet.cli import print_json

    out = io.TextIOWrapper(io.BytesIO(), encoding="cp1252")
    monkeypatch.setattr(sys, "stdout", out)
    data = {"said": "strokes on “cells”", "nul": "\x000\x00", "shape": [1, 2]}
    print_json(data)
    out.flush()
    written = out.buffer.getvalue()
    assert written.isascii() and json.loads(written.decode("utf-8")) == data

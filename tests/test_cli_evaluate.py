"""``napari-unet evaluate``: metrics as JSON, and a ground truth read as the metric needs."""

import json

import numpy as np
import pytest
import tifffile
from scipy import ndimage

from napari_unet.cli import build_parser, main


def test_evaluate_prints_json(tmp_path, capsys):
    truth = np.zeros((60, 60), np.uint16)
    truth[2:8, 2:8], truth[40:48, 40:48] = 1, 2
    pred = truth.copy()
    pred[40:48, 40:48] = 0  # one of two objects missed
    tifffile.imwrite(tmp_path / "t.tif", truth)
    tifffile.imwrite(tmp_path / "p.tif", pred)
    files = ["--pred", str(tmp_path / "p.tif"), "--truth", str(tmp_path / "t.tif")]
    assert main(["evaluate", *files, "--kind", "instances"]) == 0
    result = json.loads(capsys.readouterr().out)
    at_half = next(row for row in result["instances"] if row["threshold"] == 0.5)
    assert at_half["tp"] == 1 and at_half["fn"] == 1 and at_half["fp"] == 0
    assert abs(at_half["f1"] - 2 / 3) < 1e-6
    strokes = np.zeros((60, 60), np.uint8)
    strokes[44, 44] = 2  # painted on the missed object: left out
    tifffile.imwrite(tmp_path / "s.tif", strokes)
    assert main(["evaluate", *files, "--away-from", str(tmp_path / "s.tif")]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["left_out_true"] == 1 and result["instances"][0]["f1"] == 1.0
    tifffile.imwrite(tmp_path / "small.tif", strokes[:10])
    assert main(["evaluate", *files, "--away-from", str(tmp_path / "small.tif")]) != 0
    assert "the strokes' shape (10, 60) differs" in capsys.readouterr().err


def test_evaluate_instances_of_a_tracked_stack_slice_by_slice(tmp_path, capsys):
    frame = np.zeros((20, 20), np.uint16)
    frame[2:8, 2:8], frame[10:18, 10:18] = 1, 2
    truth = np.stack([frame] * 3)  # tracked: one label per object through the stack
    pred = np.stack([np.where(frame > 0, frame + 2 * z, 0) for z in range(3)])  # as predict
    tifffile.imwrite(tmp_path / "t.tif", truth, photometric="minisblack")
    tifffile.imwrite(tmp_path / "p.tif", pred, photometric="minisblack")
    files = ["--pred", str(tmp_path / "p.tif"), "--truth", str(tmp_path / "t.tif")]
    assert main(["evaluate", *files]) == 0
    at_half = json.loads(capsys.readouterr().out)["instances"][0]
    assert (at_half["tp"], at_half["fp"], at_half["fn"], at_half["f1"]) == (6, 0, 0, 1.0)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["evaluate", "--help"])
    assert "slice by slice" in " ".join(capsys.readouterr().out.split())


def test_evaluate_instances_refuses_a_class_mask(tmp_path, capsys):
    mask = np.ones((20, 20), np.uint8)  # predict's <stem>_mask.tif: 1 = background
    mask[2:8, 2:8] = mask[10:18, 10:18] = 2
    truth = np.zeros((20, 20), np.uint16)
    truth[2:8, 2:8], truth[10:18, 10:18] = 1, 2
    tifffile.imwrite(tmp_path / "cells_mask.tif", mask)
    tifffile.imwrite(tmp_path / "t.tif", truth)
    files = ["--pred", str(tmp_path / "cells_mask.tif"), "--truth", str(tmp_path / "t.tif")]
    assert main(["evaluate", *files]) == 2
    error = capsys.readouterr().err
    assert "looks like a class mask" in error and "cells_instances.tif" in error
    assert "--kind semantic" in error
    assert main(["evaluate", *files, "--kind", "semantic"]) == 0


def test_evaluate_instances_read_binary_masks_as_their_components(tmp_path, capsys):
    pred = np.zeros((20, 20), np.uint16)
    pred[2:8, 2:8], pred[10:18, 10:18] = 1, 2
    tifffile.imwrite(tmp_path / "p.tif", pred)
    tifffile.imwrite(tmp_path / "binary.tif", (pred > 0).astype(np.uint8))  # one label
    files = ["--pred", str(tmp_path / "p.tif"), "--truth"]
    assert main(["evaluate", *files, str(tmp_path / "binary.tif")]) == 0
    said = capsys.readouterr()
    at_half = json.loads(said.out)["instances"][0]
    assert (at_half["tp"], at_half["fp"], at_half["fn"]) == (2, 0, 0)  # its two components
    assert "binary ground truth's connected components" in said.err
    binary = ["--pred", str(tmp_path / "binary.tif"), "--truth", str(tmp_path / "p.tif")]
    assert main(["evaluate", *binary]) == 0  # a binary prediction the same way
    assert json.loads(capsys.readouterr().out)["instances"][0]["tp"] == 2
    cells = np.where(pred > 0, 0, 255).astype(np.uint8)  # ISBI: 0 = membrane, 255 = interior
    tifffile.imwrite(tmp_path / "isbi.tif", cells)
    tifffile.imwrite(tmp_path / "cells.tif", ndimage.label(cells > 0)[0].astype(np.uint16))
    isbi = ["--pred", str(tmp_path / "cells.tif"), "--truth", str(tmp_path / "isbi.tif")]
    assert main(["evaluate", *isbi]) == 0
    said = capsys.readouterr()
    assert json.loads(said.out)["instances"][0]["f1"] == 1.0  # its cells, one object each
    assert "the membrane metrics give the challenge's errors" in said.err


def test_evaluate_semantic_refuses_instance_labels_and_reads_a_binary_truth(tmp_path, capsys):
    mask = np.ones((20, 20), np.uint8)  # predict's class mask: 1 = background, 2 = object
    mask[2:8, 2:8] = mask[10:18, 10:18] = 2
    instances = np.zeros((20, 20), np.uint16)
    instances[2:8, 2:8], instances[10:18, 10:18] = 1, 7
    tifffile.imwrite(tmp_path / "m.tif", mask)
    tifffile.imwrite(tmp_path / "instances.tif", instances)
    tifffile.imwrite(tmp_path / "binary.tif", (instances > 0).astype(np.uint8))
    files = ["evaluate", "--kind", "semantic", "--pred", str(tmp_path / "m.tif"), "--truth"]
    assert main([*files, str(tmp_path / "instances.tif")]) == 2  # was: IoU 0, pixel error 1
    assert "these look like instance labels (score them as instances)" in capsys.readouterr().err
    assert main([*files, str(tmp_path / "binary.tif")]) == 0
    said = capsys.readouterr()
    result = json.loads(said.out)
    assert result["pixel_error"] == 0.0 and result["iou"] == {"1": 1.0, "2": 1.0}
    assert "binary mask" in said.err


def test_evaluate_names_the_file_to_give_for_probabilities(tmp_path, capsys):
    tifffile.imwrite(tmp_path / "cells_prob.tif", np.zeros((2, 16, 16), np.float32))
    tifffile.imwrite(tmp_path / "truth.tif", np.zeros((16, 16), np.uint16))
    args = ["--pred", str(tmp_path / "cells_prob.tif"), "--truth", str(tmp_path / "truth.tif")]
    assert main(["evaluate", *args]) == 2
    error = capsys.readouterr().err
    assert "differs from truth shape (16, 16); give predict's <stem>_mask.tif" in error


def test_evaluate_semantic_takes_the_model_classes_and_a_binary_prediction(tmp_path, capsys):
    two = np.ones((12, 12), np.uint8)
    two[2:6, 2:6] = 2  # a prediction with classes 1 and 2 only
    three = two.copy()
    three[8:10, 8:10] = 3  # the truth has a class the prediction lacks
    tifffile.imwrite(tmp_path / "p.tif", two)
    tifffile.imwrite(tmp_path / "t.tif", three)
    files = ["evaluate", "--kind", "semantic", "--pred", str(tmp_path / "p.tif")]
    assert main([*files, "--truth", str(tmp_path / "t.tif")]) == 2
    assert "give --classes" in capsys.readouterr().err
    assert main([*files, "--truth", str(tmp_path / "t.tif"), "--classes", "3"]) == 0
    assert json.loads(capsys.readouterr().out)["iou"]["3"] == 0.0
    tifffile.imwrite(tmp_path / "binary.tif", (two == 2).astype(np.uint8))  # 0/1 both
    binary = ["--pred", str(tmp_path / "binary.tif"), "--truth", str(tmp_path / "binary.tif")]
    assert main(["evaluate", "--kind", "semantic", *binary]) == 0
    said = capsys.readouterr()
    assert json.loads(said.out)["pixel_error"] == 0.0  # was 1.0: only the truth was shifted
    assert "read the 0/1 prediction as a binary mask" in said.err


def test_evaluate_away_from_strokes_that_cover_everything_is_refused(tmp_path, capsys):
    truth = np.zeros((20, 20), np.uint16)
    truth[2:8, 2:8] = 1
    tifffile.imwrite(tmp_path / "t.tif", truth)
    tifffile.imwrite(tmp_path / "s.tif", np.ones((20, 20), np.uint8))
    args = ["--pred", str(tmp_path / "t.tif"), "--truth", str(tmp_path / "t.tif")]
    assert main(["evaluate", *args, "--away-from", str(tmp_path / "s.tif")]) == 2
    assert "nothing to score" in capsys.readouterr().err

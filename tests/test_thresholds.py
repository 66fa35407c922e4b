"""The one rule that picks a model's background threshold from scored candidates."""

import pytest

from napari_unet.evaluation.thresholds import cheapest_within, guarded_threshold

#: The 16-feature em-membranes on ISBI slices 00-16 (pixel, Rand error), from calibrate_bundled's
#: run that stored 0.8 in that checkpoint (bundled until 2026-12-02; docs/experiments/
#: bundled_models.md).
EM_TABLE = {
    0.5: (0.1113, 0.0412),
    0.6: (0.1004, 0.0407),
    0.7: (0.0915, 0.0404),
    0.75: (0.0889, 0.0402),
    0.8: (0.0878, 0.0401),
    0.85: (0.0894, 0.0399),
    0.9: (0.0959, 0.0400),
}


def as_table(rows):
    return {t: {"pixel_error": p, "rand_error": r} for t, (p, r) in rows.items()}


def test_reproduces_the_16_feature_em_membranes_choice():
    assert guarded_threshold(as_table(EM_TABLE), "pixel_error", "rand_error", 0.005) == 0.8


def test_a_candidate_that_costs_the_guard_too_much_is_skipped():
    rows = {**EM_TABLE, 0.8: (0.0800, 0.0500)}  # best pixel error, Rand error 0.0088 worse
    assert guarded_threshold(as_table(rows), "pixel_error", "rand_error", 0.005) == 0.75
    assert guarded_threshold(as_table(rows), "pixel_error", "rand_error", 0.01) == 0.8


def test_ties_go_to_the_lowest_threshold_and_nothing_better_keeps_half():
    tied = {0.5: (0.2, 0.1), 0.6: (0.1, 0.1), 0.7: (0.1, 0.1)}
    assert guarded_threshold(as_table(tied), "pixel_error", "rand_error", 0.0) == 0.6
    worse = {0.5: (0.2, 0.1), 0.6: (0.1, 0.3)}
    assert guarded_threshold(as_table(worse), "pixel_error", "rand_error", 0.0) == 0.5


def test_the_reference_at_half_is_required():
    with pytest.raises(ValueError, match=r"0\.5"):
        guarded_threshold(as_table({0.6: (0.1, 0.1)}), "pixel_error", "rand_error", 0.0)


#: scripts/choose_tta_transforms.py's table for em-membranes on ISBI slices 15-16 (2026-12-02).
TRANSFORM_TABLE = {
    "dihedral": {"pixel_error": 0.07154, "rand_error": 0.01181},
    "rotations": {"pixel_error": 0.07172, "rand_error": 0.01160},
}
PASSES = {"dihedral": 8, "rotations": 4}
TTA_TOLERANCE = {"pixel_error": 0.001, "rand_error": 0.005}


def test_the_four_rotations_are_chosen_for_em_membranes():
    assert cheapest_within(TRANSFORM_TABLE, PASSES, "dihedral", TTA_TOLERANCE) == "rotations"


def test_a_cheaper_candidate_outside_one_tolerance_is_not_chosen():
    worse = {**TRANSFORM_TABLE, "rotations": {"pixel_error": 0.0726, "rand_error": 0.0116}}
    assert cheapest_within(worse, PASSES, "dihedral", TTA_TOLERANCE) == "dihedral"
    with pytest.raises(ValueError, match="reference"):
        cheapest_within(TRANSFORM_TABLE, PASSES, "identity", TTA_TOLERANCE)

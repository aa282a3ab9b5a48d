"""Slicer baselines (Grow from seeds, Fill between slices) and slice propagation (copy, demons)."""
import numpy as np
import pytest

from MVAEvaluationLib.baselines import (
    BACKGROUND_SEED, FOREGROUND_SEED, BaselineInputError, copy_propagation, demons_propagation,
    fill_between_curve, fill_between_slices, growcut, growcut_dab_curve, growcut_slice, keep_every_gth_slice,
    propagation_curve)
from MVAEvaluationLib.metrics import dice


def disk_volume(n_slices=12, size=48, radius=10, shift_per_slice=0.0):
    j, i = np.mgrid[:size, :size]
    volume = np.zeros((n_slices, size, size), bool)
    for k in range(n_slices):
        centre_i = size / 2 - 6 + shift_per_slice * k
        volume[k] = (j - size / 2) ** 2 + (i - centre_i) ** 2 <= radius ** 2
    return volume


def test_growcut_separates_two_intensity_halves_from_two_seeds():
    image = np.zeros((3, 20, 30), np.int16)
    image[:, :, 15:] = 100
    seeds = np.zeros(image.shape, np.uint8)
    seeds[1, 10, 4] = FOREGROUND_SEED
    seeds[1, 10, 25] = BACKGROUND_SEED
    labels = growcut(image, seeds)
    assert (labels[1, :, :15] == FOREGROUND_SEED).all()
    assert (labels[1, :, 15:] == BACKGROUND_SEED).all()


def test_growcut_leaves_masked_voxels_unlabelled():
    image = np.zeros((3, 20, 30), np.int16)
    image[:, :, 15:] = 100
    seeds = np.zeros(image.shape, np.uint8)
    seeds[1, 10, 4], seeds[1, 10, 25] = FOREGROUND_SEED, BACKGROUND_SEED
    mask = np.zeros(image.shape, bool)
    mask[:, :, 8:12] = True
    labels = growcut(image, seeds, mask=mask)
    assert (labels[mask] == 0).all()
    assert (labels[1, :, :8] == FOREGROUND_SEED).all()


def test_growcut_refuses_a_single_seed_label():
    seeds = np.zeros((3, 10, 10), np.uint8)
    seeds[1, 5, 5] = FOREGROUND_SEED
    with pytest.raises(BaselineInputError, match="two labels"):
        growcut(np.zeros((3, 10, 10)), seeds)


def test_growcut_slice_with_a_background_frame_segments_a_bright_disk_from_one_dab():
    truth = disk_volume(n_slices=5)
    image = np.where(truth, 200, 20).astype(np.int16)
    seeds = np.zeros(truth.shape[1:], np.uint8)
    seeds[24, 18] = FOREGROUND_SEED
    assert dice(growcut_slice(image, 2, seeds), truth[2]) > 0.97


def test_growcut_dab_curve_reaches_a_good_dice_on_a_noisy_disk():
    rng = np.random.default_rng(0)
    truth = disk_volume(n_slices=5)
    image = (np.where(truth, 120, 60) + rng.normal(0, 15, truth.shape)).astype(np.int16)
    curve = growcut_dab_curve(image, truth, 2, n_dabs=6)
    assert curve.x == [1, 2, 3, 4, 5, 6]
    assert len(curve.seconds) == 6
    assert curve.dice[-1] > 0.9


def test_fill_between_slices_fills_between_two_discs():
    truth = disk_volume(n_slices=9)
    sparse = np.zeros(truth.shape, np.uint8)
    sparse[[1, 7]] = truth[[1, 7]]
    filled = fill_between_slices(sparse).astype(bool)
    assert dice(filled[2:7], truth[2:7]) > 0.97
    assert not filled[0].any() and not filled[8].any()


def test_keep_every_gth_slice_keeps_the_extent_start_and_scores_the_rest():
    truth = np.zeros((12, 8, 8), bool)
    truth[2:10, 3:5, 3:5] = True
    sparse, kept, scored = keep_every_gth_slice(truth, 3)
    assert kept.tolist() == [2, 5, 8]
    assert scored.tolist() == [3, 4, 6, 7, 9]
    assert sparse[[3, 4, 6, 7, 9]].sum() == 0 and sparse[5].sum() == 4


def test_fill_between_curve_scores_a_straight_cylinder_as_perfect():
    truth = disk_volume(n_slices=11)
    curve = fill_between_curve(truth, gaps=(2, 5))
    assert curve.x == [2, 5]
    np.testing.assert_allclose(curve.dice, [1.0, 1.0])
    np.testing.assert_allclose(curve.details["volume_dice"], [1.0, 1.0])


def test_copy_propagation_repeats_the_seed_and_loses_a_shifting_disk():
    truth = disk_volume(n_slices=12, shift_per_slice=1.5)
    propagated = copy_propagation(truth[0], 0, 12)
    assert (propagated == truth[0]).all()
    curve = propagation_curve("copy", truth.astype(np.uint8) * 100, truth, distances=(1, 5), seed_slice=5)
    assert curve.details["up"][0] > curve.details["up"][1]
    assert curve.details["up"][1] < 0.7


def test_demons_propagation_tracks_a_shifting_disk():
    truth = disk_volume(n_slices=12, shift_per_slice=1.5)
    image = np.where(truth, 100.0, 0.0)
    propagated = demons_propagation(image, truth[5], 5)
    assert dice(propagated[10], truth[10]) > 0.9
    assert dice(propagated[0], truth[0]) > 0.9
    assert dice(propagated[10], truth[10]) > dice(truth[5], truth[10]) + 0.3


def test_propagation_curve_scores_both_directions_and_their_mean():
    truth = disk_volume(n_slices=12, shift_per_slice=1.0)
    curve = propagation_curve("demons", np.where(truth, 100.0, 0.0), truth, distances=(1, 3), seed_slice=5)
    assert curve.details["seed_slice"] == 5
    assert len(curve.details["up"]) == len(curve.details["down"]) == 2
    np.testing.assert_allclose(curve.dice, (np.array(curve.details["up"]) + curve.details["down"]) / 2)
    assert min(curve.dice) > 0.9


def test_propagation_curve_rejects_an_unknown_method():
    truth = disk_volume(n_slices=4)
    with pytest.raises(BaselineInputError, match="copy"):
        propagation_curve("optical_flow", truth, truth)

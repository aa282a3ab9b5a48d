"""Simulated user (RITM rule, random variant, boxes, dabs) and the interactive-segmentation metrics."""
import numpy as np
import pytest

from MVAEvaluationLib.metrics import (
    area_under_curve, dice, iou, number_of_clicks, oracle_dice, slice_extent_error, undersegmentation_error)
from MVAEvaluationLib.simulated_user import SimulatedUser, dab_mask, noisy_box, slice_to_correct


def square(shape, j0, j1, i0, i1):
    mask = np.zeros(shape, bool)
    mask[j0:j1, i0:i1] = True
    return mask


def test_first_click_is_positive_at_the_distance_transform_maximum():
    truth = square((20, 30), 2, 9, 3, 10) | square((20, 30), 5, 16, 14, 25)  # 7x7 and 11x11 squares
    click = SimulatedUser(truth).first_click()
    assert click.positive
    assert click.index == (10, 19)  # centre of the thicker square


def test_first_click_in_3d_is_at_the_centre_of_the_thickest_part():
    truth = np.zeros((9, 12, 12), bool)
    truth[1:8, 2:9, 3:10] = True
    assert SimulatedUser(truth).first_click().index == (4, 5, 6)


def test_next_click_is_positive_in_the_thickest_false_negative_region():
    truth = square((30, 30), 0, 30, 0, 20)
    prediction = square((30, 30), 0, 30, 0, 12)  # misses an 8-wide strip of the truth
    prediction |= square((30, 30), 0, 3, 25, 28)  # plus a thin false positive
    click = SimulatedUser(truth).next_click(prediction)
    assert click.positive
    assert 12 <= click.index[1] < 20 and truth[click.index]


def test_next_click_is_negative_in_the_thickest_false_positive_region():
    truth = square((30, 30), 10, 20, 10, 20)
    prediction = truth | square((30, 30), 0, 9, 21, 30)  # a 9x9 false positive
    prediction[15, 10] = False  # one-pixel false negative
    click = SimulatedUser(truth).next_click(prediction)
    assert not click.positive
    assert click.index == (4, 25)


def test_next_click_is_none_when_the_prediction_is_perfect():
    truth = square((10, 10), 2, 6, 2, 6)
    assert SimulatedUser(truth).next_click(truth) is None


def test_the_same_pixel_is_never_clicked_twice():
    truth = square((15, 15), 3, 12, 3, 12)
    user = SimulatedUser(truth)
    clicks = [user.first_click()] + [user.next_click(np.zeros_like(truth)) for _ in range(40)]
    indices = [c.index for c in clicks]
    assert len(set(indices)) == len(indices) == 41
    assert all(truth[index] for index in indices)


def test_deterministic_user_stops_when_every_error_pixel_was_clicked():
    truth = np.zeros((9, 9), bool)
    truth[4, 4] = True
    user = SimulatedUser(truth)
    assert user.first_click().index == (4, 4)
    assert user.next_click(np.zeros_like(truth)) is None


def test_random_user_stops_when_every_error_pixel_was_clicked():
    truth = np.zeros((9, 9), bool)
    truth[4, 4] = True
    user = SimulatedUser(truth, seed=0)
    assert user.first_click().index == (4, 4)
    assert user.next_click(np.zeros_like(truth)) is None


def test_random_user_is_deterministic_for_a_seed_and_varies_between_seeds():
    truth = square((40, 40), 5, 35, 5, 35)
    prediction = square((40, 40), 5, 35, 5, 20) | square((40, 40), 0, 4, 0, 40)

    def clicks(seed):
        user = SimulatedUser(truth, seed=seed)
        return [user.first_click()] + [user.next_click(prediction) for _ in range(5)]

    assert clicks(7) == clicks(7)
    assert clicks(7) != clicks(8)
    for click in clicks(3)[1:]:
        assert click.positive == bool(truth[click.index])  # label follows the error type


def test_a_prediction_of_the_wrong_shape_is_refused():
    with pytest.raises(ValueError, match="shape"):
        SimulatedUser(np.ones((4, 4), bool)).next_click(np.ones((4, 5), bool))


def test_an_empty_truth_is_refused():
    with pytest.raises(ValueError, match="empty"):
        SimulatedUser(np.zeros((4, 4), bool))


def test_dab_mask_is_a_disk_clipped_at_the_border():
    dab = dab_mask((20, 20), (10, 10))
    assert dab.sum() == 29  # radius-3 disk
    assert dab[10, 7] and dab[10, 13] and not dab[7, 7]
    assert dab_mask((20, 20), (0, 0)).sum() == 11


def test_noisy_box_without_noise_is_the_bounding_box():
    truth = square((50, 60), 10, 21, 5, 46)
    assert noisy_box(truth) == (10, 5, 20, 45)


def test_noisy_box_stays_within_the_noise_limit_and_the_image():
    truth = square((300, 300), 20, 280, 100, 150)  # 260 x 50 box: noise std 26 (capped at 20) and 5
    rng = np.random.default_rng(0)
    boxes = np.array([noisy_box(truth, rng) for _ in range(200)])
    exact = np.array([20, 100, 279, 149])
    assert (np.abs(boxes - exact) <= 20).all()
    assert (boxes >= 0).all() and (boxes <= 299).all()
    assert np.abs(boxes - exact)[:, 0].max() == 20  # the cap is reached on the long side
    assert np.abs(boxes - exact)[:, 1].std() < 8


def test_slice_to_correct_picks_the_slice_with_most_error_in_the_largest_component():
    truth = np.zeros((6, 10, 10), bool)
    prediction = truth.copy()
    prediction[1:4, 2:8, 2:8] = True  # largest error: 3 slices of 36
    prediction[2, 2:8, 8] = True  # slice 2 has a little more of it
    prediction[5, 0, 0] = True  # a small separate error
    assert slice_to_correct(truth, prediction) == 2
    assert slice_to_correct(truth, truth) is None


def test_dice_and_iou_on_hand_made_arrays():
    a = np.array([1, 1, 1, 1, 0, 0], bool)
    b = np.array([0, 0, 1, 1, 1, 1], bool)
    assert dice(a, b) == pytest.approx(0.5)
    assert iou(a, b) == pytest.approx(2 / 6)
    assert dice(np.zeros(3), np.zeros(3)) == 1.0 and iou(np.zeros(3), np.zeros(3)) == 1.0
    assert dice(a, np.zeros(6)) == 0.0


def test_number_of_clicks_and_area_under_curve():
    curve = [0.5, 0.8, 0.86, 0.91]
    assert number_of_clicks(curve, 0.85) == 3
    assert number_of_clicks(curve, 0.90) == 4
    assert number_of_clicks(curve, 0.90, cap=3) is None
    assert area_under_curve(curve) == pytest.approx(0.7675)
    assert area_under_curve([]) == 0.0


def test_oracle_dice_gives_each_region_its_majority_label():
    regions = np.array([0, 0, 0, 1, 1, 1, 2, 2])
    truth = np.array([1, 1, 0, 0, 0, 1, 1, 1], bool)
    # region 0 -> 1 (2 of 3), region 1 -> 0 (1 of 3), region 2 -> 1: prediction 1,1,1,0,0,0,1,1
    assert oracle_dice(regions, truth) == pytest.approx(2 * 4 / (5 + 5))


def test_undersegmentation_error_counts_the_smaller_leak_of_each_straddling_region():
    regions = np.array([0, 0, 0, 1, 1, 1, 2, 2])
    truth = np.array([1, 1, 0, 0, 0, 1, 1, 1])
    # label 1: region 0 leaks 1, region 1 min(1, 2) = 1, region 2 none; label 0: 1 + 1 again
    assert undersegmentation_error(regions, truth) == pytest.approx(4 / 8)
    assert undersegmentation_error(np.arange(8), truth) == 0.0


def test_slice_extent_error_counts_slices_labelled_by_only_one_side():
    assert slice_extent_error([0, 1, 1, 1, 0], [0, 0, 1, 1, 1]) == 2
    assert slice_extent_error([1, 1], [1, 1]) == 0

"""Smart Propagation algorithms on small synthetic volumes (and one MNI check)."""
import numpy as np
import pytest

from MVAEvaluationLib.metrics import dice
from SmartPropagationLib.algorithms import (
    EmptySeedMaskError, NonFiniteImageError, PropagationCancelled, ShapeMismatchError, SliceOutOfRangeError,
    StopReason, StopRule, UnknownStrategyError, interpolate_between_slices, propagate, repropagate)
from SmartPropagationLib.algorithms import slice_predictors

CT_SPACING = (2.5, 0.7, 0.7)


def disk(shape, center, radius):
    j, i = np.indices(shape)
    return (j - center[0]) ** 2 + (i - center[1]) ** 2 <= radius ** 2


def shifting_disk_volume(slices=16, shift_px=1.5, seed=0):
    """A bright disk (radius 9) that moves 1.5 px to the right per slice, over noise."""
    rng = np.random.default_rng(seed)
    truth = np.stack([disk((64, 80), (32, 20 + shift_px * k), 9) for k in range(slices)])
    image = np.where(truth, 100.0, 20.0) + rng.normal(0, 5, truth.shape)
    return image.astype(np.float32), truth


def nodule_phantom(seed=0):
    """CT-like: a 40 HU ellipsoid nodule in -800 HU lung beside a chest wall, noise, 2.5 mm slices."""
    rng = np.random.default_rng(seed)
    shape = (30, 64, 64)
    k, j, i = np.indices(shape).astype(float)
    radii_mm = (9.0, 8.0, 7.0)
    center = (13.3, 31.6, 34.2)
    r2 = sum(((a - c) * s / r) ** 2 for a, c, s, r in zip((k, j, i), center, CT_SPACING, radii_mm))
    truth = r2 <= 1
    image = np.full(shape, -800.0)
    image[truth] = 40.0
    image[:, :, :6] = 40.0
    image += rng.normal(0, 30, shape)
    return image.astype(np.float32), truth


def growing_predictor(image_prev, mask_prev, image_next):
    """A predictor that leaks: the mask grows by 2 pixels each slice."""
    from scipy import ndimage
    return ndimage.binary_dilation(mask_prev, iterations=2), 0.9


def test_registration_tracks_a_shifting_disk_and_the_copy_baseline_does_not():
    image, truth = shifting_disk_volume()
    tracked = propagate(image, truth[0], 0, +1, 12, strategy="registration")
    copied = propagate(image, truth[0], 0, +1, 12, strategy="copy", stop_rule=StopRule(min_quality=None))
    assert tracked.slices == list(range(13))
    assert min(dice(tracked.masks[k], truth[k]) for k in range(1, 13)) > 0.9
    assert dice(copied.masks[12], truth[12]) < 0.2
    assert dice(copied.masks[4], truth[4]) < 0.75


def test_stop_rule_fires_within_two_slices_of_where_the_nodule_ends():
    image, truth = nodule_phantom()
    present = np.flatnonzero(truth.any(axis=(1, 2)))
    seed_k = int(truth.sum(axis=(1, 2)).argmax())
    result = propagate(image, truth[seed_k], seed_k, "both", 20, CT_SPACING)
    assert abs(max(result.slices) - present[-1]) <= 2
    assert abs(min(result.slices) - present[0]) <= 2
    ended = (StopReason.VANISHED, StopReason.AREA_RATIO, StopReason.LOW_QUALITY)
    assert result.stops[1].reason in ended and result.stops[-1].reason in ended
    assert result.stops[1].slice_k == max(result.slices) + 1
    assert dice(result.to_volume(image.shape), truth) > 0.9


def test_box_stop_fires_when_the_mask_leaks_out_of_the_seed_box():
    image, truth = shifting_disk_volume(shift_px=0.0)
    rule = StopRule(area_ratio_band=None, min_quality=None, box_margin_mm=5.0, box_outside_fraction=0.0)
    result = propagate(image, truth[0], 0, +1, 10, strategy=growing_predictor, stop_rule=rule)
    # The seed disk's box grown by 5 px is first exceeded at 6 px of growth, i.e. on slice 3.
    assert result.stops[1].reason == StopReason.LEFT_BOX
    assert result.stops[1].slice_k == 3
    assert result.slices == [0, 1, 2]


def test_area_ratio_stop_fires_when_the_object_merges_into_a_bright_region():
    image, truth = shifting_disk_volume(shift_px=0.0)
    image[6:, 10:60, 28:78] = 100.0
    result = propagate(image, truth[0], 0, +1, 12, stop_rule=StopRule(box_margin_mm=None, min_quality=None))
    assert result.stops[1].reason == StopReason.AREA_RATIO
    assert result.stops[1].slice_k == 6


def test_low_quality_stops_propagation():
    image, truth = shifting_disk_volume()
    result = propagate(image, truth[0], 0, +1, 5, strategy=lambda a, m, b: (m, 0.2))
    assert result.stops[1].reason == StopReason.LOW_QUALITY
    assert result.slices == [0]


def test_interpolation_between_two_disks_gives_the_intermediate_disk():
    image = np.zeros((11, 64, 64), np.float32)
    small, large = disk((64, 64), (32, 32), 10), disk((64, 64), (32, 32), 20)
    filled = interpolate_between_slices(image, {0: small, 10: large}, method="distance", refine=False)
    assert dice(filled[5], disk((64, 64), (32, 32), 15)) > 0.97
    assert filled[2].sum() < filled[5].sum() < filled[8].sum()


def test_interpolation_between_two_ellipses_follows_the_image():
    k, j, i = np.indices((9, 64, 64))
    # An ellipse whose semi-axes change linearly from (10, 20) on slice 0 to (20, 10) on slice 8.
    a, b = 10 + 10 * k / 8, 20 - 10 * k / 8
    truth = ((j - 32) / a) ** 2 + ((i - 32) / b) ** 2 <= 1
    image = np.where(truth, 200.0, 50.0).astype(np.float32) + np.random.default_rng(1).normal(0, 8, truth.shape)
    for method in ("distance", "registration"):
        filled = interpolate_between_slices(image, {0: truth[0], 8: truth[8]}, CT_SPACING, method=method)
        assert dice(filled[1:8], truth[1:8]) > 0.97
        assert dice(filled[4], truth[4]) > 0.96


def test_interpolation_never_changes_annotated_slices():
    image, truth = shifting_disk_volume(slices=9)
    square = np.zeros(truth.shape[1:], bool)
    square[20:40, 10:30] = True
    annotated = {0: square, 4: truth[4], 8: np.zeros_like(square)}
    filled = interpolate_between_slices(image, annotated, method="registration")
    for k, mask in annotated.items():
        assert np.array_equal(filled[k], mask)
    assert all(filled[k].any() for k in (1, 2, 3, 5, 6, 7))


def test_interpolation_towards_an_empty_annotated_slice_shrinks_the_object():
    image, truth = shifting_disk_volume(slices=9, shift_px=0.0)
    filled = interpolate_between_slices(image, {0: truth[0], 8: np.zeros_like(truth[0])}, refine=False)
    areas = filled.sum(axis=(1, 2))
    assert areas[0] > areas[2] > areas[4] > areas[6] > areas[8] == 0
    assert dice(filled[4], disk(truth.shape[1:], (32, 20), 4)) > 0.9


def test_repropagation_changes_only_slices_beyond_the_corrected_one():
    image, truth = shifting_disk_volume()
    first = propagate(image, truth[8], 8, "both", 6)
    corrected = disk(truth.shape[1:], (30, 20 + 1.5 * 11), 7)
    again = repropagate(image, first, 11, corrected, max_slices=6)
    assert again.seed_k == 8
    for k in range(2, 11):
        assert np.array_equal(again.masks[k], first.masks[k])
    assert np.array_equal(again.masks[11], corrected)
    assert not np.array_equal(again.masks[12], first.masks[12])
    assert again.quality[11] == 1.0


def test_progress_is_reported_per_slice_and_cancel_stops_propagation():
    image, truth = shifting_disk_volume()
    calls = []
    propagate(image, truth[8], 8, "both", 3, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(1, 6), (2, 6), (3, 6), (4, 6), (5, 6), (6, 6)]
    polls = []
    with pytest.raises(PropagationCancelled):
        propagate(image, truth[8], 8, +1, 5, cancel=lambda: polls.append(1) or len(polls) > 2)
    assert len(polls) == 3


def test_a_registered_sam_strategy_is_used_by_name(monkeypatch):
    image, truth = shifting_disk_volume()
    seen = []

    def build_sam(image_kji, seed_k, seed_mask_2d, spacing_kji):
        seen.append(seed_k)
        return lambda image_prev, mask_prev, image_next: (mask_prev, 0.8)

    monkeypatch.setitem(slice_predictors._STRATEGIES, "sam", build_sam)
    result = propagate(image, truth[3], 3, -1, 10, strategy="sam")
    assert seen == [3]
    assert result.slices == [0, 1, 2, 3] and result.stops[-1].reason == StopReason.VOLUME_END
    assert result.quality[1] == 0.8


@pytest.mark.parametrize("change, error", [
    (lambda v, m, k: (v, np.zeros_like(m), k), EmptySeedMaskError),
    (lambda v, m, k: (v, m, 16), SliceOutOfRangeError),
    (lambda v, m, k: (v, m, -1), SliceOutOfRangeError),
    (lambda v, m, k: (np.where(np.arange(v.size).reshape(v.shape) == 5, np.nan, v), m, k), NonFiniteImageError),
    (lambda v, m, k: (v, m[:, :-1], k), ShapeMismatchError),
    (lambda v, m, k: (v[0], m, k), ShapeMismatchError),
])
def test_bad_input_raises_a_specific_value_error(change, error):
    image, truth = shifting_disk_volume()
    image, mask, k = change(image, truth[0], 0)
    with pytest.raises(error) as raised:
        propagate(image, mask, k, +1, 3)
    assert isinstance(raised.value, ValueError)


def test_unknown_strategy_names_the_available_ones():
    image, truth = shifting_disk_volume()
    with pytest.raises(UnknownStrategyError, match="register_strategy"):
        propagate(image, truth[0], 0, +1, 3, strategy="sam")


@pytest.mark.slow
def test_mni_white_matter_is_tracked_ten_slices_both_ways():
    from MVAEvaluationLib.datasets import load_mni
    volume = load_mni("wm")
    result = propagate(volume.image, volume.truth[97], 97, "both", 10)
    assert dice(result.masks[107], volume.truth[107]) >= 0.93
    assert dice(result.masks[87], volume.truth[87]) >= 0.93

"""Smart Propagation on low-contrast, noisy objects: the denoised intensity model, its self-check and the evidence
part of the predicted quality."""
import numpy as np

from MVAEvaluationLib.metrics import dice
from SmartPropagationLib.algorithms import StopReason, StopRule, propagate
from SmartPropagationLib.algorithms.intensity_model import (
    fit_checked_intensity_model, fit_intensity_model, refine_mask, ring_pixels, surroundings)
from SmartPropagationLib.algorithms.slice_registration import signed_distance

CT_SPACING = (2.5, 0.8, 0.8)


def shrinking_organ(seed=0):
    """CT-like: a 60 HU half-ellipsoid in 40 HU soft tissue (20 HU noise), largest on slice 0, gone after slice 17,
    inside a -100 HU body wall: the liver dome of the CT phantom in small."""
    rng = np.random.default_rng(seed)
    shape = (26, 96, 96)
    k, j, i = np.indices(shape).astype(float)
    organ = ((k * CT_SPACING[0] / 44.0) ** 2 + ((j - 48) * CT_SPACING[1] / 22.0) ** 2
             + ((i - 40) * CT_SPACING[2] / 22.0) ** 2) <= 1.0
    body = ((j - 48) / 44.0) ** 2 + ((i - 48) / 44.0) ** 2 <= 1.0
    image = np.where(body, 40.0, -100.0)
    image[organ] = 60.0
    image += rng.normal(0, 20, shape)
    return image.astype(np.float32), organ


def test_a_low_contrast_organ_is_followed_as_it_shrinks_and_propagation_stops_where_it_ends():
    image, truth = shrinking_organ()
    last = int(np.flatnonzero(truth.any(axis=(1, 2)))[-1])
    result = propagate(image, truth[0], 0, +1, 25, CT_SPACING)
    assert dice(result.to_volume(truth.shape), truth) > 0.9
    assert abs(max(result.slices) - last) <= 2
    assert result.stops[1].reason != StopReason.VOLUME_END


def test_the_self_check_denoises_a_noisy_low_contrast_slice_and_keeps_the_mni_white_matter_sharp():
    from MVAEvaluationLib.datasets import load_mni
    rng = np.random.default_rng(1)
    j, i = np.indices((80, 80))
    disk = (j - 40) ** 2 + (i - 40) ** 2 <= 18 ** 2
    noisy = np.where(disk, 60.0, 40.0) + rng.normal(0, 20, disk.shape)
    assert fit_checked_intensity_model([noisy], [disk]).denoise_sigma_px > 0
    volume = load_mni("wm")  # thin gyri with partial volume at their edges: blurring them costs more than it gains
    assert fit_checked_intensity_model([volume.image[97]], [volume.truth[97]]).denoise_sigma_px == 0


def test_propagation_stops_where_the_mask_lies_on_tissue_unlike_the_object():
    """A disk (100) in a ring of other tissue (60) ends at slice 6; beyond it the ring's tissue fills the disk's
    place. The shape prior holds the mask's core there, but its pixels hold none of the object's evidence."""
    rng = np.random.default_rng(2)
    j, i = np.indices((96, 96))
    radius = np.hypot(j - 48, i - 48)
    image = np.where(radius <= 30, 60.0, 20.0)[None].repeat(12, axis=0)
    image[:6][:, radius <= 20] = 100.0
    image += rng.normal(0, 5, image.shape)
    seed = radius <= 20
    rule = StopRule(area_ratio_band=None, box_margin_mm=None)
    result = propagate(image.astype(np.float32), seed, 0, +1, 11, (1.0, 1.0, 1.0), stop_rule=rule)
    assert result.stops[1].reason == StopReason.LOW_QUALITY
    assert result.stops[1].slice_k == 6
    assert min(dice(result.masks[k], seed) for k in range(1, 6)) > 0.95



def biased_disks(gain_strength, seed=3):
    """MRI-like: a 100 disk (radius 18 -> 14 over 9 slices) in 85 tissue, all times a gain that rises from
    1 - `gain_strength` to 1 + `gain_strength` across the slice, as a coil's bias field does, plus noise."""
    rng = np.random.default_rng(seed)
    k, j, i = np.indices((9, 80, 96)).astype(float)
    disks = (j - 40) ** 2 + (i - 48) ** 2 <= (18 - 0.5 * k) ** 2
    gain = 1 + gain_strength * (i - 48) / 48
    image = np.where(disks, 100.0, 85.0) * gain + rng.normal(0, 3, disks.shape)
    return image.astype(np.float32), disks


def test_a_bias_field_is_divided_out_only_when_the_annotated_slice_needs_it():
    image, disks = biased_disks(0.3)
    # the disk's dark side (about 75) is darker than the tissue on the bright side (about 105)
    model = fit_checked_intensity_model([image[0]], [disks[0]])
    assert model.gain is not None and model.gain[40, 64] > 1.05 > 0.95 > model.gain[40, 32]
    # beyond the disk the fitted gain is not extrapolated
    assert model.gain.max() <= model.gain[disks[0]].max() and model.gain.min() >= model.gain[disks[0]].min()
    plain = fit_intensity_model([image[0]], [disks[0]])
    grown = signed_distance(disks[6]) + 3  # another slice, from a prior 3 pixels too large
    assert dice(refine_mask(image[6], grown, model), disks[6]) > 0.97 > dice(refine_mask(image[6], grown, plain),
                                                                              disks[6])
    flat, _ = biased_disks(0.0)
    assert fit_checked_intensity_model([flat[0]], [disks[0]]).gain is None
    ct = flat - 1000.0  # a signed image (CT in HU) has no multiplicative gain
    assert fit_checked_intensity_model([ct[0]], [disks[0]]).gain is None


def organ_beside_tissue(pixel_mm, seed=0):
    """CT-like at `pixel_mm` in-plane pixels: a 60 HU organ (22 mm radius, 44 mm deep, 2.5 mm slices) in 40 HU
    tissue that reaches 8 mm beyond it, then fat (-100 HU), 10 HU noise."""
    rng = np.random.default_rng(seed)
    n = int(round(100 / pixel_mm))
    k, j, i = np.indices((18, n, n)).astype(float)
    y, x = (j - n / 2) * pixel_mm, (i - n / 2) * pixel_mm
    organ = ((k * 2.5 / 44.0) ** 2 + (y / 22.0) ** 2 + (x / 22.0) ** 2) <= 1.0
    image = np.where((y / 30.0) ** 2 + (x / 30.0) ** 2 <= 1.0, 40.0, -100.0)
    image[organ] = 60.0
    return (image + rng.normal(0, 10, organ.shape)).astype(np.float32), organ


def test_on_coarse_pixels_the_background_is_learned_from_the_tissue_beside_the_object():
    """Eight 3 mm pixels around the organ are mostly fat, and a model learned there takes the 40 HU tissue for the
    organ; a ring of at most 8 mm keeps that tissue in the background."""
    assert ring_pixels((0.8, 0.8)) == ring_pixels((1.0, 1.0)) == 8 and ring_pixels((3.0, 3.0)) == 3
    assert ring_pixels((0.8, 2.4)) == 6  # the square pixel of the same area: 1.39 mm
    for pixel_mm in (0.8, 3.0):
        image, organ = organ_beside_tissue(pixel_mm)
        result = propagate(image, organ[0], 0, +1, 17, (2.5, pixel_mm, pixel_mm))
        assert dice(result.to_volume(organ.shape), organ) > 0.95


def blurred_tube():
    """MRI-like: a bright lobed tube (100) in a dark background (20), edges blurred over a few pixels (partial volume),
    slightly oblique through 30 slices; the truth is the half level, as a probability map > 0.5 would be."""
    from scipy import ndimage
    k, j, i = np.indices((30, 80, 80)).astype(float)
    angle = np.arctan2(j - 40, i - 40 - 0.3 * k)
    sharp = np.where(np.hypot(j - 40, i - 40 - 0.3 * k) <= 22 + 5 * np.cos(5 * angle), 100.0, 20.0)
    image = ndimage.gaussian_filter(sharp, (0, 1.2, 1.2))
    noisy = image + np.random.default_rng(0).normal(0, 2, image.shape)
    return noisy.astype(np.float32), image > 60


def test_the_background_ring_can_leave_out_the_layer_beside_the_mask_except_on_coarse_pixels():
    from scipy import ndimage
    mask = np.zeros((21, 21), bool)
    mask[8:13, 8:13] = True
    touching = ndimage.binary_dilation(mask) & ~mask
    ring = surroundings(mask, 8, gap_px=1)
    assert not (ring & touching).any() and ring.sum() > 0 and surroundings(mask, 8)[touching].all()
    assert surroundings(mask, 3, gap_px=1)[touching].all()  # a ring of 3 coarse pixels keeps the tissue just beside


def test_a_mask_drawn_a_pixel_short_of_a_blurred_edge_propagates_nearer_the_edge_not_further_inside():
    from scipy import ndimage
    image, truth = blurred_tube()
    drawn = ndimage.binary_erosion(truth[0])  # where a brush stops: the partial-volume layer left out
    assert drawn.sum() < 0.91 * truth[0].sum()
    result = propagate(image, drawn, 0, +1, 29, (1.0, 1.0, 1.0))
    assert result.masks[29].sum() > 0.93 * truth[29].sum()
    assert dice(result.to_volume(truth.shape), truth) > 0.96

"""One test of whether a volume is CT (HU, or unsigned as HU + 1024) for every tool: the brush expands the
soft-tissue window, propagation's multiplicative gain (a magnitude image's bias field) is left out for CT."""
import numpy as np
import pytest

from SmartBrushLib.algorithms.ct_units import hounsfield_shift, percentile_range
from MVAEvaluationLib.phantom import make_ct_phantom


@pytest.fixture(scope="module")
def ct():
    return make_ct_phantom(shape_kji=(32, 80, 80), seed=0)


def unsigned(image):
    return (image.astype(np.int32) + 1024).astype(np.uint16)


def test_ct_is_told_by_its_values_whatever_its_storage_and_other_images_are_not(ct):
    assert hounsfield_shift(ct.image) == 0.0 and hounsfield_shift(ct.image.astype(np.float32)) == 0.0
    assert hounsfield_shift(unsigned(ct.image)) == 1024.0
    # a CT exported through a display window, values of another scale, a dark-background magnitude image
    windowed = np.round((np.clip(ct.image, -160, 240) + 160) * 255 / 400).astype(np.uint8)
    assert hounsfield_shift(windowed) is None
    assert hounsfield_shift(ct.image.astype(np.float32) * 0.001) is None
    rng = np.random.default_rng(0)
    mri = np.where(ct.labelmap > 0, 400.0, 0.0) + np.abs(rng.normal(0, 30, ct.image.shape))
    assert hounsfield_shift(mri) is None
    assert hounsfield_shift(np.full((4, 4, 4), np.nan)) is None and percentile_range(np.full(3, np.inf)) is None


def test_noisy_ct_and_ct_padded_outside_its_field_of_view_are_ct(ct):
    rng = np.random.default_rng(1)
    for sigma in (60.0, 100.0):  # air's 0.5 percentile falls to -1155 and -1258 HU
        noisy = ct.image + rng.normal(0.0, sigma, ct.image.shape)
        assert hounsfield_shift(noisy) == 0.0
        assert hounsfield_shift(np.clip(noisy + 1024, 0, None).astype(np.uint16)) == 1024.0
    k, j, i = np.indices(ct.image.shape)
    outside = (j - 40) ** 2 + (i - 40) ** 2 > 38 ** 2
    for padding in (-2048, -3024):
        padded = np.where(outside, padding, ct.image).astype(np.int16)
        assert np.percentile(padded, 0.5) == padding and hounsfield_shift(padded) == 0.0
    # nothing but padding and values far below air is still not CT
    assert hounsfield_shift(np.where(outside, -3024, -2000).astype(np.int16)) is None


def test_propagation_learns_no_gain_on_ct_stored_unsigned(ct):
    from SmartPropagationLib.algorithms.intensity_model import fit_checked_intensity_model, ring_pixels
    from SmartPropagationLib.algorithms.propagation import propagate
    from SmartPropagationLib.algorithms.slice_predictors import build_registration
    effusion = ct.mask("effusion")
    k = int(np.argmax(effusion.sum(axis=(1, 2))))
    stored = unsigned(ct.image)
    # the annotated slice alone would choose a gain on CT + 1024 (it never may on HU: negative values)
    ring = ring_pixels(ct.spacing_kji[1:])
    assert fit_checked_intensity_model([stored[k]], [effusion[k]], ring_px=ring).gain is not None
    assert build_registration(stored, k, effusion[k], ct.spacing_kji).model.gain is None
    reference = propagate(ct.image, effusion[k], k, spacing_kji=ct.spacing_kji, max_slices=4)
    other = propagate(stored, effusion[k], k, spacing_kji=ct.spacing_kji, max_slices=4)
    assert len(reference.masks) > 2 and sorted(other.masks) == sorted(reference.masks)
    assert all(np.array_equal(other.masks[s], reference.masks[s]) for s in reference.masks)

"""Held-out variants: each keeps image, labels and RAS positions consistent; the modality of a case does not come
from its dtype or sign."""
import numpy as np
import pytest

from MVAEvaluationLib.heldout import (HELDOUT, darkening_bias, make_heldout, modality, relabelled_spacing,
                                      rescaled, resampled, reoriented, resized, windowed)
from MVAEvaluationLib.phantom import make_ct_phantom
from MVAEvaluationLib.variants import FAMILIES, Labelled, VariantError, make_variants


@pytest.fixture(scope="module")
def ct():
    phantom = make_ct_phantom(shape_kji=(20, 40, 40), seed=2)
    return Labelled("ct", phantom.image, phantom.labelmap, phantom.ijk_to_ras, dict(phantom.labels), "ct")


def mri_like(shape=(18, 26, 22)):
    grid = np.ogrid[tuple(slice(0, n) for n in shape)]
    ball = sum(((g - n / 2) / r) ** 2 for g, n, r in zip(grid, shape, (5, 8, 6))) < 1
    rng = np.random.default_rng(0)
    image = np.clip(np.where(ball, 150, 60) + rng.normal(0, 5, shape), 0, 255).astype(np.uint8)
    matrix = np.array([[0, 0, 1.2, 5.0], [0, -0.9, 0, 7.0], [1.5, 0, 0, -3.0], [0, 0, 0, 1]])
    return Labelled("mri", image, ball.astype(np.uint8), matrix, {"ball": 1})


def voxels_by_ras(data):
    """(RAS rounded to 1e-6 mm) -> (image value, label) of every voxel."""
    kji = np.indices(data.image.shape).reshape(3, -1)
    ras = (np.asarray(data.ijk_to_ras) @ np.vstack([kji[::-1], np.ones(kji.shape[1])]))[:3].T
    keys = map(tuple, np.round(ras, 6))
    return dict(zip(keys, zip(data.image.ravel().tolist(), data.labelmap.ravel().tolist())))


@pytest.mark.parametrize("axes, flips", [((0, 1, 2), (True, True, True)), ((2, 0, 1), (False, True, False)),
                                         ((1, 2, 0), (True, False, True))])
def test_another_storage_order_keeps_every_voxel_at_its_ras_position(axes, flips):
    data = mri_like()
    turned = reoriented(data, axes, flips)
    assert turned.image.shape == tuple(data.image.shape[a] for a in axes)
    assert voxels_by_ras(turned) == voxels_by_ras(data)
    with pytest.raises(VariantError):
        reoriented(data, (0, 0, 1))


def test_a_storage_convention_is_exact_and_refuses_values_its_dtype_cannot_hold(ct):
    unsigned = rescaled(ct, 1.0, 1024.0, np.uint16)
    assert unsigned.image.dtype == np.uint16 and unsigned.image.min() >= 0
    assert np.array_equal(unsigned.image.astype(np.int32) - 1024, ct.image.astype(np.int32))
    assert np.array_equal(rescaled(ct, 1.0, 0.0, np.float32).image, ct.image.astype(np.float32))
    with pytest.raises(VariantError):
        rescaled(ct, 1.0, 0.0, np.uint16)
    shown = windowed(ct, -160.0, 240.0)
    assert shown.image.dtype == np.uint8 and shown.image.min() == 0 and shown.image.max() == 255
    assert (shown.image[ct.image <= -160] == 0).all() and (shown.image[ct.image >= 240] == 255).all()
    inside = (ct.image > -150) & (ct.image < 230)
    assert np.allclose(shown.image[inside], (ct.image[inside].astype(float) + 160) * 255 / 400, atol=0.51)


def test_other_voxel_sizes_keep_the_box_and_the_structure(ct):
    spacing = np.linalg.norm(ct.ijk_to_ras[:3, :3], axis=0)
    small = relabelled_spacing(ct, 0.4)
    assert np.allclose(np.linalg.norm(small.ijk_to_ras[:3, :3], axis=0), 0.4 * spacing)
    assert np.array_equal(small.image, ct.image)
    coarse = resampled(ct, (2.5, 3.0, 3.0))
    assert np.allclose(np.linalg.norm(coarse.ijk_to_ras[:3, :3], axis=0)[::-1], (2.5, 3.0, 3.0))
    assert np.allclose(coarse.ijk_to_ras[:3, 3], ct.ijk_to_ras[:3, 3])  # the first voxel stays where it was
    # the liver's volume in mm^3 stays within 25 % (nearest-neighbour labels on a grid almost 4x coarser)
    label = ct.structures["liver"]
    volume = [(d.labelmap == label).sum() * np.prod(np.linalg.norm(d.ijk_to_ras[:3, :3], axis=0))
              for d in (ct, coarse)]
    assert abs(volume[1] / volume[0] - 1) < 0.25


@pytest.mark.parametrize("factor", [0.7, 1.3])
def test_a_smaller_or_larger_volume_keeps_ras_positions(factor):
    data = mri_like()
    other = resized(data, factor)
    assert (np.array(other.image.shape) > np.array(data.image.shape)).all() == (factor > 1)
    before, after = voxels_by_ras(data), voxels_by_ras(other)
    shared = set(before) & set(after)
    assert len(shared) == min(len(before), len(after))
    assert all(before[key] == after[key] for key in shared)


def test_a_darkening_bias_only_darkens_and_stays_smooth():
    data = mri_like()
    dark = darkening_bias(data, 0.25, seed=3)
    inside = data.labelmap > 0
    ratio = dark.image[inside].astype(float) / np.maximum(data.image[inside].astype(float), 1)
    assert ratio.max() <= 1.01 and ratio.min() >= 0.7 and ratio.max() - ratio.min() > 0.05


def test_the_modality_is_the_cases_own_and_never_the_dtype_or_sign(ct):
    assert modality(ct) == "ct" and modality(rescaled(ct, 1.0, 1024.0, np.uint16)) == "ct"
    unnamed = Labelled("ct", ct.image, ct.labelmap, ct.ijk_to_ras, {})
    # without a stated modality: CT has air, whatever its dtype (float CT used to count as MRI)
    assert modality(rescaled(unnamed, 1.0, 0.0, np.float32)) == "ct"
    assert modality(mri_like()) == "mri" and modality(rescaled(mri_like(), 1 / 255, 0.0, np.float32)) == "mri"
    # the report's MRI-only families follow the stated modality, so an unsigned CT gets no MRI bias field
    unsigned = rescaled(ct, 1.0, 1024.0, np.uint16)
    assert [family for family, _ in make_variants(unsigned, 4, ("bias", "noise"))] == ["noise", "noise"]
    assert FAMILIES["bias"][0] == "mri"


def test_every_heldout_variant_applies_to_its_modality_and_keeps_the_structure(ct):
    names = {name for name, _ in make_heldout(ct, ct.structures["liver"])}
    assert {"ct_unsigned", "ct_float", "ct_windowed", "other_handedness"} <= names and not names & {"mri_unit", "mri_scaled", "dark_bias"}
    made = make_heldout(mri_like(), 1)
    assert {"mri_unit", "mri_scaled", "dark_bias"} <= {name for name, _ in made}
    for name, variant in made:
        assert variant.modality == "mri" and (variant.labelmap == 1).any(), name
        assert variant.image.shape == variant.labelmap.shape, name
    with pytest.raises(VariantError):
        make_heldout(ct, 4, ("nope",))
    assert set(HELDOUT) >= {name for name, _ in made}


def test_the_other_scan_is_another_ct_with_every_structure_of_the_suite():
    from MVAEvaluationLib.heldout import OTHER_CT, other_scan
    other = other_scan()
    assert other.modality == "ct" and other.image.shape == OTHER_CT["shape_kji"]
    assert np.allclose(np.linalg.norm(other.ijk_to_ras[:3, :3], axis=0)[::-1], OTHER_CT["spacing_kji"])
    assert all((other.labelmap == other.structures[name]).any() for name in ("liver", "effusion"))

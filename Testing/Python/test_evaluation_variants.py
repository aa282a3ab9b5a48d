"""Robustness variants: each keeps image, labels and geometry consistent; the tuning/reporting split is fixed."""
import numpy as np
import pytest

from MVAEvaluationLib.phantom import make_ct_phantom
from MVAEvaluationLib.variants import (FAMILIES, REPORTED_FAMILIES, TUNING_FAMILIES, Labelled, VariantError,
                                       bias_field, make_variants, oblique, rician_noise, thick_slices,
                                       touching_neighbour)


@pytest.fixture(scope="module")
def ct():
    phantom = make_ct_phantom(shape_kji=(24, 48, 48), seed=3)
    return Labelled("ct", phantom.image, phantom.labelmap, phantom.ijk_to_ras, dict(phantom.labels))


def mri_like(shape=(20, 30, 30)):
    grid = np.ogrid[tuple(slice(0, n) for n in shape)]
    ball = sum((g - n / 2) ** 2 for g, n in zip(grid, shape)) < 8 ** 2
    image = np.where(ball, 150, 60).astype(np.uint8)
    return Labelled("mri", image, ball.astype(np.uint8), np.diag([1.0, 1.0, 1.5, 1.0]), {"ball": 1})


def centroid_ras(data, label):
    where = np.argwhere(data.labelmap == label)[:, ::-1].mean(0)
    return (data.ijk_to_ras @ np.append(where, 1.0))[:3]


def test_the_tuning_and_reported_families_do_not_overlap_and_cover_every_family():
    assert not set(TUNING_FAMILIES) & set(REPORTED_FAMILIES)
    assert set(TUNING_FAMILIES) | set(REPORTED_FAMILIES) == set(FAMILIES)


def test_a_bias_field_stays_within_its_strength_and_is_smooth():
    data = mri_like()
    biased = bias_field(data, 0.2, seed=1)
    ratio = biased.image[data.labelmap > 0].astype(float) / 150.0
    assert 0.79 <= ratio.min() and ratio.max() <= 1.21 and ratio.max() - ratio.min() > 0.05
    with pytest.raises(VariantError):
        bias_field(data, 1.5)


def test_rician_noise_raises_the_dark_background_as_magnitude_images_do():
    data = mri_like()
    noisy = rician_noise(data, 0.1, seed=2)
    background = noisy.image[data.labelmap == 0].astype(float)
    assert background.mean() > 60 and background.std() > 5


def test_oblique_and_thick_slice_variants_keep_every_structure_where_it_was_in_ras(ct):
    liver = ct.structures["liver"]
    for variant in (oblique(ct, 20.0, about_axis=1), thick_slices(ct, 3, axis=0)):
        assert variant.image.shape[1:] == variant.labelmap.shape[1:]
        assert np.linalg.norm(centroid_ras(variant, liver) - centroid_ras(ct, liver)) < 3.0
    thick = thick_slices(ct, 3, axis=0)
    assert np.isclose(np.linalg.norm(thick.ijk_to_ras[:3, 2]), 3 * np.linalg.norm(ct.ijk_to_ras[:3, 2]))


def test_a_touching_neighbour_changes_the_image_next_to_the_structure_but_not_the_labels(ct):
    liver = ct.structures["liver"]
    variant = touching_neighbour(ct, liver, 0.1, seed=5)
    changed = variant.image != ct.image
    assert changed.any() and np.array_equal(variant.labelmap, ct.labelmap)
    assert not (changed & (ct.labelmap != 0)).any()
    median_liver = np.median(ct.image[ct.labelmap == liver])
    assert abs(np.median(variant.image[changed]) - median_liver) < 20


def test_make_variants_skips_mri_only_families_on_ct_and_refuses_unknown_ones(ct):
    families = [family for family, _ in make_variants(ct, ct.structures["liver"], ("bias", "oblique"))]
    assert families == ["oblique"]
    with pytest.raises(VariantError):
        make_variants(ct, 4, ("sunburn",))


def test_supervoxel_quality_measures_see_edges_followed_and_a_grid_over_uniform_tissue():
    from MVAEvaluationLib.supervoxel_quality import boundary_fraction, boundary_recall, homogeneous_phantom
    image, ball, homogeneous = homogeneous_phantom((24, 24, 24), noise=0.0)
    exact = ball.astype(np.int64) + 1
    assert boundary_recall(exact, ball) == 1.0 and boundary_fraction(exact, homogeneous) == 0.0
    grid = (np.indices(ball.shape) // 6).sum(0) % 2 + 1  # cuts everywhere, follows no edge on purpose
    assert boundary_fraction(grid, homogeneous) > 0.2
    assert boundary_recall(np.ones_like(exact), ball) == 0.0

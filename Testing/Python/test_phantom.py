"""Synthetic CT phantom: labels, Hounsfield units, touching and ending objects, geometry, determinism."""
import numpy as np
import pytest
from scipy import ndimage

from MVAEvaluationLib.phantom import HU, LABELS, PhantomParameterError, make_ct_phantom, phantom_ijk_to_ras


@pytest.fixture(scope="module")
def a_phantom():
    return make_ct_phantom(seed=3)


def test_phantom_has_the_requested_shape_dtypes_and_spacing(a_phantom):
    assert a_phantom.image.shape == (48, 96, 96)
    assert a_phantom.image.dtype == np.int16
    assert a_phantom.labelmap.dtype == np.uint8
    assert a_phantom.spacing_kji == (2.5, 0.8, 0.8)


def test_every_named_structure_is_present_with_its_label(a_phantom):
    assert a_phantom.labels == {"lung": 1, "nodule": 2, "effusion": 3, "liver": 4}
    assert set(np.unique(a_phantom.labelmap)) == {0, 1, 2, 3, 4}
    assert a_phantom.mask("liver").sum() > 5000


@pytest.mark.parametrize("name, tissue", [("lung", "lung"), ("liver", "liver"), ("effusion", "fluid"),
                                          ("nodule", "soft_tissue")])
def test_structures_have_their_hounsfield_units(a_phantom, name, tissue):
    core = ndimage.binary_erosion(a_phantom.mask(name), iterations=2)
    assert abs(np.median(a_phantom.image[core]) - HU[tissue]) < 15


def test_air_fat_and_bone_have_their_hounsfield_units(a_phantom):
    assert abs(np.median(a_phantom.image[:, :3, :3]) - HU["air"]) < 15
    assert abs(np.median(a_phantom.image[:, 48, 46:50]) - HU["soft_tissue"]) < 60  # mediastinum
    spine_j = 48 + int(round(0.27 * 96))
    assert np.median(a_phantom.image[:, spine_j, 47:49]) > 500
    assert a_phantom.image.min() >= -1024


def test_image_is_noisy_and_slightly_smoothed(a_phantom):
    core = ndimage.binary_erosion(a_phantom.mask("liver"), iterations=3)
    assert 12 < a_phantom.image[core].std() < 30
    edge_profile = a_phantom.image[20, 2:20, 48]  # anterior body wall: air -> fat -> soft tissue
    assert edge_profile[0] < -900 and edge_profile[-1] > -200


def test_effusion_touches_the_lung_and_the_liver_touches_the_lung_base(a_phantom):
    lung = a_phantom.mask("lung")
    assert (ndimage.binary_dilation(a_phantom.mask("effusion")) & lung).sum() > 100
    assert (ndimage.binary_dilation(a_phantom.mask("liver")) & lung).sum() > 100


def test_nodule_ends_at_known_slices_inside_the_volume_surrounded_by_lung(a_phantom):
    nodule = a_phantom.mask("nodule")
    first, last = a_phantom.nodule_slices
    occupied = np.flatnonzero(nodule.any(axis=(1, 2)))
    assert (occupied[0], occupied[-1]) == (first, last)
    assert 0 < first < last < nodule.shape[0] - 1
    assert last - first + 1 >= 3
    shell = ndimage.binary_dilation(nodule) & ~nodule
    assert a_phantom.mask("lung")[shell].mean() > 0.95


def test_ijk_to_ras_uses_lps_style_flips_and_the_spacing(a_phantom):
    matrix = a_phantom.ijk_to_ras
    np.testing.assert_allclose(np.diag(matrix)[:3], [-0.8, -0.8, 2.5])
    centre_ijk = np.array([95 / 2, 95 / 2, 47 / 2, 1.0])
    np.testing.assert_allclose(matrix @ centre_ijk, [0, 0, 0, 1], atol=1e-9)


def test_oblique_direction_matrix_is_a_rotation_that_keeps_the_spacing():
    matrix = phantom_ijk_to_ras((48, 96, 96), (2.5, 0.8, 0.8), oblique_degrees=30)
    np.testing.assert_allclose(np.linalg.norm(matrix[:3, :3], axis=0), [0.8, 0.8, 2.5])
    directions = matrix[:3, :3] / np.array([0.8, 0.8, 2.5])
    np.testing.assert_allclose(directions.T @ directions, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(directions[:, 0], [-np.cos(np.pi / 6), -np.sin(np.pi / 6), 0], atol=1e-12)


def test_same_seed_gives_the_same_phantom_and_another_seed_differs(a_phantom):
    again = make_ct_phantom(seed=3)
    other = make_ct_phantom(seed=4)
    assert np.array_equal(again.image, a_phantom.image)
    assert np.array_equal(again.labelmap, a_phantom.labelmap)
    assert not np.array_equal(other.image, a_phantom.image)


def test_size_and_spacing_parameters_are_honoured():
    phantom = make_ct_phantom(shape_kji=(20, 40, 48), spacing_kji=(5.0, 1.5, 1.2), noise_hu=0)
    assert phantom.image.shape == phantom.labelmap.shape == (20, 40, 48)
    assert set(np.unique(phantom.labelmap)) == set(LABELS.values()) | {0}
    np.testing.assert_allclose(np.linalg.norm(phantom.ijk_to_ras[:3, :3], axis=0), [1.2, 1.5, 5.0])


def test_a_too_small_shape_is_refused():
    with pytest.raises(PhantomParameterError, match="at least 16"):
        make_ct_phantom(shape_kji=(8, 96, 96))

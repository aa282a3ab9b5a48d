"""Supervoxels that do not cut homogeneous tissue into a grid: noise estimate, band refinement, tissue merge."""
import numpy as np
import pytest
from scipy import ndimage

from MVAEvaluationLib.supervoxel_quality import boundary_fraction, grid_artefact
from SmartRegionsLib.algorithms.band_refinement import refine_thresholds
from SmartRegionsLib.algorithms.region_errors import InvalidParameterError
from SmartRegionsLib.algorithms.supervoxel_merge import block_noise, merge_regions
from SmartRegionsLib.algorithms.supervoxels import SupervoxelParameters, compute_supervoxels


def two_tissues(contrast, noise=5.0, shape=(16, 32, 32), seed=0):
    """Tissue 0 for i < 13, tissue `contrast` beyond, Gaussian noise; returns (image, tissue index)."""
    rng = np.random.default_rng(seed)
    tissue = (np.arange(shape[2]) >= 13) * np.ones(shape, int)
    return (contrast * tissue + rng.normal(0, noise, shape)).astype(np.float32), tissue


def test_a_uniform_noisy_phantom_has_fewer_boundary_voxels_than_simpleitk_slic():
    fractions = grid_artefact((40, 40, 40))
    assert fractions["ours"] < 0.5 * fractions["SimpleITK SLIC"]


def test_flat_tissue_is_one_region_across_grid_walls_and_no_region_crosses_the_edge():
    image, tissue = two_tissues(contrast=40.0)
    labels = compute_supervoxels(image, (1.0, 1.0, 1.0), SupervoxelParameters(region_size_mm=6.0))
    plain = compute_supervoxels(image, (1.0, 1.0, 1.0),
                                SupervoxelParameters(region_size_mm=6.0, tissue_separation=0.0))
    away = np.abs(np.arange(image.shape[2]) - 12.5) > 2  # the edge's partial-volume ramp stays its own regions
    for side in (0, 1):
        flat = (tissue == side) & away
        assert len(np.unique(labels[flat])) < len(np.unique(plain[flat])) / 4
    crossing = [r for r in np.unique(labels) if len(np.unique(tissue[labels == r])) > 1
                and min(np.sum((labels == r) & (tissue == t)) for t in (0, 1)) > 0.05 * np.sum(labels == r)]
    assert not crossing


def test_tissues_a_few_noise_deviations_apart_stay_apart_after_the_merge():
    # 20 units at noise 5: after the 0.7 mm smoothing about 7 deviations of the smoothed noise
    image, tissue = two_tissues(contrast=20.0)
    labels = compute_supervoxels(image, (1.0, 1.0, 1.0), SupervoxelParameters(region_size_mm=6.0))
    inner = np.abs(np.arange(image.shape[2]) - 12.5) > 2  # away from the smoothed edge
    left, right = labels[..., inner & (np.arange(image.shape[2]) < 13)], labels[..., inner & (np.arange(image.shape[2]) >= 13)]
    assert not set(np.unique(left)) & set(np.unique(right))


def test_merged_regions_are_connected_and_labelled_from_one():
    image, _ = two_tissues(contrast=30.0, seed=4)
    labels = compute_supervoxels(image, (1.0, 1.0, 1.0), SupervoxelParameters(region_size_mm=5.0))
    np.testing.assert_array_equal(np.unique(labels), np.arange(1, labels.max() + 1))
    for region in range(1, labels.max() + 1):
        assert ndimage.label(labels == region)[1] == 1


def test_block_noise_follows_the_noise_of_a_smoothed_field():
    rng = np.random.default_rng(1)
    field = ndimage.gaussian_filter(rng.normal(0, 10, (32, 32, 32)), 0.8)
    true = float(field.std())
    assert 0.6 * true < block_noise(field) < 1.1 * true
    assert block_noise(np.full((16, 16, 16), 7.0)) == 0.0


def test_a_band_holding_two_tissues_gets_a_threshold_between_them_and_one_tissue_none():
    image, _ = two_tissues(contrast=30.0, noise=3.0)
    smoothed = ndimage.gaussian_filter(image, 0.7)
    noise = block_noise(smoothed)
    cut = refine_thresholds(smoothed, np.zeros(0, np.float32), noise, 2.5, 8)
    assert ((cut > 8.0) & (cut < 22.0)).any()  # between the tissues (the edge's ramp may get cuts too)
    flat = ndimage.gaussian_filter(np.random.default_rng(2).normal(40, 3, (16, 32, 32)), 0.7)
    assert refine_thresholds(flat, np.zeros(0, np.float32), block_noise(flat), 2.5, 8).size == 0


def test_small_fragments_are_merged_even_without_a_tissue_merge():
    labels = np.ones((4, 8, 8), np.int32)
    labels[:, :, 4:] = 2
    labels[1, 1, 1] = 3  # a one-voxel fragment inside region 1
    values = np.where(labels == 2, 50.0, 10.0)
    merged = merge_regions(labels, values, min_size=4, noise=0.0, deviations=2.5)
    assert merged.max() == 2 and merged[1, 1, 1] == merged[0, 0, 0]


def test_a_negative_tissue_separation_is_refused():
    with pytest.raises(InvalidParameterError, match="Tissue separation"):
        compute_supervoxels(np.zeros((8, 8, 8), np.float32), (1.0, 1.0, 1.0),
                            SupervoxelParameters(region_size_mm=4.0, tissue_separation=-1.0))


def test_boundary_fraction_counts_only_voxels_inside_the_mask():
    labels = np.ones((4, 4, 8), np.int32)
    labels[..., 4:] = 2
    inside = np.zeros(labels.shape, bool)
    inside[..., :2] = True
    assert boundary_fraction(labels, inside) == 0.0
    assert boundary_fraction(labels) == pytest.approx(2 / 8)


def test_a_small_slice_mostly_covered_by_a_bright_ball_keeps_the_ball_apart():
    # few noise blocks here lie in flat tissue: the merge gap stays a small share of the intensity range
    j, i = np.mgrid[:21, :25]
    ball = (j - 10) ** 2 + (i - 12) ** 2 <= 36
    image = (np.where(ball, 300.0, 10.0) + np.random.default_rng(0).normal(0, 3, ball.shape)).astype(np.float32)
    from SmartRegionsLib.algorithms.supervoxels import compute_superpixels
    labels = compute_superpixels(image, (1.0, 1.0), SupervoxelParameters(region_size_mm=8.0))
    inner = ndimage.binary_erosion(ball, iterations=2)
    outer = ~ndimage.binary_dilation(ball, iterations=2)
    assert not set(np.unique(labels[inner])) & set(np.unique(labels[outer]))

"""Smart Regions on CT-like intensities: rank-based smart merge and the optional two-tissue split."""
import numpy as np
import pytest

from SmartRegionsLib.algorithms.region_errors import InvalidParameterError
from SmartRegionsLib.algorithms.region_graph import RegionGraph
from SmartRegionsLib.algorithms.region_lookup import RankTolerance, click_regions, default_merge_tolerance
from SmartRegionsLib.algorithms.region_split import noise_level, split_keys
from SmartRegionsLib.algorithms.supervoxels import SupervoxelParameters, compute_supervoxels
from SmartRegionsLib.regions_options import RegionsOptions


@pytest.fixture
def a_ct_strip():
    """(8, 8, 50) HU volume: air | soft tissue 40 | liver 60 | fluid 10 | bone, 10 columns each, noise 5 HU.

    Labels: one region per 5 columns (10 regions), so every tissue is two adjacent regions.
    """
    rng = np.random.default_rng(1)
    tissue = np.repeat([-1000.0, 40.0, 60.0, 10.0, 700.0], 10)
    image = (tissue * np.ones((8, 8, 1)) + rng.normal(0, 5, (8, 8, 50))).astype(np.float32)
    labels = np.broadcast_to(np.arange(50) // 5 + 1, (8, 8, 50)).astype(np.int32)
    return image, labels


def test_the_intensity_range_rule_crosses_ct_soft_tissue_edges(a_ct_strip):
    image, labels = a_ct_strip
    graph = RegionGraph(labels, image)
    tolerance = default_merge_tolerance(image)  # 4 % of air-to-bone: about 68 HU
    assert tolerance > 60
    taken = click_regions(labels, (4, 4, 12), graph, tolerance, max_hops=10)
    assert {3, 4, 5, 6, 7, 8} <= set(taken.tolist())  # soft tissue, liver and fluid in one click


def test_a_rank_tolerance_stops_at_soft_tissue_liver_and_fluid_edges(a_ct_strip):
    image, labels = a_ct_strip
    graph = RegionGraph(labels, image)
    np.testing.assert_array_equal(click_regions(labels, (4, 4, 12), graph, RankTolerance(), max_hops=10), [3, 4])
    np.testing.assert_array_equal(click_regions(labels, (4, 4, 27), graph, RankTolerance(), max_hops=10), [5, 6])
    np.testing.assert_array_equal(click_regions(labels, (4, 4, 31), graph, RankTolerance(), max_hops=10), [7, 8])


def test_a_wide_rank_tolerance_still_merges_neighbouring_tissues(a_ct_strip):
    image, labels = a_ct_strip
    graph = RegionGraph(labels, image)
    taken = click_regions(labels, (4, 4, 12), graph, RankTolerance(0.25), max_hops=10)
    np.testing.assert_array_equal(taken, [3, 4, 5, 6, 7, 8])  # a fifth of the voxels apart: not air, not bone


def test_region_mean_ranks_are_quantiles_of_the_image(a_ct_strip):
    image, labels = a_ct_strip
    rank = RegionGraph(labels, image).mean_rank
    assert rank[1] < 0.2 and rank[10] > 0.8  # air at the bottom, bone at the top
    assert rank[7] < rank[3] < rank[5]  # fluid < soft tissue < liver


@pytest.mark.parametrize("fraction", [-0.1, 1.5])
def test_a_rank_tolerance_outside_zero_to_one_is_refused(fraction):
    with pytest.raises(InvalidParameterError, match="share of the voxels"):
        RankTolerance(fraction)


def test_the_default_smart_merge_compares_ranks():
    options = RegionsOptions()
    assert options.merge_tolerance == "auto" and 0 < options.merge_rank_fraction < 0.1


@pytest.fixture
def a_fluid_soft_tissue_volume():
    """(12, 24, 24) HU: fluid (10) for i < 10, soft tissue (40) beyond, noise 4 HU."""
    rng = np.random.default_rng(2)
    image = np.where(np.arange(24) < 10, 10.0, 40.0) * np.ones((12, 24, 1))
    image += rng.normal(0, 4, image.shape)
    return image.astype(np.float32)


def test_the_split_cuts_a_region_holding_two_tissues(a_fluid_soft_tissue_volume):
    image = a_fluid_soft_tissue_volume
    # the plain banded grid (tissue_separation=0 adds no band between the tissues and merges nothing)
    one_band = SupervoxelParameters(region_size_mm=12.0, intensity_levels=1, compactness=0.1, tissue_separation=0.0)
    whole = compute_supervoxels(image, (1.0, 1.0, 1.0), one_band)
    split = compute_supervoxels(image, (1.0, 1.0, 1.0),
                                SupervoxelParameters(region_size_mm=12.0, intensity_levels=1, compactness=0.1,
                                                     split_separation=3.0, tissue_separation=0.0))
    # Grid cells span i < 12 and i >= 12: the edge at i = 10 lies inside the first cells.
    assert np.array_equal(whole[..., 3], whole[..., 11])  # one band: the edge is not seen
    fluid, soft = split[..., 2:8], split[..., 10:12]
    assert not set(np.unique(fluid)) & set(np.unique(soft))  # the split separates the two tissues
    assert split.max() <= 2 * whole.max()


def test_the_split_leaves_a_single_noisy_tissue_whole():
    rng = np.random.default_rng(3)
    image = (40.0 + rng.normal(0, 5, (12, 24, 24))).astype(np.float32)
    regions = np.ones(image.shape, np.int32)
    assert split_keys(regions, image, 3.0) is None


def test_noise_level_estimates_the_within_tissue_deviation(a_fluid_soft_tissue_volume):
    image = a_fluid_soft_tissue_volume
    tissue = (np.where(np.arange(24) < 10, 1, 2) * np.ones((12, 24, 1))).astype(np.int32)
    assert 3.0 < noise_level(tissue, image) < 5.0


def test_a_negative_split_separation_is_refused():
    with pytest.raises(InvalidParameterError, match="Split separation"):
        compute_supervoxels(np.zeros((8, 8, 8), np.float32), (1.0, 1.0, 1.0),
                            SupervoxelParameters(region_size_mm=4.0, split_separation=-1.0))


def test_split_regions_and_options_agree_on_the_default():
    assert RegionsOptions().parameters().split_separation == SupervoxelParameters().split_separation == 0.0


@pytest.fixture
def a_nodule_case(headless):
    """(9, 48, 48) volume: a soft-tissue block (40) with a 1-voxel rim (-380) in lung (-800), one region for both.

    Region labels: 1 = block + rim (as banding with a low threshold gives), 2 = the lung around it.
    """
    from conftest import GEOMETRIES, add_segmentation
    from MVABridgeLib.editor_session import SegmentEditorSession
    from MVABridgeLib.volumes import add_volume_node
    image = np.full((9, 48, 48), -800, np.int16)
    image[2:7, 4:44, 4:44] = -380
    image[2:7, 5:43, 5:43] = 40
    labels = np.full(image.shape, 2, np.int32)
    labels[2:7, 4:44, 4:44] = 1
    matrix = GEOMETRIES["lps_anisotropic"]
    volume = add_volume_node(headless.scene, image, matrix)
    segmentation, (segment_id,) = add_segmentation(headless, volume)
    session = SegmentEditorSession(volume, segmentation, segment_id, headless.scene)
    return image, labels, matrix, segmentation, segment_id, session


def _click(case, index_kji, add, rim_deviations, split_clicked_region=True, logic=None):
    from MVABridgeLib.segments import segment_mask_in_volume
    from MVABridgeLib.slice_geometry import SlicePlane
    from SmartRegionsLib.smart_regions_logic import SmartRegionsLogic
    image, labels, matrix, segmentation, segment_id, session = case
    logic = logic or SmartRegionsLogic(session.bridge, RegionsOptions(
        merge_tolerance=None, rim_deviations=rim_deviations, split_clicked_region=split_clicked_region))
    logic.volume_labels = lambda **kwargs: labels
    plane = SlicePlane.for_anatomical_axis("axial", index_kji[0], matrix, image.shape)
    pixel, _ = plane.index_kji_to_pixel([index_kji], matrix)
    logic.click(plane, tuple(np.round(pixel[0]).astype(int)), add=add)
    return segment_mask_in_volume(segmentation, segment_id, session.bridge.backend.source_volume_node()).astype(bool)


def test_a_removal_click_on_a_region_rim_removes_only_the_rim(a_nodule_case):
    image = a_nodule_case[0]
    added = _click(a_nodule_case, (4, 24, 24), True, 2.0)
    # a click inside takes the clicked tissue of the region: the block without the rim (region_homogeneity)
    np.testing.assert_array_equal(added, image == 40)
    removed = _click(a_nodule_case, (4, 4, 24), False, 2.0)
    np.testing.assert_array_equal(removed, image == 40)  # the rim is gone, the block stays


def test_without_rim_clicks_or_split_regions_a_removal_of_the_whole_segment_takes_one_grid_cell(a_nodule_case):
    from SmartRegionsLib.smart_regions_logic import REMOVAL_LIMIT, SmartRegionsLogic
    options = RegionsOptions(merge_tolerance=None, rim_deviations=None, split_clicked_region=False)
    logic = SmartRegionsLogic(a_nodule_case[-1].bridge, options)
    added = _click(a_nodule_case, (4, 24, 24), True, None, logic=logic)
    # the region under the negative click holds the positive click: removing it would take the object with it
    kept = _click(a_nodule_case, (4, 4, 24), False, None, logic=logic)
    assert not kept[4, 4, 24] and kept.sum() >= 0.5 * added.sum() >= REMOVAL_LIMIT * added.sum()
    # a fresh logic remembers no positive click: the removal is a leak taken back whole
    assert not _click(a_nodule_case, (4, 6, 24), False, None, split_clicked_region=False).any()

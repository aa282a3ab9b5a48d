"""Smart Regions on regions across edges: the clicked side of a two-tissue region, a merge that does not walk
through partial-volume rims, and a correction that cannot bury a small structure under a huge region."""
import numpy as np
import pytest
from conftest import GEOMETRIES, add_segmentation

from MVABridgeLib.editor_session import SegmentEditorSession
from MVABridgeLib.segments import segment_mask_in_volume
from MVABridgeLib.slice_geometry import SlicePlane
from MVABridgeLib.volumes import add_volume_node
from SmartRegionsLib.algorithms.region_homogeneity import clicked_side
from SmartRegionsLib.smart_regions_logic import GROWTH_LIMIT, RegionsOptions, SmartRegionsLogic


def test_the_clicked_side_of_a_region_across_an_edge_is_the_clicked_tissue_only():
    rng = np.random.default_rng(0)
    image = np.where(np.arange(20) < 8, 10.0, 40.0)[None, None, :] + rng.normal(0, 6, (6, 12, 20))
    side = clicked_side(image, np.ones(image.shape, bool), (3, 6, 2))
    assert side is not None and side[3, 6, 2]
    assert side[:, :, :7].mean() > 0.95 and not side[:, :, 9:].any()


def test_a_region_of_one_noisy_tissue_is_not_cut():
    image = 40.0 + np.random.default_rng(1).normal(0, 6, (6, 12, 20))
    assert clicked_side(image, np.ones(image.shape, bool), (3, 6, 10)) is None


def test_a_region_across_three_tissues_gives_the_middle_tissue_for_a_click_on_it():
    rng = np.random.default_rng(2)
    columns = np.select([np.arange(30) < 10, np.arange(30) < 20], [-800.0, 10.0], 40.0)
    image = columns[None, None, :] + rng.normal(0, 6, (6, 12, 30))
    side = clicked_side(image, np.ones(image.shape, bool), (3, 6, 15))
    assert side[:, :, 11:19].mean() > 0.95
    assert not side[:, :, :9].any() and not side[:, :, 21:].any()


@pytest.fixture
def scene(headless):
    def make(image):
        matrix = GEOMETRIES["identity"]
        volume = add_volume_node(headless.scene, image.astype(np.int16), matrix)
        segmentation, (segment_id,) = add_segmentation(headless, volume)
        session = SegmentEditorSession(volume, segmentation, segment_id, headless.scene)
        plane = SlicePlane.for_anatomical_axis("axial", 3, matrix, image.shape)

        def click(logic, index_kji, add=True):
            pixel = tuple(np.round(plane.index_kji_to_pixel([index_kji], matrix)[0][0]).astype(int))
            return logic.click(plane, pixel, add=add)

        return session, click, lambda: segment_mask_in_volume(segmentation, segment_id, volume).astype(bool)
    return make


def _given_regions(logic, labels):
    # the test decides the regions, so that what the merge may walk through is known
    logic.volume_labels = lambda *args, **kwargs: labels


@pytest.mark.parametrize("ratio, reaches_far_side", [(2.0, False), (None, True)])
def test_smart_merge_does_not_walk_through_a_rim_whose_mean_matches_but_which_straddles_an_edge(
        scene, ratio, reaches_far_side):
    rng = np.random.default_rng(3)
    image = 10 + rng.normal(0, 3, (6, 12, 30))
    checker = np.indices((6, 12, 10)).sum(axis=0) % 2 == 0
    image[:, :, 10:20] = np.where(checker, -100, 120)  # mean 10, as fat and soft tissue mixed
    labels = np.ones(image.shape, np.int32)
    labels[:, :, 10:20] = 2
    labels[:, :, 20:] = 3
    session, click, written = scene(image)
    logic = SmartRegionsLogic(session.bridge, RegionsOptions(region_size_mm=6.0, merge_spread_ratio=ratio,
                                                             split_clicked_region=False, rim_deviations=None))
    _given_regions(logic, labels)
    click(logic, (3, 6, 4))
    mask = written()
    assert mask[:, :, :10].all()
    assert mask[:, :, 10:].all() == reaches_far_side and mask[:, :, 10:].any() == reaches_far_side


@pytest.mark.parametrize("split, whole", [(True, False), (False, True)])
def test_a_click_on_a_region_holding_two_tissues_takes_the_clicked_tissue(scene, split, whole):
    rng = np.random.default_rng(4)
    image = np.where(np.arange(30) < 12, 10.0, 40.0)[None, None, :] + rng.normal(0, 6, (6, 12, 30))
    session, click, written = scene(image)
    logic = SmartRegionsLogic(session.bridge, RegionsOptions(region_size_mm=6.0, merge_tolerance=None,
                                                             split_clicked_region=split, rim_deviations=None))
    _given_regions(logic, np.ones(image.shape, np.int32))
    click(logic, (3, 6, 4))
    mask = written()
    assert mask[:, :, :10].mean() > 0.95
    assert mask[:, :, 14:].all() == whole and mask[:, :, 14:].any() == whole


def test_a_correction_click_on_a_huge_region_adds_one_grid_cell_of_it_not_the_whole_region(scene):
    image = 100 + np.random.default_rng(5).normal(0, 3, (6, 30, 80))
    image[2:5, 10:16, 10:16] = 300  # a small structure in a large flat background
    labels = np.where(image > 200, 1, 2).astype(np.int32)
    session, click, written = scene(image)
    logic = SmartRegionsLogic(session.bridge, RegionsOptions(region_size_mm=6.0))
    _given_regions(logic, labels)
    first = click(logic, (3, 12, 12))
    assert first == 3 * 6 * 6
    added = click(logic, (3, 20, 60))  # a click on the background: its region is 100 times the segment
    mask = written()
    assert mask[3, 20, 60] and 0 < added.added <= 6 ** 3
    assert mask[:, :, 50:].sum() == added.added < GROWTH_LIMIT * first


def test_a_correction_click_on_a_rim_region_takes_that_region_without_merging_beyond_it(scene):
    rng = np.random.default_rng(6)
    image = 10 + rng.normal(0, 3, (6, 12, 30))
    spread = rng.normal(0, 1, (6, 12, 10))
    image[:, :, 10:20] = 10 + 110 * (spread - spread.mean()) / spread.std()  # a rim: mean 10, deviation 110
    labels = np.ones(image.shape, np.int32)
    labels[:, :, 10:20] = 2
    labels[:, :, 20:] = 3
    session, click, written = scene(image)
    logic = SmartRegionsLogic(session.bridge, RegionsOptions(region_size_mm=6.0, rim_deviations=None))
    _given_regions(logic, labels)
    click(logic, (3, 6, 4))
    assert written()[:, :, :10].all() and not written()[:, :, 10:].any()
    click(logic, (3, 6, 14))  # the rim's mean matches the far region, but a rim's mean says nothing of a tissue
    mask = written()
    assert mask[:, :, :20].all() and not mask[:, :, 20:].any()

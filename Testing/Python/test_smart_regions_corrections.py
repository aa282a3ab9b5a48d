"""Region clicks that correct instead of toggling: click memory per region and the split of a mixed region."""
import numpy as np

from SmartRegionsLib.algorithms.region_corrections import ClickMemory, local_value, similar_part


def test_an_opposite_click_on_a_clicked_region_is_recognised_and_protects_it_from_merging():
    memory = ClickMemory()
    memory.reset_for("volume-1")
    memory.record(7, add=True, value=180.0)
    assert memory.opposite_click(7, add=False) == 180.0
    assert memory.opposite_click(7, add=True) is None and memory.opposite_click(8, add=False) is None
    assert memory.protected(add=False) == {7} and memory.protected(add=False, exclude=[7]) == set()
    memory.reset_for("volume-2")
    assert memory.protected(add=False) == set()


def test_the_part_of_a_mixed_region_like_the_new_click_is_taken_and_the_rest_stays():
    image = np.full((4, 10, 10), 50.0)
    image[:, :, 5:] = 200.0  # the region straddles an edge at column 5
    region = np.ones(image.shape, bool)
    part = similar_part(image, region, value_now=local_value(image, (2, 5, 8)), value_before=local_value(image, (2, 5, 1)))
    assert part[:, :, 6:].all() and not part[:, :, :4].any()


def test_a_value_goes_with_the_nearest_click_example_within_the_gap_between_the_two_signs():
    from SmartRegionsLib.algorithms.region_corrections import example_side
    fluid, soft_tissue = [10.0], [40.0]  # positive and negative clicks
    side = example_side(np.array([5.0, 24.0, 26.0, 60.0, -150.0]), fluid, soft_tissue)
    # 26 is nearer soft tissue; -150 is nearer fluid but farther from it than soft tissue is (lung, not fluid)
    assert side.tolist() == [True, True, False, False, False]
    assert example_side(np.array([-150.0, 60.0]), fluid, []).all()  # no example of the other sign: no limit


def test_a_region_holding_both_signs_tissue_gives_only_the_part_like_the_clicks_of_its_sign():
    from SmartRegionsLib.algorithms.region_corrections import example_part
    image = np.full((4, 10, 10), 10.0)
    image[:, :, 6:] = 40.0
    part = example_part(image, np.ones(image.shape, bool), same_examples=[11.0], other_examples=[39.0])
    assert part[:, :, :5].all() and not part[:, :, 7:].any()


def test_smart_merge_neither_takes_nor_walks_through_blocked_regions():
    from SmartRegionsLib.algorithms.region_graph import RegionGraph
    labels = np.repeat(np.arange(1, 6)[None, None, :], 3, axis=0).repeat(3, axis=1)  # regions 1..5 in a row
    graph = RegionGraph(labels, np.full(labels.shape, 100.0))
    assert graph.similar_regions(1, 1.0, max_hops=10).tolist() == [1, 2, 3, 4, 5]
    blocked = np.zeros(6, bool)
    blocked[3] = True
    assert graph.similar_regions(1, 1.0, max_hops=10, blocked=blocked).tolist() == [1, 2]


def test_click_memory_keeps_the_values_of_every_click_of_each_sign():
    memory = ClickMemory()
    memory.reset_for("volume-1")
    memory.record(3, add=True, value=60.0)
    memory.record(4, add=False, value=40.0)
    memory.record(3, add=False, value=42.0)  # the same region clicked again: its latest sign counts for merging
    assert memory.examples(add=True) == [60.0] and memory.examples(add=False) == [40.0, 42.0]
    assert memory.protected(add=True) == {3, 4}
    memory.reset_for("volume-2")
    assert memory.examples(add=True) == [] and memory.examples(add=False) == []


def test_a_removal_after_an_addition_takes_the_tissue_like_it_and_keeps_the_tissue_like_the_addition(headless):
    from conftest import GEOMETRIES, add_segmentation

    from MVABridgeLib.editor_session import SegmentEditorSession
    from MVABridgeLib.segments import segment_mask_in_volume
    from MVABridgeLib.slice_geometry import SlicePlane
    from MVABridgeLib.volumes import add_volume_node
    from SmartRegionsLib.smart_regions_logic import RegionsOptions, SmartRegionsLogic
    image = np.full((10, 30, 80), 100, np.int16)
    image[:, :, 20:60] = 160  # a neighbour close enough in intensity for smart merge to take it with the structure
    image += np.random.default_rng(0).normal(0, 3, image.shape).astype(np.int16)
    matrix = GEOMETRIES["identity"]
    volume = add_volume_node(headless.scene, image, matrix)
    segmentation, (segment_id,) = add_segmentation(headless, volume)
    session = SegmentEditorSession(volume, segmentation, segment_id, headless.scene)
    logic = SmartRegionsLogic(session.bridge, RegionsOptions(region_size_mm=6.0, merge_tolerance=70.0))
    plane = SlicePlane.for_anatomical_axis("axial", 5, matrix, image.shape)
    pixel = lambda index: tuple(np.round(plane.index_kji_to_pixel([index], matrix)[0][0]).astype(int))  # noqa: E731
    logic.click(plane, pixel((5, 15, 7)), add=True)
    mask = segment_mask_in_volume(segmentation, segment_id, volume).astype(bool)
    assert mask[:, :, 20:60].mean() > 0.9  # the merge took the neighbour too
    logic.click(plane, pixel((5, 15, 40)), add=False)
    after = segment_mask_in_volume(segmentation, segment_id, volume).astype(bool)
    assert after[:, :, 22:58].sum() == 0  # the whole neighbour is gone, not just the clicked region
    assert after[:, :, :18].all() and np.array_equal(after[:, :, 62:], mask[:, :, 62:])  # the structure stays

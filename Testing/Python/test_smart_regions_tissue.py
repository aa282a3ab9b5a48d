"""Smart Regions' first click takes the clicked tissue voxel by voxel near its regions (tissue_refinement)."""
import numpy as np
from conftest import GEOMETRIES, add_segmentation

from MVABridgeLib.editor_session import SegmentEditorSession
from MVABridgeLib.segments import segment_mask_in_volume
from MVABridgeLib.slice_geometry import SlicePlane
from MVABridgeLib.volumes import add_volume_node
from SmartRegionsLib.algorithms.region_graph import RegionGraph
from SmartRegionsLib.algorithms.tissue_refinement import grouped_medians, tissue_part, window_size
from SmartRegionsLib.smart_regions_logic import RegionsOptions, SmartRegionsLogic

SHAPE = (8, 14, 36)


def _three_tissues(seed=0):
    """Lung (columns 0-9), fluid (10-21), soft tissue (22-35), and regions whose fluid/soft border is at 17."""
    columns = np.select([np.arange(SHAPE[2]) < 10, np.arange(SHAPE[2]) < 22], [-800.0, 10.0], 40.0)
    image = columns[None, None, :] + np.random.default_rng(seed).normal(0, 10, SHAPE)
    labels = np.select([np.arange(SHAPE[2]) < 10, np.arange(SHAPE[2]) < 17], [1, 2], 3)
    return image, np.broadcast_to(labels[None, None, :], SHAPE).astype(np.int32).copy()


def _part(image, labels, segment=None):
    graph = RegionGraph(labels, image)
    return tissue_part(image, labels, labels == 2, np.zeros(SHAPE, bool) if segment is None else segment,
                       np.zeros(int(labels.max()) + 1, bool), graph.neighbours, (4, 7, 13))


def test_grouped_medians_are_the_medians_of_each_group():
    values = np.array([5.0, 1.0, 3.0, 10.0, 2.0, 4.0])
    groups = np.array([0, 0, 0, 2, 2, 2])
    medians = grouped_medians(values, groups, 4)
    assert medians[0] == 3.0 and medians[2] == 4.0 and np.isnan(medians[1]) and np.isnan(medians[3])


def test_the_clicked_tissue_is_taken_beyond_its_region_border_and_stops_at_the_next_tissue():
    image, labels = _three_tissues()
    part = _part(image, labels)
    assert part is not None
    assert part[:, :, 11:21].mean() > 0.97  # the fluid the neighbouring region held is taken too
    assert part[:, :, 23:].mean() < 0.01 and not part[:, :, :9].any()  # no soft tissue, no lung


def test_a_correction_beside_the_segment_is_left_to_the_region_choice():
    image, labels = _three_tissues()
    segment = np.zeros(SHAPE, bool)
    segment[:, :, 12] = True
    assert _part(image, labels, segment) is None


def test_local_means_stay_in_plane_on_thick_slices():
    assert window_size(3, (2.5, 0.8, 0.8)) == (1, 3, 3)
    assert window_size(3, (1.0, 1.0, 1.2)) == (3, 3, 3)
    assert window_size(2) == (3, 3)


def test_a_first_click_writes_the_tissue_and_the_option_off_takes_the_regions_as_they_are(headless):
    image, labels = _three_tissues(1)
    matrix = GEOMETRIES["identity"]
    volume = add_volume_node(headless.scene, image.astype(np.int16), matrix)
    segmentation, (segment_id,) = add_segmentation(headless, volume)
    plane = SlicePlane.for_anatomical_axis("axial", 4, matrix, SHAPE)
    pixel = tuple(np.round(plane.index_kji_to_pixel([(4, 7, 13)], matrix)[0][0]).astype(int))
    masks = {}
    for refine in (True, False):
        session = SegmentEditorSession(volume, segmentation, segment_id, headless.scene)
        logic = SmartRegionsLogic(session.bridge, RegionsOptions(merge_tolerance=None, tissue_refinement=refine))
        logic.volume_labels = lambda *args, **kwargs: labels
        logic.click(plane, pixel)
        masks[refine] = segment_mask_in_volume(segmentation, segment_id, volume).astype(bool)
        session.undo()
    assert masks[False][:, :, 10:17].all() and not masks[False][:, :, 17:].any()
    assert masks[True][:, :, 11:21].mean() > 0.97 and masks[True][:, :, 23:].mean() < 0.01

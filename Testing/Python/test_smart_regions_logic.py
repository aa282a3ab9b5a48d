"""Smart Regions through the bridge: clicks in 2D and 3D mode, removal, undo, oblique views, bad input."""
import numpy as np
import pytest
from conftest import GEOMETRIES, add_segmentation, rotation

from MVABridgeLib.editor_session import SegmentEditorSession
from MVABridgeLib.errors import OutsideVolumeError
from MVABridgeLib.segments import segment_mask_in_volume
from MVABridgeLib.slice_geometry import SlicePlane, slice_to_ras_for
from MVABridgeLib.volumes import add_volume_node
from SmartRegionsLib.smart_regions_logic import RegionsOptions, SmartRegionsLogic


@pytest.fixture
def edge_case(headless):
    """Two flat halves with a sharp edge along i, LPS anisotropic geometry."""
    image = np.full((10, 30, 30), 10, np.int16)
    image[:, :, 15:] = 300
    image += np.random.default_rng(0).normal(0, 3, image.shape).astype(np.int16)
    matrix = GEOMETRIES["lps_anisotropic"]
    volume = add_volume_node(headless.scene, image, matrix)
    segmentation, (segment_id,) = add_segmentation(headless, volume)
    session = SegmentEditorSession(volume, segmentation, segment_id, headless.scene)
    return image, matrix, volume, segmentation, segment_id, session


def written(case):
    image, matrix, volume, segmentation, segment_id, session = case
    return segment_mask_in_volume(segmentation, segment_id, volume).astype(bool)


def pixel_of(plane, index_kji, matrix):
    pixel, _ = plane.index_kji_to_pixel([index_kji], matrix)
    return tuple(np.round(pixel[0]).astype(int))


def test_3d_click_adds_a_region_on_one_side_of_the_edge_and_undo_removes_it(edge_case):
    image, matrix, volume, segmentation, segment_id, session = edge_case
    logic = SmartRegionsLogic(session.bridge, RegionsOptions(region_size_mm=6.0, merge_tolerance=None))
    plane = SlicePlane.for_anatomical_axis("axial", 5, matrix, image.shape)
    count = logic.click(plane, pixel_of(plane, (5, 12, 20), matrix))
    result = written(edge_case)
    assert count > 0 and result.sum() == count
    assert result[:, :, 15:].sum() == count  # only the bright side
    assert result[5, 12, 20]
    assert result.any(axis=(1, 2)).sum() > 1  # a supervoxel spans several slices
    session.undo()
    assert written(edge_case).sum() == 0


def test_2d_click_touches_only_the_clicked_slice_and_removal_takes_it_back(edge_case):
    image, matrix, volume, segmentation, segment_id, session = edge_case
    logic = SmartRegionsLogic(session.bridge, RegionsOptions(region_size_mm=6.0, mode="2d", merge_tolerance=None))
    plane = SlicePlane.for_anatomical_axis("axial", 4, matrix, image.shape)
    logic.click(plane, pixel_of(plane, (4, 10, 5), matrix))
    result = written(edge_case)
    assert result.sum() > 0 and result[4].sum() == result.sum()
    assert not result[4, :, 15:].any()
    logic.click(plane, pixel_of(plane, (4, 10, 5), matrix), add=False)
    assert written(edge_case).sum() == 0


def test_drag_takes_every_region_under_the_stroke_in_one_undo_step(edge_case):
    image, matrix, volume, segmentation, segment_id, session = edge_case
    logic = SmartRegionsLogic(session.bridge, RegionsOptions(region_size_mm=6.0, merge_tolerance=None))
    plane = SlicePlane.for_anatomical_axis("axial", 5, matrix, image.shape)
    stroke = [pixel_of(plane, (5, j, 20), matrix) for j in range(2, 28, 3)]
    logic.drag(plane, stroke)
    assert written(edge_case)[5, 2:28, 20].all()
    session.undo()
    assert written(edge_case).sum() == 0


def test_click_in_an_oblique_view_lands_on_the_voxel_under_the_cursor(edge_case):
    image, matrix, volume, segmentation, segment_id, session = edge_case
    center = (matrix @ np.array([15, 15, 5, 1.0]))[:3]
    slice_to_ras = slice_to_ras_for("axial", center)
    slice_to_ras[:3, :3] = rotation(0, 35) @ slice_to_ras[:3, :3]
    plane = SlicePlane.voxel_aligned(slice_to_ras, matrix, image.shape)
    assert not plane.is_voxel_aligned
    pixel = pixel_of(plane, (5, 15, 22), matrix)
    logic = SmartRegionsLogic(session.bridge, RegionsOptions(region_size_mm=6.0, merge_tolerance=None))
    logic.click(plane, pixel)
    index = tuple(np.round(plane.pixel_to_index_kji([pixel], matrix)[0]).astype(int))
    assert written(edge_case)[index]


def test_click_outside_the_slice_raises_and_changes_nothing(edge_case):
    image, matrix, volume, segmentation, segment_id, session = edge_case
    logic = SmartRegionsLogic(session.bridge)
    plane = SlicePlane.for_anatomical_axis("axial", 5, matrix, image.shape)
    with pytest.raises(OutsideVolumeError):
        logic.click(plane, (plane.shape[0] + 5, 3))
    assert written(edge_case).sum() == 0


def test_boundaries_and_hover_mask_on_a_plane(edge_case):
    image, matrix, volume, segmentation, segment_id, session = edge_case
    logic = SmartRegionsLogic(session.bridge, RegionsOptions(region_size_mm=6.0, merge_tolerance=None))
    plane = SlicePlane.for_anatomical_axis("axial", 5, matrix, image.shape)
    edges = logic.boundaries(plane)
    assert edges.shape == plane.shape and 0 < edges.mean() < 0.6
    pixel = pixel_of(plane, (5, 12, 20), matrix)
    hover = logic.hover(plane, pixel)
    # the flat half is one region (merged across grid walls), which never crosses the edge
    assert hover[pixel] and hover.sum() <= hover.size / 2


def test_smart_merge_takes_similar_neighbours_and_a_removal_takes_back_the_clicked_neighbourhood(edge_case):
    image, matrix, volume, segmentation, segment_id, session = edge_case
    logic = SmartRegionsLogic(session.bridge, RegionsOptions(region_size_mm=6.0))  # merge on by default
    plane = SlicePlane.for_anatomical_axis("axial", 5, matrix, image.shape)
    logic.click(plane, pixel_of(plane, (5, 12, 20), matrix))
    merged = written(edge_case)
    assert merged[:, :, 15:].mean() > 0.9 and not merged[:, :, :15].any()  # the whole bright half, not beyond
    logic.click(plane, pixel_of(plane, (5, 12, 20), matrix), add=False)
    after = written(edge_case)
    assert not after[5, 12, 20] and 0 < after.sum() < merged.sum()  # one hop: not the whole merged group


def test_regions_are_computed_once_per_volume_and_parameters(edge_case):
    image, matrix, volume, segmentation, segment_id, session = edge_case
    logic = SmartRegionsLogic(session.bridge, RegionsOptions(region_size_mm=6.0))
    assert not logic.has_volume_labels()
    first = logic.volume_labels()
    assert logic.has_volume_labels() and logic.volume_labels() is first
    logic.options = RegionsOptions(region_size_mm=9.0)
    assert not logic.has_volume_labels()
    second = logic.volume_labels()  # recomputed: flat tissue is one region either way, so no fewer regions here
    assert second is not first and second.max() <= first.max()


def test_supervoxels_can_be_computed_in_a_worker_thread_from_a_token(edge_case):
    import threading
    image, matrix, volume, segmentation, segment_id, session = edge_case
    logic = SmartRegionsLogic(session.bridge, RegionsOptions(region_size_mm=6.0))
    session.bridge.work_volume()  # read on the VTK thread first
    token = logic.volume_token()
    result, fractions = {}, []
    worker = threading.Thread(target=lambda: result.update(labels=logic.volume_labels(fractions.append, None, token)))
    worker.start()
    worker.join(60)
    assert result["labels"].shape == image.shape and fractions and logic.has_volume_labels()
    assert logic.volume_labels() is result["labels"]  # the Qt thread then finds them cached

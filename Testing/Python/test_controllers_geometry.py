"""Controllers map view events to the right voxels: every view orientation, LPS and oblique volumes, a
transformed segmentation; 3D-view events are left alone; overlays follow the slice node."""
import numpy as np
import pytest
from conftest import GEOMETRIES, rotation
from controller_scene import ORIENTED_VIEWS, event, make_scene, slice_node

from MVAControllersLib.smart_brush_controller import BrushToolOptions, SmartBrushController
from MVAControllersLib.smart_regions_controller import RegionsToolOptions, SmartRegionsController
from MVAControllersLib.view_events import EventKind, ViewEvent


def regions_2d(scene):
    options = RegionsToolOptions(mode="2d", region_size_mm=6.0, merge_tolerance=None, rim_deviations=None)
    return SmartRegionsController(scene.bridge, options=options)


@pytest.mark.parametrize("geometry", ["identity", "lps_anisotropic", "oblique_anisotropic"])
@pytest.mark.parametrize("orientation", list(ORIENTED_VIEWS))
def test_a_region_click_at_the_ball_centre_takes_the_voxel_under_the_cursor(headless, geometry, orientation):
    scene = make_scene(headless, GEOMETRIES[geometry])
    controller = regions_2d(scene)
    centre = scene.centre_ras()
    node = slice_node(orientation, centre)
    for kind in ("press", "release"):
        reaction = controller.handle(event(kind, node, centre))
        assert reaction.consumed and not reaction.message
    segment = scene.segment()
    assert segment[scene.local_index(centre)]
    assert segment[scene.ball].sum() >= 0.9 * segment.sum() > 0  # the region follows the ball's edge


def test_a_transformed_segmentation_gets_the_voxel_under_the_cursor_in_its_own_grid(headless):
    scene = make_scene(headless, GEOMETRIES["lps_anisotropic"])
    centre = scene.centre_ras()
    to_parent = np.eye(4)  # 12 degrees about the ball's centre, then 2 mm along R and A
    to_parent[:3, :3] = rotation(2, 12)
    to_parent[:3, 3] = centre - rotation(2, 12) @ centre + (2.0, 2.0, 0.0)
    scene.transform_segmentation(to_parent)
    controller = regions_2d(scene)
    node = slice_node("axial", centre)
    controller.handle(event("press", node, centre))
    assert not controller.handle(event("release", node, centre)).message
    segment = scene.segment()
    local = scene.local_index(centre)
    without_transform = tuple(int(v) for v in np.round(
        np.linalg.solve(scene.bridge.work_volume().index_to_ras, np.append(centre, 1.0))[:3][::-1]))
    assert local != without_transform  # the transform moves the cursor's voxel
    assert segment[local]


def test_events_from_3d_views_are_not_consumed_and_change_nothing(headless):
    scene = make_scene(headless, GEOMETRIES["identity"])
    controller = regions_2d(scene)
    for kind in (EventKind.PRESS, EventKind.MOVE, EventKind.RELEASE, EventKind.KEY):
        reaction = controller.handle(ViewEvent(kind, (10, 10), None))
        assert not reaction.consumed and not reaction.message
    assert scene.segment().sum() == 0


def test_the_brush_preview_overlay_follows_pan_and_scroll_of_the_slice_node(headless):
    scene = make_scene(headless, GEOMETRIES["identity"])
    controller = SmartBrushController(scene.bridge, options=BrushToolOptions(radius_mm=2.0))
    centre = scene.centre_ras()
    node = slice_node("axial", centre)
    for kind in ("press", "release"):
        reaction = controller.handle(event(kind, node, centre))
    assert reaction.redraw and "Preview" in reaction.status
    before = controller.view_overlays(node)["preview"]
    assert before.shape == (100, 120) and before.sum() > 10
    pan = np.eye(4)
    pan[:3, 3] = (5.0, 0.0, 0.0)  # 5 mm to the left in the view: 10 view pixels at 0.5 mm per pixel
    node.GetSliceToRAS().DeepCopy(_matrix(pan @ _array(node.GetSliceToRAS())))
    node.UpdateMatrices()
    after = controller.view_overlays(node)["preview"]
    assert after.sum() == pytest.approx(before.sum(), rel=0.1)
    assert np.argwhere(after)[:, 1].mean() == pytest.approx(np.argwhere(before)[:, 1].mean() + 10, abs=1.0)
    node.SetSliceOffset(node.GetSliceOffset() + 3.0)  # three slices further: the preview is not on this one
    assert controller.view_overlays(node)["preview"].sum() == 0


def _array(matrix):
    from MVABridgeLib.image_data import matrix_to_array
    return matrix_to_array(matrix)


def _matrix(array):
    from MVABridgeLib.image_data import array_to_matrix
    return array_to_matrix(array)


def _voxels_on_view_plane(scene, node, written):
    """Distance of each written voxel centre from the view's plane, in units of the voxel's half extent along the
    plane's normal (<= 1: the plane passes through the voxel)."""
    from MVABridgeLib.image_data import matrix_to_array
    from MVAControllersLib.view_planes import world_to_segmentation
    local_to_world = np.linalg.inv(world_to_segmentation(scene.segmentation))
    index = np.argwhere(written)[:, ::-1]
    centres = (local_to_world @ scene.bridge.work_volume().index_to_ras @ np.c_[index, np.ones(len(index))].T).T[:, :3]
    slice_to_ras = matrix_to_array(node.GetSliceToRAS())
    normal = slice_to_ras[:3, 2] / np.linalg.norm(slice_to_ras[:3, 2])
    edges_world = local_to_world[:3, :3] @ scene.bridge.work_volume().index_to_ras[:3, :3]
    half_extent = 0.5 * np.abs(edges_world.T @ normal).sum()
    return np.abs((centres - slice_to_ras[:3, 3]) @ normal) / half_extent


@pytest.mark.parametrize("transformed", [False, True], ids=["plain", "transformed_segmentation"])
@pytest.mark.parametrize("orientation", list(ORIENTED_VIEWS))
def test_brush_and_sam_write_only_voxels_the_view_cuts(headless, orientation, transformed):
    from controller_scene import finish_jobs
    from test_controllers_tools import TinyEngines

    from MVAControllersLib.background_jobs import JobRunner
    from MVAControllersLib.segment_anything_controller import SegmentAnythingController
    scene = make_scene(headless, GEOMETRIES["oblique_anisotropic"])
    centre = scene.centre_ras()
    if transformed:
        to_parent = np.eye(4)
        to_parent[:3, :3] = rotation(0, 10)
        to_parent[:3, 3] = centre - rotation(0, 10) @ centre + (1.5, 0.0, -1.0)
        scene.transform_segmentation(to_parent)
    node = slice_node(orientation, centre)
    brush = SmartBrushController(scene.bridge, JobRunner(threaded=False),
                                 options=BrushToolOptions(radius_mm=2.0, auto_apply=True))
    for kind in ("press", "release"):
        reaction = brush.handle(event(kind, node, centre))
    assert not reaction.message, reaction.message
    written = scene.segment()
    assert written[scene.local_index(centre)] and _voxels_on_view_plane(scene, node, written).max() <= 1 + 1e-6
    scene.session.undo()
    engines = TinyEngines()
    sam = SegmentAnythingController(scene.bridge, engines, JobRunner(threaded=False))
    sam.handle(event("press", node, centre))
    assert not finish_jobs(sam).message
    written = scene.segment()
    assert written.any() and _voxels_on_view_plane(scene, node, written).max() <= 1 + 1e-6

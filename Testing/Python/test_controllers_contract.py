"""The edit contract at the controllers (what the desktop effects and the browser drive): a segment deleted or
renamed, or the source volume changed, while a 3D job runs or a preview waits; every outcome is a message, and
nothing is written where the user did not ask."""
import numpy as np
import pytest
from conftest import GEOMETRIES
from controller_scene import event, finish_jobs, make_scene, slice_node

from MVABridgeLib.volumes import add_volume_node
from MVAControllersLib.background_jobs import JobRunner
from MVAControllersLib.smart_brush_controller import BrushToolOptions, SmartBrushController
from MVAControllersLib.smart_propagation_controller import SmartPropagationController
from MVAControllersLib.smart_regions_controller import RegionsToolOptions, SmartRegionsController


@pytest.fixture
def scene(headless):
    return make_scene(headless, GEOMETRIES["lps_anisotropic"], names=("A", "B"))


def brush_3d(scene):
    return SmartBrushController(scene.bridge, JobRunner(threaded=False),
                                options=BrushToolOptions(radius_mm=1.5, mode="3d"))


def stroke_at_centre(controller, scene, orientation="axial"):
    centre = scene.centre_ras()
    node = slice_node(orientation, centre)
    controller.handle(event("press", node, centre))
    return controller.handle(event("release", node, centre + (1.0, 0, 0)))


def _mask(scene, segment_id):
    from MVABridgeLib.segments import segment_mask_in_volume
    return segment_mask_in_volume(scene.segmentation, segment_id, scene.volume).astype(bool)


def propagation_started(scene):
    """The user's seed on the middle axial slice, and a propagation preview started from it."""
    seed = np.zeros(scene.image.shape, bool)
    k = scene.image.shape[0] // 2
    seed[k] = scene.ball[k]
    scene.bridge.write_blocks((0, 0, 0), add=seed)
    controller = SmartPropagationController(scene.bridge, JobRunner(threaded=False))
    controller.preview(slice_node("axial", scene.centre_ras()))
    return controller, seed


def test_a_segment_deleted_while_the_3d_brush_update_runs_gets_a_message_and_nothing_is_written(scene):
    controller = brush_3d(scene)
    b_drawn = np.zeros(scene.image.shape, bool)
    b_drawn[1:3, 2:5, 2:5] = True
    scene.bridge.write_blocks((0, 0, 0), add=b_drawn)  # the user's voxels, in A
    scene.session.select_segment(scene.segment_ids[1])
    scene.bridge.write_blocks((0, 0, 0), add=np.roll(b_drawn, 8, axis=2))
    scene.session.select_segment(scene.segment_ids[0])
    before = _mask(scene, scene.segment_ids[1])
    assert stroke_at_centre(controller, scene).job is not None
    scene.segmentation.GetSegmentation().RemoveSegment(scene.segment_ids[0])  # deleted while the job runs
    finish_jobs(controller)
    applied = controller.apply()
    assert "no segment with id" in applied.message, "Apply on a deleted segment should say why it wrote nothing"
    assert np.array_equal(_mask(scene, scene.segment_ids[1]), before)
    # only the user's two writes are undo steps: the refused Apply left none
    assert scene.session.undo() and scene.session.undo() and not scene.session.logic.CanUndo()


def test_a_segment_renamed_while_the_3d_brush_update_runs_still_gets_its_preview_and_apply(scene):
    controller = brush_3d(scene)
    stroke_at_centre(controller, scene)
    segment = scene.segmentation.GetSegmentation().GetSegment(scene.segment_ids[0])
    segment.SetName("<b>Renamed</b> {0} %s")
    assert "3D preview" in finish_jobs(controller).status
    assert not controller.apply().message
    assert scene.segment().sum() > 0 and not _mask(scene, scene.segment_ids[1]).any()


def test_a_3d_brush_preview_waiting_when_the_source_volume_changes_is_not_applied(scene):
    controller = brush_3d(scene)
    stroke_at_centre(controller, scene)
    finish_jobs(controller)
    other = add_volume_node(scene.headless.scene, np.full(scene.image.shape, 7, np.int16), scene.matrix, "Other")
    scene.session.logic.SetSourceVolumeNode(other)
    reaction = controller.apply()
    assert "source volume changed" in reaction.message
    assert scene.segment().sum() == 0 and not scene.session.logic.CanUndo()


def test_a_propagation_preview_waiting_when_the_segment_changes_is_not_applied_to_the_other_segment(scene):
    controller, _ = propagation_started(scene)
    finish_jobs(controller)
    assert controller.has_preview
    scene.session.select_segment(scene.segment_ids[1])
    reaction = controller.apply()
    assert "selected segment" in reaction.message
    assert not _mask(scene, scene.segment_ids[1]).any(), "segment A's propagation was written into B"


def test_a_segment_deleted_while_the_regions_supervoxels_are_computed_is_a_message(scene):
    controller = SmartRegionsController(scene.bridge, JobRunner(threaded=False),
                                        options=RegionsToolOptions(mode="3d", region_size_mm=6.0))
    centre = scene.centre_ras()
    node = slice_node("axial", centre)
    controller.handle(event("press", node, centre))
    controller.handle(event("release", node, centre))
    scene.segmentation.GetSegmentation().RemoveSegment(scene.segment_ids[0])
    assert "no segment with id" in finish_jobs(controller).message
    assert not _mask(scene, scene.segment_ids[1]).any()
    assert not scene.session.logic.CanUndo()


def test_a_propagation_computed_while_the_source_voxels_were_replaced_in_place_is_dropped(scene):
    """The same volume node with new voxels (a filter run in place, a reload) is another source volume."""
    from vtk.util import numpy_support
    controller, seed = propagation_started(scene)  # computed now, finished at the next poll
    voxels = numpy_support.vtk_to_numpy(scene.volume.GetImageData().GetPointData().GetScalars())
    voxels[:] = 10  # the ball is gone from the source volume
    scene.volume.GetImageData().GetPointData().GetScalars().Modified()  # as slicer.util.arrayFromVolumeModified
    scene.volume.Modified()
    reaction = finish_jobs(controller)
    assert "nothing was written" in reaction.status and not controller.has_preview
    assert "source volume" in controller.apply().message or not controller.has_preview
    assert np.array_equal(scene.segment(), seed)


def test_a_2d_brush_preview_made_for_one_segment_is_not_applied_to_another(scene):
    controller = SmartBrushController(scene.bridge, JobRunner(threaded=False), options=BrushToolOptions(radius_mm=1.5))
    stroke_at_centre(controller, scene)
    assert controller.logic.preview is not None and controller.logic.preview.mask_2d.any()
    scene.session.select_segment(scene.segment_ids[1])
    reaction = controller.apply()
    assert "selected segment" in reaction.message
    assert not _mask(scene, scene.segment_ids[1]).any() and not _mask(scene, scene.segment_ids[0]).any()
    assert not scene.session.logic.CanUndo()


def test_the_segmentation_deleted_while_a_3d_brush_update_runs_makes_apply_say_so(scene):
    controller = brush_3d(scene)
    stroke_at_centre(controller, scene)
    scene.headless.scene.RemoveNode(scene.segmentation)
    finish_jobs(controller)
    assert "No segmentation is selected" in controller.apply().message
    assert not scene.session.logic.CanUndo()


@pytest.mark.parametrize("change", ["segment_deleted", "segment_renamed", "segmentation_deleted"])
def test_a_segment_anything_click_whose_segment_changes_while_the_model_loads(scene, change):
    from MVAControllersLib.segment_anything_controller import SegmentAnythingController
    from test_controllers_tools import TinyEngines
    controller = SegmentAnythingController(scene.bridge, TinyEngines(), JobRunner(threaded=False))
    centre = scene.centre_ras()
    controller.handle(event("press", slice_node("axial", centre), centre))
    segmentation = scene.segmentation.GetSegmentation()
    if change == "segment_deleted":
        segmentation.RemoveSegment(scene.segment_ids[0])
    elif change == "segment_renamed":
        segmentation.GetSegment(scene.segment_ids[0]).SetName("%s {} \n <i>")
    else:
        scene.headless.scene.RemoveNode(scene.segmentation)
    reaction = finish_jobs(controller)
    if change == "segment_renamed":
        assert "Candidates" in reaction.status and scene.segment().any()
        return
    assert ("no segment with id" if change == "segment_deleted" else "No segmentation is selected") in reaction.message
    assert not scene.session.logic.CanUndo()
    if change == "segment_deleted":
        assert not _mask(scene, scene.segment_ids[1]).any()

"""Each tool controller through synthetic event sequences on real slice nodes: strokes, clicks, jobs, keys,
one undo step per action, and every error shown as a message (never raised)."""
import numpy as np
import pytest
from conftest import GEOMETRIES
from controller_scene import event, finish_jobs, key, make_scene, slice_node

from MVAControllersLib.background_jobs import JobRunner
from MVAControllersLib.segment_anything_controller import EngineSource, SegmentAnythingController
from MVAControllersLib.smart_brush_controller import BrushToolOptions, SmartBrushController
from MVAControllersLib.smart_propagation_controller import SmartPropagationController
from MVAControllersLib.smart_regions_controller import RegionsToolOptions, SmartRegionsController
from MVAControllersLib.view_events import EventKind, ViewEvent


@pytest.fixture
def scene(headless):
    return make_scene(headless, GEOMETRIES["lps_anisotropic"], names=("A", "B"))


def stroke(controller, node, points):
    reactions = [controller.handle(event("press", node, points[0]))]
    reactions += [controller.handle(event("move", node, p)) for p in points[1:]]
    reactions.append(controller.handle(event("release", node, points[-1])))
    return reactions[-1]


def test_a_brush_stroke_previews_then_apply_writes_one_undo_step_and_erase_mode_shrinks_it(scene):
    controller = SmartBrushController(scene.bridge, JobRunner(threaded=False), options=BrushToolOptions(radius_mm=1.5))
    centre = scene.centre_ras()
    node = slice_node("coronal", centre)
    reaction = stroke(controller, node, [centre, centre + (1.0, 0, 0)])
    assert "Preview" in reaction.status and scene.segment().sum() == 0
    painted = controller.view_overlays(node)["preview"].sum()
    assert painted > 0
    assert not controller.apply().message
    written = scene.segment()
    assert written[scene.local_index(centre)] and written[scene.ball].sum() >= 0.9 * written.sum()
    controller.options.erase = True  # a mode, not a modifier: Slicer's paint adaptor refuses modifier strokes
    stroke(controller, node, [centre])
    assert controller.logic.preview.mask_2d.sum() < written.sum()
    scene.session.undo()
    assert scene.segment().sum() == 0


def test_predict_3d_uses_the_view_last_painted_in_and_writes_the_segment_it_started_for(scene):
    controller = SmartBrushController(scene.bridge, JobRunner(threaded=False), options=BrushToolOptions(radius_mm=1.5))
    assert "Paint a stroke first" in controller.predict_3d().message
    centre = scene.centre_ras()
    stroke(controller, slice_node("sagittal", centre), [centre])
    reaction = controller.predict_3d()
    assert reaction.job is not None and controller.busy
    finish_jobs(controller)
    written = scene.segment()
    assert written.sum() > written[tuple(np.array(written.shape) // 2)].sum()  # more than one voxel, in 3D
    assert len({k for k, _, _ in np.argwhere(written)}) > 1
    assert written[scene.ball].sum() >= 0.8 * written.sum()


def test_a_job_is_dropped_when_the_segment_changes_before_it_finishes(scene):
    controller = SmartBrushController(scene.bridge, JobRunner(threaded=False), options=BrushToolOptions(radius_mm=1.5))
    centre = scene.centre_ras()
    stroke(controller, slice_node("axial", centre), [centre])
    controller.predict_3d()
    scene.session.select_segment(scene.segment_ids[1])  # the user picks segment B meanwhile
    reaction = finish_jobs(controller)
    assert "nothing was written" in reaction.status
    assert scene.segment().sum() == 0
    scene.session.select_segment(scene.segment_ids[0])
    assert scene.segment().sum() == 0


def test_deactivating_the_tool_cancels_its_job_and_nothing_is_written(scene):
    controller = SmartBrushController(scene.bridge, JobRunner(threaded=False), options=BrushToolOptions(radius_mm=1.5))
    centre = scene.centre_ras()
    stroke(controller, slice_node("axial", centre), [centre])
    controller.predict_3d()
    controller.deactivate()
    assert "nothing was written" in finish_jobs(controller).status and scene.segment().sum() == 0


def test_a_hidden_segment_declined_is_left_as_it_was(scene):
    answers = []
    options = RegionsToolOptions(mode="2d", region_size_mm=6.0, merge_tolerance=None)
    controller = SmartRegionsController(scene.bridge, confirm_edit=lambda: answers.append(1) and False,
                                        options=options)
    centre = scene.centre_ras()
    node = slice_node("axial", centre)
    controller.handle(event("press", node, centre))
    reaction = controller.handle(event("release", node, centre))
    assert answers and "not applied" in reaction.status and not reaction.message
    assert scene.segment().sum() == 0


def test_regions_hover_highlights_the_region_a_click_then_takes(scene):
    options = RegionsToolOptions(mode="2d", region_size_mm=6.0, merge_tolerance=None, rim_deviations=None)
    controller = SmartRegionsController(scene.bridge, JobRunner(threaded=False), options=options)
    centre = scene.centre_ras()
    node = slice_node("axial", centre)
    assert not controller.handle(event("move", node, centre)).redraw  # no regions yet: nothing is computed
    controller.handle(event("press", node, centre))
    controller.handle(event("release", node, centre))
    hover = controller.handle(event("move", node, centre))
    assert not hover.consumed
    shown = controller.view_overlays(node)
    assert shown["hover"].sum() > 0 and shown["boundaries"].sum() > 0
    plane = controller.plane_of(node)
    taken = plane.sample(scene.segment().astype(np.uint8), scene.bridge.work_volume().index_to_ras, order=0) > 0
    assert np.array_equal(controller.drawings["hover"][2], taken)  # one grid for hover and click


def test_regions_in_3d_compute_supervoxels_in_a_job_then_take_the_click(scene):
    options = RegionsToolOptions(mode="3d", region_size_mm=6.0, merge_tolerance=None)
    controller = SmartRegionsController(scene.bridge, JobRunner(threaded=True), options=options)
    centre = scene.centre_ras()
    node = slice_node("sagittal", centre)
    controller.handle(event("press", node, centre))
    reaction = controller.handle(event("release", node, centre))
    assert reaction.job is not None and scene.segment().sum() == 0
    assert "busy" not in controller.handle(event("press", node, centre)).message  # refused with a message
    controller.stroke = None
    finish_jobs(controller)
    assert scene.segment()[scene.local_index(centre)]


def test_propagation_from_a_view_previews_neighbouring_slices_and_apply_is_one_undo_step(scene):
    from MVABridgeLib.edit_backend import EditMode
    controller = SmartPropagationController(scene.bridge, JobRunner(threaded=False))
    centre = scene.centre_ras()
    node = slice_node("axial", centre)
    plane = controller.plane_of(node)
    seed = plane.sample(scene.ball.astype(np.uint8), scene.bridge.work_volume().index_to_ras, order=0) > 0
    scene.bridge.apply_slice_mask(plane, seed, EditMode.REPLACE)
    drawn = scene.segment().sum()
    controller.preview(node)
    reaction = finish_jobs(controller)
    assert "Preview" in reaction.status and controller.has_preview
    assert controller.view_overlays(slice_node("coronal", centre))["preview"].sum() > 0
    assert not controller.apply().message
    assert scene.segment().sum() > drawn
    scene.session.undo()
    assert scene.segment().sum() == drawn


def test_end_here_before_any_propagation_or_in_another_axis_is_a_message_and_changes_nothing(scene):
    from MVABridgeLib.edit_backend import EditMode
    controller = SmartPropagationController(scene.bridge, JobRunner(threaded=False))
    centre = scene.centre_ras()
    axial, coronal = slice_node("axial", centre), slice_node("coronal", centre, "Green")
    assert "Nothing propagated yet" in controller.end_here().message  # no view propagated in
    plane = controller.plane_of(axial)
    seed = plane.sample(scene.ball.astype(np.uint8), scene.bridge.work_volume().index_to_ras, order=0) > 0
    scene.bridge.apply_slice_mask(plane, seed, EditMode.REPLACE)
    drawn = scene.segment().copy()
    assert "nothing to end here" in controller.end_here(axial).message
    controller.preview(axial)
    finish_jobs(controller)
    controller.apply()
    propagated = scene.segment().copy()
    assert "nothing to end here" in controller.end_here(coronal).message  # propagated along another axis
    assert "nothing to end here" in controller.handle(key(coronal, "e")).message  # E: End here in the key's view
    assert np.array_equal(scene.segment(), propagated)
    reaction = controller.end_here(axial)  # the drawn slice itself: only propagation's voxels there, none
    assert not reaction.message and "nothing changed" in reaction.status
    assert np.array_equal(scene.segment(), propagated) and propagated.sum() > drawn.sum()


class TinyEngines(EngineSource):
    def __init__(self, fail=None):
        self.engine, self.fail, self.loads = None, fail, 0

    def loaded(self):
        return self.engine

    def load(self, progress, cancel):
        self.loads += 1
        if self.fail is not None:
            raise self.fail
        from SegmentAnythingLib.engine_factory import create_engine
        progress(0.5)
        self.engine = create_engine("tiny")
        return self.engine


def test_a_first_sam_click_loads_the_model_embeds_and_writes_one_undo_step(scene):
    engines = TinyEngines()
    controller = SegmentAnythingController(scene.bridge, engines, JobRunner(threaded=True))
    centre = scene.centre_ras()
    node = slice_node("axial", centre)
    reaction = controller.handle(event("press", node, centre))
    loading = reaction.job
    assert loading is not None and "Loading" in loading.label
    assert controller.handle(event("press", node, centre)).status.startswith("Wait")  # no second click queued
    reaction = finish_jobs(controller)
    assert loading.progress == 0.5  # the loader's progress reached the job (and the effect's status line)
    assert engines.loads == 1 and "Candidates" in reaction.status
    assert scene.segment().sum() > 0
    assert controller.handle(key(node, "c")).consumed
    assert not controller.handle(key(node, "Escape")).consumed  # Esc belongs to the Segment Editor
    assert controller.handle(key(node, "n")).consumed and controller.logic.session is None
    scene.session.undo()  # the cycle
    scene.session.undo()  # the click
    assert scene.segment().sum() == 0


def test_a_model_that_cannot_load_is_a_message_and_nothing_is_written(scene):
    engines = TinyEngines(fail=ImportError("No module named 'segment_anything'"))
    controller = SegmentAnythingController(scene.bridge, engines, JobRunner(threaded=False))
    centre = scene.centre_ras()
    controller.handle(event("press", slice_node("axial", centre), centre))
    reaction = controller.poll()
    assert "segment_anything" in reaction.message and scene.segment().sum() == 0


@pytest.mark.parametrize("make", [
    lambda s: SmartBrushController(s.bridge, JobRunner(threaded=False)),
    lambda s: SmartRegionsController(s.bridge, JobRunner(threaded=False)),
    lambda s: SmartPropagationController(s.bridge, JobRunner(threaded=False)),
    lambda s: SegmentAnythingController(s.bridge, TinyEngines(), JobRunner(threaded=False)),
])
def test_clicks_outside_the_volume_and_a_non_linear_transform_are_messages(scene, make):
    controller = make(scene)
    far = scene.centre_ras() + (500.0, 0, 0)
    node = slice_node("axial", scene.centre_ras(), field_of_view_mm=(2000.0, 2000.0))
    for kind in ("press", "release"):
        reaction = controller.handle(event(kind, node, far))
        assert not reaction.message or "outside" in reaction.message
    grid = scene.headless.scene.AddNewNodeByClass("vtkMRMLGridTransformNode")
    scene.segmentation.SetAndObserveTransformNodeID(grid.GetID())
    messages = [controller.handle(event(kind, node, scene.centre_ras())).message for kind in ("press", "release")]
    assert any("non-linear" in message for message in messages)
    assert scene.segment().sum() == 0


def test_a_missing_source_volume_is_a_message(scene):
    scene.session.logic.SetSourceVolumeNode(None)
    scene.session.editor_node.SetAndObserveSourceVolumeNode(None)
    controller = SmartBrushController(scene.bridge)
    reaction = controller.handle(ViewEvent(EventKind.PRESS, (5, 5), slice_node("axial", scene.centre_ras())))
    assert "source volume" in reaction.message.lower()


def test_the_3d_brush_mode_previews_the_ball_on_unpainted_slices_and_apply_is_one_undo_step(scene):
    options = BrushToolOptions(radius_mm=1.5, mode="3d")
    controller = SmartBrushController(scene.bridge, JobRunner(threaded=False), options=options)
    centre = scene.centre_ras()
    corner = scene.matrix @ np.array([1.0, 1.0, 1.0, 1.0])  # a voxel far from the ball, in segment B
    scene.session.select_segment(scene.segment_ids[1])
    corner_view = slice_node("axial", corner[:3])
    corner_plane = controller.plane_of(corner_view)
    painted_b = np.zeros(corner_plane.shape, bool)
    painted_b[controller.pixel_of(corner_plane, event("press", corner_view, corner[:3]))] = True
    scene.bridge.apply_slice_mask(corner_plane, painted_b, "add")
    scene.session.select_segment(scene.segment_ids[0])
    views = ((slice_node("axial", centre), (1.0, 0, 0)), (slice_node("axial", centre + (0, 0, 2.5)), (0, 1.0, 0)),
             (slice_node("coronal", centre), (0, 0, 1.0)))
    for node, offset in views:
        on_plane = np.array([node.GetSliceToRAS().GetElement(row, 3) for row in range(3)])
        reaction = stroke(controller, node, [on_plane, on_plane + offset])
        assert reaction.job is not None
        assert "3D preview" in finish_jobs(controller).status
    assert scene.segment().sum() == 0, "the 3D preview wrote before Apply"
    unpainted = slice_node("axial", centre - (0, 0, 5.0))  # two slices below any axial stroke, inside the ball
    shown = controller.view_overlays(unpainted)["preview"]
    assert shown.sum() > 0, "the preview does not reach a slice that was never painted"
    preview = controller.volume_logic.preview.mask_kji.copy()
    assert preview[~scene.ball].sum() <= 0.1 * preview.sum(), "the preview leaks out of the ball"
    assert preview[scene.ball].mean() > 1 / 3 and np.count_nonzero(preview.any((1, 2))) >= 5

    controller.options.erase = True
    stroke(controller, slice_node("axial", centre), [centre])
    finish_jobs(controller)
    assert controller.volume_logic.preview.mask_kji.sum() < preview.sum(), "the erase stroke did not shrink it"
    controller.options.erase = False

    segment_b = scene.segment_ids[1]
    assert not controller.apply().message
    written = scene.segment()
    assert written.sum() > 0 and len({k for k, _, _ in np.argwhere(written)}) > 2
    scene.session.select_segment(segment_b)
    assert scene.segment().sum() == painted_b.sum(), "Apply changed the voxel the user painted in segment B"
    scene.session.select_segment(scene.segment_ids[0])
    scene.session.undo()
    assert scene.segment().sum() == 0, "Apply was more than one undo step"


def test_the_3d_brush_mode_clears_its_preview_when_the_segment_changes(scene):
    controller = SmartBrushController(scene.bridge, JobRunner(threaded=False),
                                      options=BrushToolOptions(radius_mm=1.5, mode="3d"))
    centre = scene.centre_ras()
    stroke(controller, slice_node("axial", centre), [centre])
    finish_jobs(controller)
    scene.session.select_segment(scene.segment_ids[1])
    assert "segment changed" in controller.apply().message
    assert scene.segment().sum() == 0 and controller.view_overlays(slice_node("axial", centre)) == {}
    scene.session.select_segment(scene.segment_ids[0])
    assert scene.segment().sum() == 0


def test_a_3d_brush_update_dropped_before_it_finishes_leaves_the_preview_and_the_strokes_as_they_were(scene):
    controller = SmartBrushController(scene.bridge, JobRunner(threaded=False),
                                      options=BrushToolOptions(radius_mm=1.5, mode="3d"))
    centre = scene.centre_ras()
    stroke(controller, slice_node("axial", centre), [centre])
    finish_jobs(controller)
    logic = controller.volume_logic
    preview, strokes = logic.preview.mask_kji.copy(), logic._model[1].stroke_mask().copy()
    stroke(controller, slice_node("coronal", centre), [centre, centre + (0, 0, 2.0)])
    controller.cancel()
    assert "nothing was written" in finish_jobs(controller).status
    assert np.array_equal(logic.preview.mask_kji, preview)
    assert np.array_equal(logic._model[1].stroke_mask(), strokes), "the cancelled stroke trained the classifier"

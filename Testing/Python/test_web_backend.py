"""The web annotator's server side without a browser: the trame-slicer edit backend, jobs, cases, `mva serve`."""
import argparse
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                                "WebAnnotator"))
pytest.importorskip("trame_slicer")

from MVAWebLib import cases as web_cases
from MVAWebLib.job_runner import JobRunner
from MVAWebLib.serve import add_serve_command, host_warning, resolve_cases


@pytest.fixture(scope="module")
def web_app():
    import asyncio
    os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")
    asyncio.set_event_loop(asyncio.new_event_loop())
    from MVAWebLib.web_app import MVAWebApp
    from trame.app import get_server
    case = web_cases.default_case()
    app = MVAWebApp(get_server("mva_web_backend_test", client_type="vue3"), cases=[case])
    app.load_case(case)
    yield app
    app.runner.shutdown()


def test_a_replace_through_the_trame_backend_is_one_undo_step_limited_to_the_plane(web_app):
    from MVABridgeLib.edit_backend import EditMode
    from MVABridgeLib.slice_geometry import SlicePlane
    bridge = web_app.bridge
    volume = bridge.work_volume()
    plane = SlicePlane.for_anatomical_axis("axial", volume.shape[0] // 2, volume.index_to_ras, volume.shape)
    mask = np.zeros(plane.shape, bool)
    mask[100:120, 80:110] = True
    from MVAWebLib.trame_backend import one_undo_step
    undo_stack = web_app.editor.undo_stack
    commands_before = len(undo_stack._command_list)
    with one_undo_step(web_app.editor, "test"):
        bridge.apply_slice_mask(plane, mask, EditMode.REPLACE)
    written = bridge.selected_mask()
    assert written.sum() == mask.sum()
    assert np.count_nonzero(written.reshape(written.shape[0], -1).sum(1)) == 1
    assert len(undo_stack._command_list) == commands_before + 1
    undo_stack.undo()
    assert bridge.selected_mask().sum() == 0
    undo_stack.redo()
    assert bridge.selected_mask().sum() == mask.sum()
    undo_stack.undo()


def test_a_tool_write_failing_half_way_through_the_trame_backend_changes_nothing(web_app):
    from MVABridgeLib.slice_geometry import SlicePlane
    from MVABridgeLib.tool_edits import ToolEdits
    bridge = web_app.bridge
    volume = bridge.work_volume()
    plane = SlicePlane.for_anatomical_axis("axial", volume.shape[0] // 2, volume.index_to_ras, volume.shape)
    drawn = np.zeros(plane.shape, bool)
    drawn[100:120, 80:110] = True
    bridge.apply_slice_mask(plane, drawn, "add")
    before = bridge.selected_mask().copy()
    backend, calls = bridge.backend, []
    original = backend.modify

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("the add failed")
        return original(*args, **kwargs)
    backend.modify = failing
    erase = np.zeros(plane.shape, bool)
    erase[105:110, 85:90] = True
    try:
        with pytest.raises(RuntimeError, match="add failed"):
            bridge.write_plane_decision(ToolEdits(), plane, add_2d=np.roll(drawn, 40, axis=1), erase_2d=erase)
    finally:
        backend.modify = original
    assert len(calls) == 3  # remove, the failing add, the rollback (masking bypassed)
    assert np.array_equal(bridge.selected_mask(), before)
    bridge.apply_slice_mask(plane, drawn, "remove")


def test_a_snapshot_bridge_reads_captured_arrays_and_refuses_to_write(web_app):
    from MVAControllersLib.snapshot import SnapshotBridge
    from MVABridgeLib.tool_edits import ToolEdits
    snapshot = SnapshotBridge(web_app.bridge, with_mask=True)
    assert snapshot.work_volume() is web_app.bridge.work_volume()
    assert snapshot.selected_mask().shape == snapshot.work_volume().shape
    with pytest.raises(RuntimeError, match="read-only"):
        snapshot.write_blocks((0, 0, 0), add=np.ones((1, 1, 1), bool))
    with pytest.raises(RuntimeError, match="read-only"):  # a tool write from a job is refused too
        snapshot.write_decision(ToolEdits(), (0, 0, 0), add=np.ones((1, 1, 1), bool))


def test_viewer_settings_reach_the_display_nodes(web_app):
    web_app.state.settings_fill = False
    web_app.state.settings_opacity = 0.3
    web_app.state.settings_interpolate = False
    web_app.state.settings_preset = "CT brain"
    web_app._on_settings()
    segmentation_display = web_app.editor.active_segmentation_node.GetDisplayNode()
    volume_display = web_app.editor.active_volume_node.GetDisplayNode()
    assert not segmentation_display.GetVisibility2DFill() and segmentation_display.GetVisibility2DOutline()
    assert segmentation_display.GetOpacity2DFill() == pytest.approx(0.3)
    assert volume_display.GetInterpolate() == 0
    assert (volume_display.GetWindow(), volume_display.GetLevel()) == (80.0, 40.0)
    web_app.state.settings_preset = "No such preset"
    with pytest.raises(ValueError, match="preset"):
        web_app._on_settings()
    web_app.state.settings_preset = "Auto"
    web_app._on_settings()


def test_the_default_layout_shows_slices_only_and_3d_comes_on_demand(web_app):
    assert web_app.layout_manager.layout_id == "Axial Only"
    web_app.show_3d(True)
    assert web_app.layout_manager.layout_id == "Axial Primary"
    web_app.show_3d(False)
    assert web_app.layout_manager.layout_id == "Axial Only"


def test_a_job_runs_compute_then_apply_and_refuses_a_second_job_while_busy():
    done = []
    runner = JobRunner(on_done=done.append)
    assert runner.submit("tool", lambda: 20, lambda value: value + 1)
    assert done[-1].value == 21 and done[-1].error == ""
    runner.busy = True
    assert not runner.submit("tool", lambda: 1, lambda value: value)
    runner.busy = False
    runner.submit("tool", lambda: 1 / 1, lambda value: (_ for _ in ()).throw(ValueError("no segment")))
    assert done[-1].error == "no segment"
    runner.shutdown()


def test_cases_are_the_volume_files_of_a_folder_and_segmentations_are_saved_beside_them(tmp_path):
    for name in ("b.nii.gz", "a.nrrd", "a.seg.nrrd", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    found = web_cases.cases_in(str(tmp_path))
    assert [os.path.basename(p) for p in found] == ["a.nrrd", "b.nii.gz"]
    assert web_cases.segmentation_path_for(found[1]) == str(tmp_path / "b.seg.nrrd")
    with pytest.raises(web_cases.CaseNotFoundError, match="No volume files"):
        web_cases.cases_in(str(tmp_path / "empty" if (tmp_path / "empty").mkdir() is None else tmp_path))


def test_serve_binds_locally_by_default_and_warns_for_other_hosts():
    parser = argparse.ArgumentParser(prog="mva")
    add_serve_command(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["serve"])
    assert (args.host, args.volume, args.cases) == ("127.0.0.1", None, None)
    assert host_warning(args.host) is None
    assert "no login" in host_warning("0.0.0.0")
    assert resolve_cases(args) == [web_cases.default_case()]
    with pytest.raises(SystemExit):
        parser.parse_args(["serve", "--volume", "a.nii", "--cases", "folder"])


def test_serve_with_a_project_requires_login_so_other_hosts_get_no_warning(tmp_path):
    from MVAWebLib.workflow_session import database_url
    parser = argparse.ArgumentParser(prog="mva")
    add_serve_command(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["serve", "--project", "team.db", "--project-name", "Liver", "--host", "0.0.0.0"])
    assert (args.project, args.project_name) == ("team.db", "Liver")
    assert host_warning(args.host, with_login=True) is None
    assert "no login" in host_warning(args.host, with_login=False)
    assert database_url("team.db") == "sqlite:///" + os.path.abspath("team.db")
    assert database_url("postgresql://u@127.0.0.1/db") == "postgresql://u@127.0.0.1/db"
    with pytest.raises(SystemExit):
        parser.parse_args(["serve", "--project", "team.db", "--volume", "a.nii"])


def test_the_tool_clock_splits_wall_time_and_interactions_per_tool():
    from MVAWebLib.workflow_session import VIEWING, ToolClock
    now = iter([0.0, 2.0, 5.0, 6.0]).__next__
    clock = ToolClock(now=now)
    clock.switch("Smart Brush")  # 2 s viewing
    clock.interaction()
    clock.interaction("Smart Brush")
    clock.switch("")  # 3 s brush
    assert clock.drain() == [("Smart Brush", 3.0, 2), (VIEWING, 3.0, 0)]  # viewing: 2 s + 1 s
    assert clock.seconds == {} and clock.interactions == {}


def test_the_smart_brush_preview_and_the_regions_are_drawn_in_the_label_layer_of_the_slice_views(web_app):
    from MVAWebLib.overlays import BOUNDARY, HOVER, PREVIEW
    from MVAWebLib.smart_effects import Gesture, SmartBrushEffect, SmartRegionsEffect
    from MVAWebLib.tool_controllers import plane_of
    from vtkmodules.util import numpy_support
    red = next(v.get_view_node() for v in web_app.slicer_app.view_manager.get_slice_views()
               if v.get_view_node().GetName() == "Red")
    plane = plane_of(red, web_app.bridge.work_volume())
    middle = np.array(plane.shape) // 2
    ras = plane.pixel_to_ras(np.array([[middle[0], middle[1] - 10], [middle[0], middle[1] - 6]], float))
    web_app._on_brush_options(brush_radius_mm=4, brush_auto_apply=False)
    web_app.activate_smart_tool("SmartBrushEffect")
    brush = web_app.controllers[SmartBrushEffect]
    for gesture, point in ((Gesture.PRESS, ras[0]), (Gesture.DRAG, ras[1]), (Gesture.RELEASE, ras[1])):
        brush.on_gesture(red, gesture, tuple(point), False, False)
    node = web_app.overlay.node()
    drawn = numpy_support.vtk_to_numpy(node.GetImageData().GetPointData().GetScalars())
    assert web_app.state.overlay_pixels["preview"] == int((drawn == PREVIEW).sum()) > 50
    assert web_app.bridge.selected_mask().sum() == 0  # a preview writes nothing
    composites = web_app.slicer_app.scene.GetNodesByClass("vtkMRMLSliceCompositeNode")
    assert {composites.GetItemAsObject(i).GetLabelVolumeID() for i in range(composites.GetNumberOfItems())} \
        == {node.GetID()}
    brush.apply()
    assert web_app.state.overlay_pixels["preview"] == 0
    assert web_app.bridge.selected_mask().sum() > 50
    web_app.activate_smart_tool("SmartRegionsEffect")
    regions = web_app.controllers[SmartRegionsEffect]
    regions.on_gesture(red, Gesture.PRESS, tuple(ras[0]), False, False)
    regions.on_gesture(red, Gesture.RELEASE, tuple(ras[0]), False, False)
    first = dict(web_app.state.overlay_pixels)
    assert first["boundaries"] > 1000 and first["hover"] > 0
    regions.on_gesture(red, Gesture.HOVER, tuple(ras[0] + np.array([25.0, 0, 0])), False, False)
    assert web_app.state.overlay_pixels["hover"] != first["hover"]
    assert set(web_app.overlay.layers) == {BOUNDARY, HOVER}
    web_app.editor.deactivate_effect()
    assert web_app.state.overlay_pixels == {"preview": 0, "boundaries": 0, "hover": 0}
    web_app._on_brush_options(brush_radius_mm=5, brush_auto_apply=True)
    web_app.editor.undo_stack.undo()


def test_the_brush_mode_3d_previews_in_3d_in_the_red_view_and_apply_writes_beyond_the_painted_slice(web_app):
    from MVAWebLib.smart_effects import Gesture, SmartBrushEffect
    from MVAWebLib.tool_controllers import plane_of
    from MVAWebLib.web_ui import BRUSH_MODES
    assert "3d" in {mode["value"] for mode in BRUSH_MODES}
    red = next(v.get_view_node() for v in web_app.slicer_app.view_manager.get_slice_views()
               if v.get_view_node().GetName() == "Red")
    plane = plane_of(red, web_app.bridge.work_volume())
    middle = np.array(plane.shape) // 2
    ras = plane.pixel_to_ras(np.array([[middle[0], middle[1] - 10], [middle[0], middle[1] - 6]], float))
    web_app._on_brush_options(brush_radius_mm=4, brush_auto_apply=False, brush_mode="3d")
    web_app.activate_smart_tool("SmartBrushEffect")
    brush = web_app.controllers[SmartBrushEffect]
    before = web_app.bridge.selected_mask().astype(bool)
    try:
        for gesture, point in ((Gesture.PRESS, ras[0]), (Gesture.DRAG, ras[1]), (Gesture.RELEASE, ras[1])):
            brush.on_gesture(red, gesture, tuple(point), False, False)
        assert brush.shared.volume_logic is not None and brush.shared.volume_logic.preview is not None, brush.message
        assert web_app.state.overlay_pixels["preview"] > 0
        assert np.array_equal(web_app.bridge.selected_mask().astype(bool), before)  # a preview writes nothing
        brush.apply()
        added = web_app.bridge.selected_mask().astype(bool) & ~before
        assert len({k for k, _, _ in np.argwhere(added)}) > 1, "nothing was written beyond the painted slice"
        web_app.editor.undo_stack.undo()
        assert np.array_equal(web_app.bridge.selected_mask().astype(bool), before)
    finally:
        web_app.editor.deactivate_effect()
        web_app._on_brush_options(brush_radius_mm=5, brush_auto_apply=True, brush_mode="fill")


def test_the_sam_encoder_input_option_rebuilds_the_engine_with_that_size(web_app):
    from MVAWebLib.web_app import SegmentAnythingEffect
    controller = web_app.controllers[SegmentAnythingEffect]
    web_app.developer = True  # "tiny" (random weights) is for developers; the server starts with no model ("none")
    web_app._on_sam_options(sam_model="tiny", sam_input_size="full")
    assert web_app.state.sam_input_size == "full" and controller._ensure_logic().engine.input_size is None
    web_app._on_sam_options(sam_model="tiny", sam_input_size="auto")
    engine = controller._ensure_logic().engine
    assert engine.input_size == "auto" and controller._ensure_logic().engine is engine  # rebuilt once
    web_app._on_sam_options(sam_model="tiny", sam_input_size="128")
    assert controller._ensure_logic().engine.input_size == 128
    web_app._on_sam_options(sam_model="tiny", sam_input_size="full")
    assert controller._ensure_logic().engine.input_size is None


def test_the_browser_propagation_takes_the_prompts_of_the_segment_anything_object_on_its_segment(web_app):
    from MVABridgeLib.slice_geometry import SlicePlane
    from MVAWebLib.web_app import SegmentAnythingEffect, SmartPropagationEffect
    web_app.developer = True
    web_app._on_sam_options(sam_model="tiny", sam_input_size="full")
    sam = web_app.controllers[SegmentAnythingEffect]
    propagation = web_app.controllers[SmartPropagationEffect].shared
    volume = web_app.bridge.work_volume()
    plane = SlicePlane.for_anatomical_axis("axial", volume.shape[0] // 2, volume.index_to_ras, volume.shape)
    assert propagation.prompt_source() is None
    sam._ensure_logic().add_point(plane, (plane.shape[0] // 2, plane.shape[1] // 2))
    prompts = propagation.prompt_source()
    assert prompts is not None and prompts.plane is plane and prompts.labels == (1,)
    sam.new_object()
    assert propagation.prompt_source() is None

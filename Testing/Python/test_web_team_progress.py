"""Long actions of the browser annotator show a determinate progress bar with Cancel (server side, no browser):
Smart Brush Predict 3D, Smart Regions supervoxels, a job that reports nothing (estimated from its last run), and
a workflow save. A cancelled action writes nothing."""
import asyncio
import os
import sys
import time

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                                "WebAnnotator"))
pytest.importorskip("trame_slicer")

from MVAWebLib.job_runner import JobRunner  # noqa: E402


@pytest.fixture(scope="module")
def loop():
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    yield loop
    loop.close()


@pytest.fixture(scope="module")
def web_app(loop):
    os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")
    from MVAWebLib import cases as web_cases
    from MVAWebLib.web_app import MVAWebApp
    from trame.app import get_server
    case = web_cases.default_case()
    app = MVAWebApp(get_server("mva_web_progress_test", client_type="vue3"), cases=[case])
    app.load_case(case)
    yield app
    app.runner.shutdown()


def red_view(app):
    return next(v.get_view_node() for v in app.slicer_app.view_manager.get_slice_views()
                if v.get_view_node().GetName() == "Red")


def run_job(app, loop, start, cancel_at=None, timeout_s=300):
    """Start a job with `start()` and wait for its end; returns (JobResult, fractions the job reported).

    The fractions are taken where the job reports them (its thread): scipy's filters hold the GIL, so the page's
    loop does not run while the features are computed. `cancel_at`: press Cancel (from that thread, as the
    page's Cancel would arrive) once the job reports at least this fraction.
    """
    runner, fractions = app.runner, []
    report = runner.report_progress

    def recording(fraction):
        fractions.append(float(fraction))
        if cancel_at is not None and fraction >= cancel_at:
            runner.cancel()
        report(fraction)

    async def scenario():
        start()
        assert runner.busy, app.state.tool_error or app.state.tool_message
        deadline = time.time() + timeout_s
        while runner.busy and time.time() < deadline:
            await asyncio.sleep(0.02)
        return runner.history[-1]
    runner.report_progress = recording
    try:
        return loop.run_until_complete(scenario()), fractions
    finally:
        del runner.report_progress


def test_brush_predict_3d_fills_the_bar_and_a_cancel_writes_nothing(web_app, loop):
    from MVAWebLib.smart_effects import Gesture, SmartBrushEffect
    from MVAWebLib.tool_controllers import plane_of
    red = red_view(web_app)
    plane = plane_of(red, web_app.bridge.work_volume())
    middle = np.array(plane.shape) // 2
    ras = plane.pixel_to_ras(np.array([[middle[0], middle[1] - 12], [middle[0], middle[1] - 4],
                                       [middle[0] + 30, middle[1] + 30], [middle[0] + 30, middle[1] + 36]], float))
    web_app._on_brush_options(brush_radius_mm=4, brush_auto_apply=False)
    web_app.activate_smart_tool("SmartBrushEffect")
    brush = web_app.controllers[SmartBrushEffect]
    for start, end, erase in ((ras[0], ras[1], False), (ras[2], ras[3], True)):  # tissue, and what it is not
        for gesture, point in ((Gesture.PRESS, start), (Gesture.DRAG, end), (Gesture.RELEASE, end)):
            brush.on_gesture(red, gesture, tuple(point), erase, False)
    before = web_app.bridge.selected_mask().copy()
    result, fractions = run_job(web_app, loop, web_app.ctrl.brush_predict_3d, cancel_at=0.3)
    assert result.label == "Smart Brush" and "cancelled" in result.error
    assert np.array_equal(web_app.bridge.selected_mask(), before)  # nothing written
    assert not brush.shared.busy  # the tool takes the next action
    result, fractions = run_job(web_app, loop, web_app.ctrl.brush_predict_3d)
    assert not result.error, result.error
    assert any(0 < value < 1 for value in fractions) and fractions == sorted(fractions), fractions
    assert web_app.bridge.selected_mask().sum() > before.sum()
    web_app.editor.undo_stack.undo()


def test_computing_the_regions_fills_the_bar_before_the_first_click(web_app, loop):
    from MVAWebLib.smart_effects import SmartRegionsEffect
    web_app.activate_smart_tool("SmartRegionsEffect")
    regions = web_app.controllers[SmartRegionsEffect]
    assert not regions.shared.logic.has_volume_labels()
    result, fractions = run_job(web_app, loop, web_app.ctrl.regions_compute)
    assert not result.error, result.error
    assert any(0 < value < 1 for value in fractions) and fractions == sorted(fractions), fractions
    assert regions.shared.logic.has_volume_labels()
    web_app.editor.deactivate_effect()


def test_the_page_gets_the_running_jobs_kind_and_percentage(web_app, loop):
    async def scenario():
        pusher = asyncio.ensure_future(web_app._show_progress())
        shown = []

        def compute():
            web_app.runner.report_progress(0.5)
            time.sleep(0.8)
        web_app.runner.submit("Smart Brush", compute, lambda value: value, kind="A job never run before")
        while web_app.runner.busy:
            shown.append((web_app.state.job_busy, web_app.state.job_label, web_app.state.job_progress))
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.4)
        pusher.cancel()
        return shown, web_app.state.job_busy
    shown, busy_after = loop.run_until_complete(scenario())
    assert (True, "A job never run before", 50) in shown  # reported (no estimate: nothing to estimate from)
    assert not busy_after


def test_a_job_that_reports_nothing_gets_a_bar_estimated_from_its_last_run_never_shown_as_done(loop):
    runner = JobRunner()

    async def twice():
        runs = []
        for _ in range(2):
            assert runner.submit("Embedding this slice", lambda: time.sleep(0.4), lambda value: value)
            runs.append([])
            while runner.busy:
                runs[-1].append(runner.estimated_progress())
                await asyncio.sleep(0.02)
        return runs
    first, second = loop.run_until_complete(twice())
    runner.shutdown()
    assert set(first) == {(None, False)}  # nothing to estimate from yet: an indeterminate bar
    estimated = [fraction for fraction, is_estimate in second if is_estimate]
    assert len(estimated) == len(second) and max(estimated) <= 0.95 and estimated == sorted(estimated)
    assert max(estimated) > 0.3
    assert runner.estimated_progress() == (None, False)  # idle


def test_end_here_in_the_browser_takes_back_the_propagation_beyond_the_red_slice_in_one_undo_step(web_app, loop):
    from MVAWebLib.smart_effects import Gesture, SmartPropagationEffect
    from MVAWebLib.tool_controllers import plane_of
    from MVAWebLib.trame_backend import one_undo_step
    red, bridge = red_view(web_app), web_app.bridge
    plane = plane_of(red, bridge.work_volume())
    axis, seed_k = plane.aligned_axis, plane.slice_index
    drawn = np.zeros(plane.shape, bool)
    middle = np.array(plane.shape) // 2
    drawn[middle[0] - 10:middle[0] + 10, middle[1] - 10:middle[1] + 10] = True
    with one_undo_step(web_app.editor, "seed"):
        bridge.apply_slice_mask(plane, drawn, "add")
    seeded = np.moveaxis(bridge.selected_mask().copy(), axis, 0)
    web_app._on_propagation_options(propagation_strategy="copy", propagation_max_slices=4)
    web_app.activate_smart_tool("SmartPropagationEffect")
    propagation = web_app.controllers[SmartPropagationEffect]
    centre_ras = tuple(plane.pixel_to_ras(np.array([middle], float))[0])
    result, _ = run_job(web_app, loop, lambda: propagation.on_gesture(red, Gesture.RELEASE, centre_ras, False, False))
    assert not result.error, result.error
    propagated = np.moveaxis(bridge.selected_mask().copy(), axis, 0)
    assert propagated[seed_k + 2].sum() > seeded[seed_k + 2].sum()  # copied beyond the drawn slice (auto-applied)
    spacing = np.linalg.norm(bridge.work_volume().index_to_ras[:3, 2 - axis])
    red.SetSliceOffset(red.GetSliceOffset() + 2 * spacing)  # the user scrolls two slices on
    end_k = plane_of(red, bridge.work_volume()).slice_index
    assert abs(end_k - seed_k) == 2
    result, _ = run_job(web_app, loop, web_app.ctrl.propagation_end_here)
    assert not result.error and "taken back" in web_app.state.tool_message, (result.error, web_app.state.tool_message)
    ended = np.moveaxis(bridge.selected_mask(), axis, 0)
    beyond = slice(end_k, None) if end_k > seed_k else slice(0, end_k + 1)
    behind = slice(0, end_k) if end_k > seed_k else slice(end_k + 1, None)
    assert np.array_equal(ended[beyond], seeded[beyond])  # only propagation's voxels went
    assert np.array_equal(ended[behind], propagated[behind])  # the drawn slice and the side before it stay
    web_app.editor.undo_stack.undo()
    assert np.array_equal(np.moveaxis(bridge.selected_mask(), axis, 0), propagated)
    web_app.editor.undo_stack.undo()  # the propagation
    web_app.editor.undo_stack.undo()  # the seed

"""The four desktop effects driven through stand-ins of Slicer's scripted adaptors and Segment Editor widget
(slicer_effect_standins.py: only behaviour verified in Slicer's source, each with its file and line).

MVA_EFFECT_ROOT=<a checkout> runs the same tests against another version of the effect files (how the
findings of issue 15 were reproduced on the code before the controllers)."""
import os
import sys
import time

import numpy as np
import pytest
from conftest import GEOMETRIES
from controller_scene import make_scene, slice_node

import slicer_effect_standins as standins
from MVAControllersLib.view_planes import ras_to_xy

ROOT = os.environ.get("MVA_EFFECT_ROOT") or os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PACKAGES = {"Smart Brush": ("SmartBrush", "SegmentEditorSmartBrushLib"),
            "Smart Regions": ("SmartBrush", "SegmentEditorSmartRegionsLib"),
            "Smart Propagation": ("SmartPropagation", "SegmentEditorSmartPropagationLib"),
            "Segment Anything": ("SegmentAnythingMVA", "SegmentEditorSegmentAnythingLib")}


def effect_path(name):
    module, package = PACKAGES[name]
    folder = os.path.join(ROOT, module, package)
    return os.path.join(folder, next(f for f in sorted(os.listdir(folder)) if f.startswith("SegmentEditor")
                                     and f.endswith("Effect.py")))


@pytest.fixture
def slicer_app(headless, monkeypatch):
    """A scene with the ball volume, Red (axial) and Green (coronal) slice views, and a Segment Editor."""
    if os.environ.get("MVA_EFFECT_ROOT"):
        monkeypatch.syspath_prepend(os.path.join(ROOT, "SegmentAnythingMVA"))
        for name in [m for m in sys.modules if m.startswith("MVASlicerLib")]:
            monkeypatch.delitem(sys.modules, name)
    scene = make_scene(headless, GEOMETRIES["lps_anisotropic"], names=("A", "B"))
    centre = scene.centre_ras()
    widgets = {"Red": standins.SliceWidget(slice_node("axial", centre, "Red")),
               "Green": standins.SliceWidget(slice_node("coronal", centre, "Green"))}
    app = standins.Application(widgets, standins.Settings({"SegmentAnythingMVA/Model": "tiny"}))
    standins.install(monkeypatch, app)
    for name in [m for m in sys.modules if m.startswith("SegmentEditorS") or m.startswith("MVASlicerLib")]:
        monkeypatch.delitem(sys.modules, name)  # loaded fresh against the stand-ins
    monkeypatch.setattr("MVASlicerLib.dependencies.ensure_dependencies", lambda **kwargs: None, raising=False)
    editor = standins.SegmentEditor(scene.session, widgets)
    for name in PACKAGES:
        registered = standins.ScriptedEffect()  # MVASlicerLib.effect_registration uses the plain adaptor
        registered.setPythonSource(effect_path(name))
        editor.add_effect(registered)
    app.scene, app.editor, app.widgets, app.centre = scene, editor, widgets, centre
    yield app
    session = sys.modules.get("MVASlicerLib.sam_session")
    if session is not None and session._client is not None:
        session._client.close()  # the compute worker this test's effects started


def drag(app, widget, points, **modifiers):
    editor, node = app.editor, widget.mrmlSliceNode()
    results = [editor.interact(standins.LEFT_PRESS, widget, standins.Interactor(ras_to_xy(node, points[0]), **modifiers))]
    for point in points[1:]:
        results.append(editor.interact(standins.MOUSE_MOVE, widget, standins.Interactor(ras_to_xy(node, point), **modifiers)))
    results.append(editor.interact(standins.LEFT_RELEASE, widget, standins.Interactor(ras_to_xy(node, points[-1]), **modifiers)))
    return results


def run_jobs(effect, timeout=60):
    """Fire the effect's poll timer until its background job is done (the QTimer of the Qt shell)."""
    shell = effect.python.shell
    deadline = time.time() + timeout
    while shell.controller is not None and shell.controller.busy and time.time() < deadline:
        shell.controller.runner.wait(1)
        shell.timer.fire()


def segment(app):
    return app.scene.segment()


def test_a_smart_brush_stroke_reaches_paint_apply_and_previews_without_plain_paint(slicer_app):
    app = slicer_app
    app.editor.setActiveEffectByName("Smart Brush")
    effect = app.editor.active
    drag(app, app.widgets["Red"], [app.centre, app.centre + (1.0, 0, 0)])
    assert effect.failures == [] and effect.fallback_paints == 0  # today's code: TypeError in showPreview
    assert segment(app).sum() == 0  # a preview writes nothing
    assert "Preview" in effect.python.statusLabel.text
    assert app.widgets["Red"].actors() >= 1


def test_a_shift_stroke_never_reaches_the_brush_so_erase_is_a_mode(slicer_app):
    app = slicer_app
    app.editor.setActiveEffectByName("Smart Brush")
    effect = app.editor.active
    drag(app, app.widgets["Red"], [app.centre], shift=True)
    assert effect.strokes == [] and not effect.painting  # the paint adaptor refused the stroke
    effect.setParameter("Erase", 1)
    effect.call("updateGUIFromMRML")
    drag(app, app.widgets["Red"], [app.centre])
    assert effect.failures == []
    controller = effect.python.shell.controller
    assert controller.options.erase and controller.logic.preview is not None


def test_brush_strokes_in_a_3d_view_are_ignored_not_painted_plainly(slicer_app):
    app = slicer_app
    app.editor.setActiveEffectByName("Smart Brush")
    effect = app.editor.active
    effect.setParameter("EditIn3DViews", 1)
    three_d = standins.ThreeDWidget()
    for event_id in (standins.LEFT_PRESS, standins.LEFT_RELEASE):
        app.editor.interact(event_id, three_d, standins.Interactor((5, 5)))
    assert effect.failures == [] and effect.fallback_paints == 0 and segment(app).sum() == 0


def test_predict_3d_runs_in_the_view_painted_in_and_writes_one_undo_step(slicer_app):
    app = slicer_app
    del app.widgets["Red"]  # a layout without the Red view
    app.editor.setActiveEffectByName("Smart Brush")
    effect = app.editor.active
    drag(app, app.widgets["Green"], [app.centre])
    buttons = {w.text: w for w in effect.options_widgets if hasattr(w, "text")}
    buttons["Predict 3D"].click()
    run_jobs(effect)
    assert app.errors == [] and effect.failures == []
    written = segment(app)
    assert written.sum() > 0 and len({j for _, j, _ in np.argwhere(written)}) > 1  # beyond the coronal slice
    app.scene.session.undo()
    assert segment(app).sum() == 0


def test_escape_belongs_to_the_segment_editor_and_n_starts_a_new_object(slicer_app):
    app = slicer_app
    app.editor.setActiveEffectByName("Segment Anything")
    effect = app.editor.active
    assert "Esc</b> starts" not in effect.call("helpText")  # the help tells what really happens
    widget = app.widgets["Red"]
    assert app.editor.press_key("n", widget)
    assert app.editor.press_key("Escape", widget) and app.editor.active is None


def test_a_hidden_segment_declined_in_the_dialog_is_not_edited(slicer_app):
    app = slicer_app
    app.editor.setActiveEffectByName("Smart Regions")
    effect = app.editor.active
    effect.setParameter("Mode", "2d")
    effect.call("updateGUIFromMRML")
    drag(app, app.widgets["Red"], [app.centre])
    assert segment(app).sum() > 0 and app.errors == []  # visible: the click writes
    app.scene.session.undo()
    app.scene.segmentation.GetDisplayNode().SetSegmentVisibility(app.scene.segment_ids[0], False)
    app.editor.hidden_segment_answer = standins.NOT_CONFIRMED  # the user presses Cancel
    drag(app, app.widgets["Red"], [app.centre])
    assert app.editor.visibility_questions >= 1 and segment(app).sum() == 0


def test_regions_redraw_on_slice_node_changes_without_adding_actors(slicer_app):
    app = slicer_app
    app.editor.setActiveEffectByName("Smart Regions")
    effect = app.editor.active
    effect.setParameter("Mode", "2d")
    effect.call("updateGUIFromMRML")
    widget = app.widgets["Red"]
    drag(app, widget, [app.centre])
    assert segment(app).sum() > 0 and effect.failures == [] and app.errors == []
    actors = widget.actors()
    overlay = effect.python.shell.overlays[("Red", "boundaries")]
    before = overlay.image.GetPointData().GetScalars().GetNumberOfTuples()
    for step in range(5):  # hover moves and slice changes
        app.editor.interact(standins.MOUSE_MOVE, widget,
                            standins.Interactor(ras_to_xy(widget.mrmlSliceNode(), app.centre + (step, 0, 0))))
    widget.mrmlSliceNode().SetFieldOfView(30.0, 25.0, 1.0)  # zoom in: the overlay must be redrawn for it
    app.editor.view_node_modified(widget)
    assert widget.actors() == actors  # one actor per view and layer
    scalars = overlay.image.GetPointData().GetScalars()
    drawn = np.frombuffer(memoryview(scalars), np.uint8).reshape(-1, 4)[:, 3] > 0
    assert scalars.GetNumberOfTuples() == before and drawn.sum() > 0
    shown = effect.python.shell.controller.view_overlays(widget.mrmlSliceNode())["boundaries"]
    assert np.array_equal(drawn.reshape(shown.shape)[::-1], shown)  # what the zoomed view shows now


def test_one_bridge_per_effect_reads_the_volume_once(slicer_app):
    app = slicer_app
    calls = []
    app.editor.setActiveEffectByName("Smart Regions")
    effect = app.editor.active
    original = effect.sourceVolumeImageData
    effect.sourceVolumeImageData = lambda: calls.append(1) or original()
    effect.setParameter("Mode", "2d")
    for offset in (0.0, 1.0, -1.0):
        drag(app, app.widgets["Red"], [app.centre + (offset, 0, 0)])
    assert len(calls) == 1 and app.errors == []


def test_errors_in_actions_are_shown_as_messages_not_raised(slicer_app):
    app = slicer_app
    app.scene.session.logic.SetSourceVolumeNode(None)
    app.scene.session.editor_node.SetAndObserveSourceVolumeNode(None)
    for name in ("Smart Regions", "Segment Anything"):
        app.editor.setActiveEffectByName(name)
        drag(app, app.widgets["Red"], [app.centre])
        assert app.editor.active.failures == []
    assert len(app.errors) == 2 and all("source volume" in text.lower() for text in app.errors)


def test_the_paint_effect_file_gives_a_module_name_no_other_effect_uses(slicer_app):
    brush = slicer_app.editor.effects["Smart Brush"]
    assert brush.paint and brush.module_name not in ("SegmentEditorEffect",)
    assert brush.module_name == os.path.splitext(os.path.basename(brush.source))[0]


def test_a_declined_install_is_asked_once_and_every_action_then_says_why(slicer_app, monkeypatch):
    import MVASlicerLib.dependencies as dependencies
    app = slicer_app
    monkeypatch.setattr(dependencies, "ensure_dependencies", _real_ensure_dependencies(), raising=False)
    monkeypatch.setattr("MVAControllersLib.dependency_plan.install_request", lambda requirements: ["scipy>=1.10,<2"])
    app.answer = False  # the user declines (Slicer 5.10 path: no slicer.packaging, a confirm dialog)
    app.editor.setActiveEffectByName("Smart Regions")
    widget = app.widgets["Red"]
    for _ in range(3):
        drag(app, widget, [app.centre, app.centre + (1.0, 0, 0)])
    assert len(app.questions) == 1 and "scipy" in app.questions[0]
    assert len(app.errors) == 3 and all("not installed" in e or "declined" in e for e in app.errors)
    assert app.editor.active.failures == [] and segment(app).sum() == 0


def _real_ensure_dependencies():
    import importlib
    module = importlib.import_module("MVASlicerLib.dependencies")
    return importlib.reload(module).ensure_dependencies


def test_torch_comes_from_the_pytorch_extension_after_the_user_agrees(slicer_app, monkeypatch):
    """SlicerPyTorch's PyTorchUtilsLogic().torch installs without asking (PyTorchUtils.py:150-155, 181-186)."""
    import types

    app = slicer_app
    ensure = _real_ensure_dependencies()
    pip_requests, installs = [], []
    monkeypatch.setattr("MVAControllersLib.dependency_plan.install_request",  # installed by the first pip_ensure
                        lambda requirements: [] if pip_requests else ["scipy>=1.10,<2"])
    packaging = types.ModuleType("slicer.packaging")  # Slicer 5.11+: pip_ensure asks and installs
    packaging.pip_ensure = lambda request, requester=None: pip_requests.append((list(request), requester))
    monkeypatch.setitem(sys.modules, "slicer.packaging", packaging)
    utils = types.ModuleType("PyTorchUtils")
    utils.PyTorchUtilsLogic = lambda: types.SimpleNamespace(torch=installs.append("torch") or object())
    monkeypatch.setitem(sys.modules, "PyTorchUtils", utils)
    import importlib.util
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torch" else find_spec(name, *a))
    app.answer = False
    with pytest.raises(RuntimeError, match="PyTorch was not installed"):
        ensure(torch=True)
    assert pip_requests == [(["scipy>=1.10,<2"], "SegmentAnythingMVA")] and installs == []
    with pytest.raises(RuntimeError, match="declined"):
        ensure(torch=True)  # not asked again
    app.answer = True
    ensure(torch=True, ask_again=True)  # the module's Install button
    assert installs == ["torch"] and sum("PyTorch" in q for q in app.questions) == 2


def test_the_brush_preview_is_redrawn_when_its_slice_view_moves(slicer_app):
    app = slicer_app
    app.editor.setActiveEffectByName("Smart Brush")
    effect, widget = app.editor.active, app.widgets["Red"]
    drag(app, widget, [app.centre])
    overlay = effect.python.shell.overlays[("Red", "preview")]
    before = overlay.image.GetPointData().GetScalars()
    widget.mrmlSliceNode().SetFieldOfView(20.0, 16.0, 1.0)  # zoom: the paint adaptor forwards no view events
    after = overlay.image.GetPointData().GetScalars()
    count = lambda scalars: int((np.frombuffer(memoryview(scalars), np.uint8).reshape(-1, 4)[:, 3] > 0).sum())
    assert after is not before and count(after) > 2 * count(before)  # the effect's own slice node observer


def test_a_propagation_preview_runs_in_the_compute_worker_polled_by_the_effect_timer(slicer_app):
    app = slicer_app
    app.editor.setActiveEffectByName("Smart Propagation")
    effect = app.editor.active
    shell = effect.python.shell
    node = app.widgets["Red"].mrmlSliceNode()
    effect.setParameter("Strategy", "registration")
    effect.setParameter("MaxSlices", 3)
    shell.run(lambda controller: None)  # the effect's controller, as its first action makes it
    plane = shell.controller.plane_of(node)
    drawn = plane.sample(app.scene.ball.astype(np.uint8), app.scene.bridge.work_volume().index_to_ras, order=0) > 0
    app.scene.bridge.apply_slice_mask(plane, drawn, "replace")
    before = segment(app).sum()
    buttons = {w.text: w for w in effect.options_widgets if hasattr(w, "text")}
    buttons["Preview"].click()
    assert shell.controller.runner.request_id and shell.timer.active  # sent to the worker, polled by the timer
    run_jobs(effect)
    assert not shell.timer.active and app.errors == [] and "Preview" in effect.python.statusLabel.text
    assert shell.controller.runner.client.worker_pid not in (None, os.getpid())
    buttons["Apply"].click()
    assert segment(app).sum() > before
    app.scene.session.undo()
    assert segment(app).sum() == before


def test_strategy_sam2_without_the_sam2_package_says_how_to_get_it(slicer_app, monkeypatch):
    import importlib.util
    app = slicer_app
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "sam2" else
                        real_find_spec(name, *a))
    app.editor.setActiveEffectByName("Smart Propagation")
    effect = app.editor.active
    effect.setParameter("Strategy", "sam2")
    buttons = {w.text: w for w in effect.options_widgets if hasattr(w, "text")}
    buttons["Preview"].click()
    assert len(app.errors) == 1 and "sam2" in app.errors[0] and "pip_install" in app.errors[0]
    assert effect.python.shell.controller is None or not effect.python.shell.controller.busy



def test_end_here_takes_back_the_applied_propagation_beyond_the_view_slice_in_one_undo_step(slicer_app):
    app = slicer_app
    app.editor.setActiveEffectByName("Smart Propagation")
    effect = app.editor.active
    shell = effect.python.shell
    node = app.widgets["Red"].mrmlSliceNode()
    effect.setParameter("Strategy", "copy")
    effect.setParameter("MaxSlices", 4)
    shell.run(lambda controller: None)
    seed_plane = shell.controller.plane_of(node)
    axis, seed_k = seed_plane.aligned_axis, seed_plane.slice_index
    drawn = seed_plane.sample(app.scene.ball.astype(np.uint8), app.scene.bridge.work_volume().index_to_ras, order=0) > 0
    app.scene.bridge.apply_slice_mask(seed_plane, drawn, "replace")
    buttons = {w.text: w for w in effect.options_widgets if hasattr(w, "text")}
    assert "undo" in buttons["End here"].toolTip
    buttons["Preview"].click()
    run_jobs(effect)
    buttons["Apply"].click()
    propagated = segment(app)
    per_slice = np.moveaxis(propagated, axis, 0).reshape(propagated.shape[axis], -1).sum(axis=1)
    assert per_slice[seed_k + 2] > 0 and per_slice[seed_k - 2] > 0  # copied both ways
    spacing = np.linalg.norm(app.scene.bridge.work_volume().index_to_ras[:3, 2 - axis])
    node.SetSliceOffset(node.GetSliceOffset() + 2 * spacing)  # the user scrolls two slices on
    end_k = shell.controller.plane_of(node).slice_index
    assert abs(end_k - seed_k) == 2
    buttons["End here"].click()
    assert app.errors == [] and "taken back" in effect.python.statusLabel.text
    ended = np.moveaxis(segment(app), axis, 0)
    beyond = slice(end_k, None) if end_k > seed_k else slice(0, end_k + 1)
    behind = slice(0, end_k) if end_k > seed_k else slice(end_k + 1, None)
    assert not ended[beyond].any()  # the view's slice and every slice beyond it
    assert np.array_equal(ended[behind], np.moveaxis(propagated, axis, 0)[behind])  # the drawn slice and the rest
    app.scene.session.undo()
    assert np.array_equal(segment(app), propagated)
    assert app.editor.press_key("e", app.widgets["Red"])  # the shortcut: End here in the view the key is pressed in
    assert not np.moveaxis(segment(app), axis, 0)[beyond].any()


def test_the_3d_brush_mode_learns_from_strokes_in_two_views_and_apply_writes_one_undo_step(slicer_app):
    app = slicer_app
    app.editor.setActiveEffectByName("Smart Brush")
    effect = app.editor.active
    effect.setParameter("BrushMode", "3D (learns from strokes on any slice)")
    effect.call("updateGUIFromMRML")
    modes = [w for w in effect.options_widgets if "3D" in getattr(w, "toolTip", "")]
    assert modes and "any slice" in modes[0].toolTip
    for view, offset in (("Red", (1.0, 0, 0)), ("Green", (0, 0, 1.0))):
        drag(app, app.widgets[view], [app.centre, app.centre + offset])
        run_jobs(effect)
    assert app.errors == [] and effect.failures == [] and effect.fallback_paints == 0
    assert "3D preview" in effect.python.statusLabel.text and segment(app).sum() == 0
    controller = effect.python.shell.controller
    assert controller.view_overlays(app.widgets["Green"].mrmlSliceNode())["preview"].any()
    buttons = {w.text: w for w in effect.options_widgets if hasattr(w, "text")}
    buttons["Apply"].click()
    written = segment(app)
    assert written.sum() > 0 and len({k for k, _, _ in np.argwhere(written)}) > 2  # beyond the axial slice
    app.scene.session.undo()
    assert segment(app).sum() == 0


def test_a_volume_selected_with_the_model_loaded_is_looked_up_in_its_store_before_the_first_click(
        slicer_app, tmp_path, monkeypatch):
    from MVABridgeLib.volume_io import write_volume
    from MVABridgeLib.volumes import add_volume_node
    from MVAComputeLib.embed_cases import cases_from_path
    from MVAComputeLib.embed_job import EmbedSettings, run_embed
    from MVAComputeLib.operations import engine_for_spec
    from MVASlicerLib import sam_session
    from SegmentAnythingLib import stored_embeddings
    from SegmentAnythingLib.algorithms.sam_embedding_store import DEFAULT_STORE_NAME
    app = slicer_app
    image = app.scene.image + np.int16(7)  # another case, embedded ahead in a store beside its file
    write_volume(str(tmp_path / "case.nrrd"), image, app.scene.matrix)
    run_embed(cases_from_path(tmp_path / "case.nrrd"), tmp_path / DEFAULT_STORE_NAME,
              EmbedSettings(workers=0, axes=("axial",)))
    case = add_volume_node(app.scene.headless.scene, image, app.scene.matrix)
    storage = app.scene.headless.scene.AddNewNodeByClass("vtkMRMLVolumeArchetypeStorageNode")
    storage.SetFileName(str(tmp_path / "case.nrrd"))
    case.SetAndObserveStorageNodeID(storage.GetID())
    sam_session.engines().engine = engine_for_spec("tiny")  # loaded in the SegmentAnythingMVA module
    try:
        app.editor.setActiveEffectByName("Segment Anything")
        app.editor.select_source_volume(case)
        effect = app.editor.active
        logic = effect.python.shell.controller.logic
        assert logic.stored is not None and logic.stored.path == str(tmp_path / DEFAULT_STORE_NAME)
        digests = []
        original_digest = stored_embeddings.volume_digest
        monkeypatch.setattr(stored_embeddings, "volume_digest", lambda *a: digests.append(1) or original_digest(*a))
        drag(app, app.widgets["Red"], [app.centre])
        assert logic.stored.hits == 1 and digests == [] and logic.stored.reason == ""
        assert segment(app).any() and effect.failures == [] and app.errors == []
    finally:
        sam_session.engines().unload()  # stops its prefetcher thread

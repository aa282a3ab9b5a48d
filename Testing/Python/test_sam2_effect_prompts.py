"""Smart Propagation (strategy sam2) from the Segment Anything object's prompts, as the desktop effects run it:
two controllers with a bridge each on one segment editor, the Segment Anything effect left before propagating."""
import gc
import weakref

import numpy as np
import pytest
from controller_scene import event, finish_jobs, make_scene, slice_node
from test_effects_in_slicer_standins import drag, run_jobs, segment, slicer_app  # noqa: F401 - a fixture
from test_sam2_propagation import NO_STOP, fresh_engine

from MVABridgeLib.edit_backend import LogicBackend, SegmentEditBridge
from MVABridgeLib.slice_geometry import SlicePlane
from MVAControllersLib.background_jobs import JobRunner
from MVAControllersLib.segment_anything_controller import EngineSource, SegmentAnythingController
from MVAControllersLib.segment_anything_prompts import prompt_source, publish, published
from MVAControllersLib.smart_propagation_controller import PropagationToolOptions, SmartPropagationController
from SegmentAnythingLib.algorithms.sam2_models import build_tiny_sam2
from SegmentAnythingLib.sam2_propagation import sam2_tracker_factory
from SmartPropagationLib.algorithms import sam2_video

IDENTITY = np.diag([1.0, 1.0, 1.0, 1.0])


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny_model():
    return build_tiny_sam2(seed=0, image_size=64)


class LoadedEngine(EngineSource):
    def __init__(self, engine):
        self.engine = engine

    def loaded(self):
        return self.engine

    def load(self, progress, cancel):
        return self.engine


def desktop_effects(headless, monkeypatch, tiny_model, max_slices=4):
    """A scene, a published Segment Anything controller and a Smart Propagation controller on their own bridges
    (as two desktop effects of one segment editor), strategy sam2 with the tiny random SAM 2."""
    scene = make_scene(headless, IDENTITY, names=("A", "B"))
    engine = fresh_engine(tiny_model)
    monkeypatch.setitem(sam2_video._VIDEO_STRATEGIES, "sam2", sam2_tracker_factory(engine, (400.0, 150.0)))
    sam = SegmentAnythingController(SegmentEditBridge(LogicBackend(scene.session.logic)), LoadedEngine(engine),
                                    JobRunner(threaded=False))
    publish(sam)
    propagation = SmartPropagationController(
        SegmentEditBridge(LogicBackend(scene.session.logic)), JobRunner(threaded=False),
        options=PropagationToolOptions(strategy="sam2", max_slices=max_slices, stop_rule=NO_STOP))
    propagation.prompt_source = prompt_source(propagation)
    return scene, sam, propagation


def preview_masks(propagation, node):
    reaction = propagation.preview(node)
    assert not reaction.message, reaction.message
    finish_jobs(propagation)
    return dict(propagation.logic.preview.masks)


def test_the_desktop_propagates_from_the_left_segment_anything_objects_prompts_and_keeps_the_drawn_slices(
        headless, monkeypatch, tiny_model):
    scene, sam, propagation = desktop_effects(headless, monkeypatch, tiny_model)
    centre = scene.centre_ras()
    node = slice_node("axial", centre)
    seed = propagation.plane_of(node).slice_index
    drawn_k = seed + 2
    drawn_plane = SlicePlane.for_anatomical_axis("axial", drawn_k, IDENTITY, scene.image.shape)
    drawing = np.zeros(drawn_plane.shape, bool)
    drawing[8:13, 9:14] = True  # the user's own paint on a slice propagation passes
    scene.bridge.apply_slice_mask(drawn_plane, drawing)
    sam.handle(event("press", node, centre))
    finish_jobs(sam)
    sam.handle(event("press", node, centre + np.array([3.0, 2.0, 0.0]), shift=True))
    finish_jobs(sam)
    assert sam.logic.session is not None and len(sam.logic.session.points_xy) == 2
    sam.deactivate()  # the user switches to Smart Propagation: the next click would start a new object
    assert sam.logic.session is None and propagation.prompt_source() is not None
    before = scene.segment()

    with_prompts = preview_masks(propagation, node)
    assert not propagation.apply().message
    after = scene.segment()
    assert np.array_equal(after[seed], before[seed]) and np.array_equal(after[drawn_k], before[drawn_k])
    assert np.array_equal(after[seed - 3], with_prompts[seed - 3]) and after[seed - 3].any()
    assert scene.session.undo() and np.array_equal(scene.segment(), before)

    sam.new_object()  # N: the object is done, its prompts no longer condition anything
    assert propagation.prompt_source() is None
    mask_only = preview_masks(propagation, node)
    assert sorted(with_prompts) == sorted(mask_only) == list(range(seed - 4, seed + 5))
    assert np.array_equal(with_prompts[seed], before[seed]) and np.array_equal(with_prompts[drawn_k], before[drawn_k])
    assert any(not np.array_equal(with_prompts[k], mask_only[k]) for k in (seed - 3, seed - 4))


def test_prompts_count_only_on_the_segment_and_volume_they_were_made_on_and_a_closed_effect_drops_out(
        headless, monkeypatch, tiny_model):
    scene, sam, propagation = desktop_effects(headless, monkeypatch, tiny_model)
    centre = scene.centre_ras()
    node = slice_node("axial", centre)
    sam.handle(event("press", node, centre))
    finish_jobs(sam)
    prompts = propagation.prompt_source()
    assert prompts is not None and prompts.labels == (1,) and prompts.plane.slice_index == 7
    scene.session.select_segment(scene.segment_ids[1])  # segment B: the object was made on A
    assert propagation.prompt_source() is None
    scene.session.select_segment(scene.segment_ids[0])
    assert propagation.prompt_source() == prompts
    assert prompt_source(propagation, lambda: [])() is None  # the browser hands its own controller list
    assert sam in published()
    alive = weakref.ref(sam)
    del sam
    gc.collect()
    assert alive() is None and propagation.prompt_source() is None


def test_the_desktop_effects_hand_the_object_left_in_segment_anything_to_smart_propagation(slicer_app):
    """Through the real effect files in the stand-in Segment Editor (a click embeds in the compute worker)."""
    from MVAComputeLib.operations import engine_for_spec
    from MVASlicerLib import sam_session
    app = slicer_app
    sam_session.engines().engine = engine_for_spec("tiny")  # loaded in the SegmentAnythingMVA module
    try:
        hand_over_and_new_object(app)
    finally:
        sam_session.engines().unload()  # ends the session's prefetch thread


def hand_over_and_new_object(app):
    red = app.widgets["Red"]
    app.editor.setActiveEffectByName("Segment Anything")
    drag(app, red, [app.centre])
    run_jobs(app.editor.active)
    assert segment(app).any() and app.errors == []
    app.editor.setActiveEffectByName("Smart Propagation")  # deactivates Segment Anything
    propagation = app.editor.active.python.shell
    propagation.run(lambda controller: None)  # the effect's controller, as its first action makes it
    prompts = propagation.controller.prompt_source()
    plane = propagation.controller.plane_of(red.mrmlSliceNode())
    assert prompts is not None and prompts.labels == (1,) and prompts.plane.slice_index == plane.slice_index
    app.editor.setActiveEffectByName("Segment Anything")
    assert app.editor.press_key("n", red)  # a new object: the last one's prompts are done with
    app.editor.setActiveEffectByName("Smart Propagation")
    assert propagation.controller.prompt_source() is None

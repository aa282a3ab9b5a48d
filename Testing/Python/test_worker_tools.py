"""Predict 3D and Smart Propagation previews through the controllers in the compute worker process: the same
result as in this process, SAM 2 with the tiny random model, cancel, kill -9, and a segment changed meanwhile."""
import os
import signal

import numpy as np
import pytest
import torch
from conftest import GEOMETRIES
from controller_scene import event, finish_jobs, make_scene, slice_node
from test_controllers_tools import stroke

from MVABridgeLib.edit_backend import EditMode
from MVAControllersLib.background_jobs import JobRunner
from MVAControllersLib.smart_brush_controller import BrushToolOptions, SmartBrushController
from MVAControllersLib.smart_propagation_controller import PropagationToolOptions, SmartPropagationController
from MVAControllersLib.worker_jobs import WorkerJobRunner
from SmartPropagationLib.algorithms import StopRule

NO_STOP = StopRule(min_area_mm2=None, area_ratio_band=None, min_quality=None, box_margin_mm=None,
                   min_object_score=None)


@pytest.fixture(scope="module")
def a_client():
    from MVAComputeLib.compute_client import ComputeClient
    client = ComputeClient.local(threads=1)
    yield client
    client.close()


@pytest.fixture
def scene(headless):
    return make_scene(headless, GEOMETRIES["lps_anisotropic"], names=("A", "B"))


def brush_strokes(controller, scene):
    """A stroke on the ball and an erase stroke beside it, in a sagittal view."""
    centre = scene.centre_ras()
    node = slice_node("sagittal", centre)
    stroke(controller, node, [centre])
    controller.options.erase = True
    stroke(controller, node, [centre + (0.0, 9.0, 6.0)])
    controller.options.erase = False
    return node


def seed_slice(scene, orientation="axial"):
    """The ball drawn on the axial slice through its centre; returns that view's slice node."""
    node = slice_node(orientation, scene.centre_ras())
    draw_ball(scene, SmartPropagationController(scene.bridge).plane_of(node))
    return node


def draw_ball(scene, plane):
    """The user draws the ball's section on `plane`."""
    seed = plane.sample(scene.ball.astype(np.uint8), scene.bridge.work_volume().index_to_ras, order=0) > 0
    scene.bridge.apply_slice_mask(plane, seed, EditMode.ADD)


def test_predict_3d_in_the_worker_process_writes_what_this_process_writes(scene, a_client):
    options = BrushToolOptions(radius_mm=1.5)
    worker = SmartBrushController(scene.bridge, WorkerJobRunner(lambda: a_client), options=options)
    brush_strokes(worker, scene)
    reaction = worker.predict_3d()
    assert reaction.job.request[0] == "brush_predict" and worker.runner.request_id
    finish_jobs(worker)
    assert a_client.worker_pid not in (None, os.getpid())
    from_worker = scene.segment()
    scene.session.undo()
    here = SmartBrushController(scene.bridge, JobRunner(threaded=False), options=BrushToolOptions(radius_mm=1.5))
    brush_strokes(here, scene)
    here.predict_3d()
    finish_jobs(here)
    assert from_worker.sum() > 0 and len({k for k, _, _ in np.argwhere(from_worker)}) > 1
    assert np.array_equal(from_worker, scene.segment())


@pytest.mark.parametrize("strategy", ["registration", "interpolation"])
def test_a_propagation_preview_in_the_worker_equals_the_one_made_here(scene, a_client, strategy):
    node = seed_slice(scene)
    if strategy == "interpolation":  # a second drawn slice, 3 slices away
        draw_ball(scene, SmartPropagationController(scene.bridge).plane_of(node).neighbour(3))
    options = PropagationToolOptions(strategy=strategy, max_slices=4)
    worker = SmartPropagationController(scene.bridge, WorkerJobRunner(lambda: a_client), options=options)
    assert worker.preview(node).job.request[0] == "propagate"
    reaction = finish_jobs(worker)
    assert "Preview" in reaction.status, reaction
    here = SmartPropagationController(scene.bridge, JobRunner(threaded=False),
                                      options=PropagationToolOptions(strategy=strategy, max_slices=4))
    here.preview(node)
    finish_jobs(here)
    far, near = worker.logic.preview, here.logic.preview
    assert far.strategy == near.strategy == strategy and sorted(far.masks) == sorted(near.masks)
    assert len(far.masks) > 2 and all(np.array_equal(far.masks[k], near.masks[k]) for k in near.masks)
    assert far.stop_messages() == near.stop_messages()
    assert not worker.apply().message and scene.segment().sum() > 0


def test_sam2_propagation_runs_in_the_worker_with_the_tiny_random_sam2_as_it_does_here(scene, a_client,
                                                                                       monkeypatch):
    from SegmentAnythingLib.sam2_engine_factory import create_sam2_engine
    from SegmentAnythingLib.sam2_propagation import sam2_tracker_factory
    from SmartPropagationLib.algorithms import sam2_video
    node = seed_slice(scene)
    options = PropagationToolOptions(strategy="sam2", max_slices=2, stop_rule=NO_STOP)
    monkeypatch.delitem(sam2_video._VIDEO_STRATEGIES, "sam2", raising=False)  # no SAM 2 in this process
    worker = SmartPropagationController(scene.bridge, WorkerJobRunner(lambda: a_client), options=options,
                                        models=lambda: {"sam2": {"name": "sam2_tiny"}})
    job = worker.preview(node).job
    assert job.request[0] == "propagate" and job.request[1]["model"]["name"] == "sam2_tiny"
    finish_jobs(worker)
    far = worker.logic.preview
    assert far.strategy == "sam2" and len(far.masks) == 5
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        monkeypatch.setitem(sam2_video._VIDEO_STRATEGIES, "sam2", sam2_tracker_factory(create_sam2_engine("sam2_tiny")))
        here = SmartPropagationController(scene.bridge, JobRunner(threaded=False),
                                          options=PropagationToolOptions(strategy="sam2", max_slices=2,
                                                                         stop_rule=NO_STOP))
        here.preview(node)
        finish_jobs(here)
    finally:
        torch.set_num_threads(threads)
    near = here.logic.preview
    assert sorted(far.masks) == sorted(near.masks)
    for k in near.masks:  # the same model and frames in two processes: masks agree to the pixel
        assert np.array_equal(far.masks[k], near.masks[k]), k


def test_killing_the_worker_mid_propagation_says_so_writes_nothing_and_the_next_preview_works(scene, a_client):
    node = seed_slice(scene)
    before = scene.segment().copy()
    controller = SmartPropagationController(scene.bridge, WorkerJobRunner(lambda: a_client),
                                            options=PropagationToolOptions(strategy="registration", max_slices=3))
    first_pid = a_client.run("ping", timeout_s=60).params["pid"]
    os.kill(first_pid, signal.SIGSTOP)  # stopped, so the request is surely unanswered when it is killed
    controller.preview(node)
    os.kill(first_pid, signal.SIGKILL)
    reaction = finish_jobs(controller)
    assert "Propagating" in reaction.message and f"PID {first_pid}" in reaction.message
    assert "stopped unexpectedly" in reaction.message and "new worker is starting" in reaction.message
    assert not controller.has_preview and np.array_equal(scene.segment(), before)
    controller.preview(node)
    assert "Preview" in finish_jobs(controller).status
    assert a_client.worker_pid not in (first_pid, os.getpid())


def test_a_worker_job_is_dropped_when_the_segment_changes_and_nothing_reaches_the_new_segment(scene, a_client):
    controller = SmartBrushController(scene.bridge, WorkerJobRunner(lambda: a_client),
                                      options=BrushToolOptions(radius_mm=1.5))
    brush_strokes(controller, scene)
    pid = a_client.worker_pid
    os.kill(pid, signal.SIGSTOP)  # the job is surely still running when the user switches segments
    try:
        controller.predict_3d()
        scene.session.select_segment(scene.segment_ids[1])
        reaction = controller.poll()
    finally:
        os.kill(pid, signal.SIGCONT)
    assert "nothing was written" in reaction.status and not controller.busy
    assert scene.segment().sum() == 0  # segment B
    scene.session.select_segment(scene.segment_ids[0])
    assert scene.segment().sum() == 0


def test_deactivating_cancels_the_worker_job_and_the_worker_goes_on(scene, a_client):
    node = seed_slice(scene)
    before = scene.segment().copy()
    controller = SmartPropagationController(scene.bridge, WorkerJobRunner(lambda: a_client),
                                            options=PropagationToolOptions(strategy="registration", max_slices=3))
    pid = a_client.worker_pid
    os.kill(pid, signal.SIGSTOP)
    try:
        request_id = controller.preview(node).job and controller.runner.request_id
        controller.deactivate()
        reaction = controller.poll()
    finally:
        os.kill(pid, signal.SIGCONT)
    assert "deactivated; nothing was written" in reaction.status and np.array_equal(scene.segment(), before)
    assert a_client.wait(request_id, 60).status == "cancelled"  # the worker dropped it
    assert a_client.run("ping", timeout_s=60).params["pid"] == pid


def test_re_propagation_after_a_correction_in_the_worker_equals_the_one_made_here(headless, a_client):
    previews = []
    for runner in (WorkerJobRunner(lambda: a_client), JobRunner(threaded=False)):  # two identical cases
        case = make_scene(headless, GEOMETRIES["lps_anisotropic"])
        node = seed_slice(case)
        controller = SmartPropagationController(case.bridge, runner,
                                                options=PropagationToolOptions(strategy="registration", max_slices=4))
        controller.preview(node)
        finish_jobs(controller)
        assert not controller.apply().message
        corrected = controller.plane_of(node).neighbour(2)
        case.bridge.apply_slice_mask(corrected, np.zeros(corrected.shape, bool), EditMode.REPLACE)
        draw_ball(case, corrected)  # the user redraws slice +2
        on_corrected = slice_node("axial", corrected.pixel_to_ras_matrix[:3, 3])  # any point of that slice
        assert controller.plane_of(on_corrected).slice_index == corrected.slice_index
        assert controller.preview(on_corrected, repropagate=True).job is not None
        finish_jobs(controller)
        previews.append(controller.logic.preview)
    far, near = previews
    assert far.masks and far.seed_index not in far.masks  # only the slices beyond the corrected one
    assert sorted(far.masks) == sorted(near.masks) and all(np.array_equal(far.masks[k], near.masks[k]) for k in near.masks)
    assert far.stop_messages() == near.stop_messages()


def test_the_worker_models_follow_the_choices_and_hide_the_random_sam2_from_users():
    from types import SimpleNamespace
    from MVAControllersLib.sam_engines import SAM2_MISSING, offered_sam2_models, propagation_models, sam2_refusal
    assert "sam2_tiny" not in offered_sam2_models(False) and "sam2_tiny" in offered_sam2_models(True)
    assert {"sam2.1_tiny", "sam2.1_small", "sam2.1_base_plus", "sam2.1_large", "medsam2"} <= set(
        offered_sam2_models(False))
    assert propagation_models("sam2.1_small", False) == {"sam2": {"name": "sam2.1_small", "device": "auto"},
                                                         "sam": None}
    assert propagation_models("sam2_tiny", False)["sam2"] is None and "random" in sam2_refusal("sam2_tiny", False)
    assert sam2_refusal("medsam2", False, find_spec=lambda name: None) == SAM2_MISSING

    class Source:  # the module's loaded model and its settings
        def __init__(self, name):
            self.engine = SimpleNamespace(model_name=name)

        def loaded(self):
            return self.engine

        def model_spec(self, engine):
            return {"name": engine.model_name, "checkpoint": "/models/file.pt", "device": "cpu"}
    assert propagation_models("sam2.1_tiny", False, sam_source=Source("vit_b"))["sam"]["name"] == "vit_b"
    assert propagation_models("medsam2", False, sam_source=Source("medsam2"))["sam2"]["checkpoint"] == "/models/file.pt"


def test_a_worker_propagation_is_dropped_when_the_source_volume_changes(scene, a_client):
    from MVABridgeLib.volumes import add_volume_node
    node = seed_slice(scene)
    before = scene.segment().copy()
    controller = SmartPropagationController(scene.bridge, WorkerJobRunner(lambda: a_client),
                                            options=PropagationToolOptions(strategy="registration", max_slices=3))
    other = add_volume_node(scene.headless.scene, scene.image[::-1].copy(), scene.matrix, "Other")
    pid = a_client.worker_pid
    os.kill(pid, signal.SIGSTOP)
    try:
        controller.preview(node)
        scene.session.logic.SetSourceVolumeNode(other)  # the user picks another source volume meanwhile
        reaction = controller.poll()
    finally:
        os.kill(pid, signal.SIGCONT)
    assert "source volume changed; nothing was written" in reaction.status
    assert not controller.has_preview and np.array_equal(scene.segment(), before)

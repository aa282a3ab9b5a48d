"""A Segment Anything click whose slice embedding is computed by the compute worker process, through the
controller's WorkerJobRunner; the prompt is then decoded and written here as one undo step."""
import os

import pytest
from conftest import GEOMETRIES
from controller_scene import event, finish_jobs, make_scene, slice_node
from test_controllers_tools import TinyEngines

from MVAControllersLib.segment_anything_controller import SegmentAnythingController
from MVAControllersLib.worker_jobs import WorkerJobRunner


class WorkerTinyEngines(TinyEngines):
    def model_spec(self, engine):
        return {"name": "tiny", "input_size": engine.input_size}


@pytest.mark.slow
def test_a_sam_click_embeds_in_the_worker_process_and_writes_here(headless):
    from MVAComputeLib.compute_client import ComputeClient
    scene = make_scene(headless, GEOMETRIES["oblique_anisotropic"])
    engines = WorkerTinyEngines()
    engines.load(lambda fraction: None, lambda: False)
    runner = WorkerJobRunner(lambda: ComputeClient.local(threads=1))
    controller = SegmentAnythingController(scene.bridge, engines, runner)
    centre = scene.centre_ras()
    try:
        reaction = controller.handle(event("press", slice_node("coronal", centre), centre))
        assert reaction.job is not None and reaction.job.request[0] == "embed" and runner.request_id
        reaction = finish_jobs(controller, limit=3)
        assert runner.client.worker_pid not in (None, os.getpid())
        assert not reaction.message and "Candidates" in reaction.status
        assert scene.segment()[scene.local_index(centre)] or scene.segment().sum() > 0
        assert engines.engine.has_embedding(controller.logic.session.key)
        scene.session.undo()
        assert scene.segment().sum() == 0
    finally:
        if runner.client is not None:
            runner.client.close()


def test_without_a_worker_the_job_runs_here_and_says_why(headless):
    scene = make_scene(headless, GEOMETRIES["identity"])
    engines = WorkerTinyEngines()
    engines.load(lambda fraction: None, lambda: False)

    def no_worker():
        raise OSError("no PythonSlicer next to the application")
    runner = WorkerJobRunner(no_worker)
    controller = SegmentAnythingController(scene.bridge, engines, runner)
    centre = scene.centre_ras()
    controller.handle(event("press", slice_node("axial", centre), centre))
    finish_jobs(controller)
    assert "PythonSlicer" in runner.notice and scene.segment().sum() > 0

"""Heavy steps of the controllers in the compute worker process (WorkerJobRunner over MVAComputeLib's client):
a Segment Anything slice embedding and the Smart Regions supervoxels; results written here, one undo step each."""
import os

import numpy as np
import pytest
from conftest import GEOMETRIES
from controller_scene import event, finish_jobs, make_scene, slice_node
from test_controllers_tools import TinyEngines

from MVAControllersLib.segment_anything_controller import SegmentAnythingController
from MVAControllersLib.smart_regions_controller import RegionsToolOptions, SmartRegionsController
from MVAControllersLib.worker_jobs import WorkerJobRunner


class WorkerTinyEngines(TinyEngines):
    def model_spec(self, engine):
        return {"name": "tiny", "input_size": engine.input_size}


@pytest.fixture(scope="module")
def a_client():
    from MVAComputeLib.compute_client import ComputeClient
    client = ComputeClient.local(threads=1)
    yield client
    client.close()


@pytest.mark.slow
def test_a_sam_click_embeds_in_the_worker_process_and_writes_here(headless, a_client):
    import time
    scene = make_scene(headless, GEOMETRIES["lps_anisotropic"])
    engines = WorkerTinyEngines()
    engines.load(lambda fraction: None, lambda: False)
    runner = WorkerJobRunner(lambda: a_client)
    controller = SegmentAnythingController(scene.bridge, engines, runner)
    centre = scene.centre_ras()
    node = slice_node("axial", centre)
    reaction = controller.handle(event("press", node, centre))
    assert reaction.job is not None and reaction.job.request[0] == "embed" and runner.request_id
    reaction = finish_jobs(controller, limit=3)
    assert a_client.worker_pid not in (None, os.getpid())
    assert not reaction.message and "Candidates" in reaction.status and scene.segment().sum() > 0
    assert engines.engine.has_embedding(controller.logic.session.key)
    assert runner.side_pending  # the neighbours are being embedded in the worker, nothing waits for them
    deadline = time.time() + 120
    while controller.working and time.time() < deadline:
        time.sleep(0.05)
        controller.poll()
    neighbour = controller.plane_of(node).neighbour(1)
    assert engines.engine.has_embedding(controller.logic.slice_key(neighbour))
    scene.session.undo()
    assert scene.segment().sum() == 0


@pytest.mark.slow
def test_supervoxels_come_from_the_worker_and_equal_the_local_ones(headless, a_client):
    from SmartRegionsLib.algorithms.supervoxels import compute_supervoxels
    scene = make_scene(headless, GEOMETRIES["lps_anisotropic"])
    options = RegionsToolOptions(mode="3d", region_size_mm=6.0, merge_tolerance=None)
    controller = SmartRegionsController(scene.bridge, WorkerJobRunner(lambda: a_client), options=options)
    centre = scene.centre_ras()
    node = slice_node("axial", centre)
    controller.handle(event("press", node, centre))
    assert controller.handle(event("release", node, centre)).job.request[0] == "supervoxels"
    finish_jobs(controller)
    assert scene.segment()[scene.local_index(centre)]
    volume = scene.bridge.work_volume()
    local = compute_supervoxels(volume.array, volume.spacing_kji, options.parameters())
    assert np.array_equal(controller.logic.volume_labels(), local)


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

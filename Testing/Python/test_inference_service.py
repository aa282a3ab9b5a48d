"""The inference service on 127.0.0.1 as a subprocess: compute over HTTP, token, pickle refused, cancel, an embed
job for a project, and the logic falling back to local compute when the service is down."""
import os
import pickle
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import numpy as np
import pytest

from MVAComputeLib.compute_client import ComputeClient
from MVAComputeLib.compute_errors import AuthenticationError
from MVAComputeLib.http_transport import HttpTransport
from MVAComputeLib.local_worker import module_folders
from SegmentAnythingLib.algorithms.sam_engine import SamEngine
from SegmentAnythingLib.algorithms.sam_models import build_tiny_sam

TOKEN = "s3cret-test-token"
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def a_project_db(tmp_path_factory):
    from MVAWorkflowLib import security
    from MVAWorkflowLib.service import WorkflowService
    from MVAWorkflowLib.testing import write_case_volumes
    folder = tmp_path_factory.mktemp("project")
    security.configure_hasher(time_cost=1, memory_cost_kib=1024)
    try:
        service = WorkflowService.open(f"sqlite:///{folder / 'workflow.db'}")
        service.create_first_admin("ada", "correct horse battery")
        token = service.login("ada", "correct horse battery").token
        project = service.create_project(token, "Brains", storage_root=str(folder / "storage"))
        write_case_volumes(folder / "volumes", names=("one", "two"))
        service.add_cases(token, project.id, str(folder / "volumes"))
        service.database.dispose()
    finally:
        security.configure_hasher()
    return folder


@pytest.fixture(scope="module")
def a_service(a_project_db):
    port = free_port()
    environment = dict(os.environ, PYTHONPATH=os.pathsep.join(
        module_folders() + [os.path.join(ROOT, name) for name in ("SmartPropagation", "WebAnnotator")]))
    command = [sys.executable, "-m", "MVACommandLineLib.cli", "inference-service", "--port", str(port), "--token",
               TOKEN, "--threads", "1", "--project-db", str(a_project_db / "workflow.db"), "--store",
               str(a_project_db / "store.zarr"), "--embed-workers", "0"]
    process = subprocess.Popen(command, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    transport = HttpTransport(url, TOKEN)
    deadline = time.monotonic() + 120
    while True:
        try:
            transport.health()
            break
        except Exception:  # noqa: BLE001 - not up yet
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"the service did not start: {process.stderr.read().decode()[-2000:]}")
            time.sleep(0.5)
    yield url, process
    process.terminate()
    process.wait(timeout=20)


@pytest.fixture(scope="module")
def a_slice_image():
    rows, columns = np.mgrid[:50, :64]
    disc = ((rows - 25) ** 2 + (columns - 30) ** 2 < 12 ** 2) * 170
    return np.repeat((disc + np.random.default_rng(4).integers(0, 30, (50, 64))).astype(np.uint8)[..., None], 3, 2)


def test_embed_and_decode_over_http_match_the_engine(a_service, a_slice_image):
    url, process = a_service
    with ComputeClient.remote(url, TOKEN) as client:
        embedded = client.run("embed", {"model": {"name": "tiny"}}, {"image": a_slice_image}, timeout_s=120)
        decoded = client.run("decode", {"model": {"name": "tiny"}, **{k: embedded.params[k] for k in
                                                                         ("original_size", "input_size")}},
                             {"embedding": embedded.arrays["embedding"], "points_xy": np.array([[30.0, 25.0]])},
                             timeout_s=120)
    engine = SamEngine(build_tiny_sam(seed=0))
    expected, _ = engine.compute_embedding(a_slice_image)
    np.testing.assert_allclose(embedded.arrays["embedding"].astype(np.float32), expected.half().float().numpy(),
                               atol=2e-3)
    assert decoded.arrays["lowres_logits"].shape == (3, 64, 64) and len(decoded.params["tokens"]) == 3


def test_a_wrong_token_and_a_pickle_are_refused(a_service):
    url, _ = a_service
    with ComputeClient.remote(url, "not the token") as client:
        reply = client.wait(client.submit("ping"), 60)
    assert reply.error == "AuthenticationError" and "refused the token" in reply.message
    with pytest.raises(AuthenticationError):
        HttpTransport(url, "").health()
    request = urllib.request.Request(url + "/v1/compute", data=pickle.dumps({"kind": "request", "op": "ping"}),
                                     headers={"Authorization": f"Bearer {TOKEN}"}, method="POST")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=30)
    assert refused.value.code == 415 and b"pickle" in refused.value.read()


def test_a_queued_and_a_running_request_are_cancelled_over_http(a_service):
    url, _ = a_service
    volume = np.random.default_rng(0).normal(0, 1, (48, 160, 160)).astype(np.float32)
    with ComputeClient.remote(url, TOKEN) as client:
        busy = client.submit("supervoxels", {"spacing_kji": [1, 1, 1], "parameters": {"region_size_mm": 4.0}},
                             {"image": volume})
        time.sleep(1.0)  # the supervoxels are running in the worker
        queued = client.submit("ping")
        time.sleep(0.5)
        client.cancel(queued)
        client.cancel(busy)  # the running one stops at its next check instead of being waited for
        assert client.wait(busy, 120).status == "cancelled"
        assert client.wait(queued, 120).status == "cancelled"
        assert client.wait(client.submit("ping"), 60).ok  # and the worker serves the next request


def test_a_propagation_preview_over_http_equals_the_one_computed_here(a_service):
    from MVAComputeLib.propagation_operation import propagation_request, result_from_reply
    from SmartPropagationLib.propagation_run import PropagationRun, run_propagation
    k, j, i = np.mgrid[:9, :30, :32]
    ball = (k - 4) ** 2 / 9 + ((j - 15) ** 2 + (i - 16) ** 2) / 64 <= 1
    image = (np.random.default_rng(3).normal(0, 5, ball.shape) + 200 * ball).astype(np.int16)
    run = PropagationRun("registration", 0, 4, 0, image, {4: ball[4]}, "both", 3, (2.0, 1.0, 1.0))
    url, _ = a_service
    with ComputeClient.remote(url, TOKEN) as client:
        remote = result_from_reply(client.run(*propagation_request(run), timeout_s=120))
    local = run_propagation(run)
    assert sorted(remote.masks) == sorted(local.masks) and len(local.masks) > 3
    assert all(np.array_equal(remote.masks[n], local.masks[n]) for n in local.masks)
    assert {d: (s.slice_k, s.reason) for d, s in remote.stops.items()} == \
        {d: (s.slice_k, s.reason) for d, s in local.stops.items()}


def test_an_embed_job_embeds_the_cases_the_project_lists(a_service, a_project_db):
    import json
    url, _ = a_service

    def call(method, path, payload=None):
        request = urllib.request.Request(url + path, method=method, headers={
            "Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
            data=None if payload is None else json.dumps(payload).encode())
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    with pytest.raises(urllib.error.HTTPError) as unknown:
        call("POST", "/v1/embed-jobs", {"project": "Hearts", "model": {"name": "tiny"}})
    assert unknown.value.code == 400
    job = call("POST", "/v1/embed-jobs", {"project": "Brains", "model": {"name": "tiny"}})["job"]
    deadline = time.monotonic() + 120
    while (status := call("GET", f"/v1/embed-jobs/{job}"))["state"] == "running" and time.monotonic() < deadline:
        time.sleep(0.5)
    assert status["state"] == "done" and status["done"] == status["total"] == 12, status
    from MVAComputeLib.embed_job import stored_slices
    assert sorted(axes["k"] for axes in stored_slices(a_project_db / "store.zarr").values()) == [6, 6]


def test_the_logic_encodes_remotely_and_falls_back_to_local_with_a_message(a_service, headless):
    from conftest import add_segmentation

    from MVABridgeLib.editor_session import SegmentEditorSession
    from MVABridgeLib.slice_geometry import SlicePlane
    from MVABridgeLib.volumes import add_volume_node
    from SegmentAnythingLib.engine_factory import create_engine
    from SegmentAnythingLib.segment_anything_logic import SegmentAnythingLogic
    url, _ = a_service
    image = np.zeros((4, 40, 36), np.int16)
    image[:, 10:30, 8:28] = 300
    matrix = np.diag([1.0, 1.0, 2.0, 1.0])
    volume = add_volume_node(headless.scene, image, matrix)
    segmentation, (segment_id,) = add_segmentation(headless, volume)
    session = SegmentEditorSession(volume, segmentation, segment_id, headless.scene)
    plane = SlicePlane.for_anatomical_axis("axial", 1, matrix, image.shape)
    remote = create_engine("tiny", remote_url=url, remote_token=TOKEN)
    down = create_engine("tiny", remote_url=f"http://127.0.0.1:{free_port()}", remote_token=TOKEN)
    for engine in (remote, down):
        logic = SegmentAnythingLogic(session.bridge, engine, "tiny", window_level=(400.0, 100.0))
        logic.add_point(plane, (20, 18))
    assert remote.remote_encoder.remote_count == 1 and remote.remote_encoder.local_count == 0
    assert down.remote_encoder.remote_count == 0 and down.remote_encoder.local_count == 1
    assert "Remote inference unavailable" in logic.status() and "unreachable" in logic.status()
    key = logic.slice_key(plane)
    assert np.allclose(remote.cache.get(key).embedding.float(), down.cache.get(key).embedding.float(), atol=2e-3)

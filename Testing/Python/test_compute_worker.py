"""The compute worker process and its client: protocol, PIDs, embedding, cancel, kill -9, stalled worker."""
import os
import pickle
import signal
import threading

import numpy as np
import pytest

from MVAComputeLib.compute_client import ComputeClient
from MVAComputeLib.compute_errors import ComputeUnavailableError, ProtocolError, RemoteComputeError
from MVAComputeLib.local_worker import find_worker_python
from MVAComputeLib.wire_format import decode_message, encode_message
from SegmentAnythingLib.algorithms.sam_engine import SamEngine
from SegmentAnythingLib.algorithms.sam_models import build_tiny_sam

TINY = {"name": "tiny"}


@pytest.fixture(scope="module")
def a_client():
    client = ComputeClient.local(threads=1)
    yield client
    client.close()


@pytest.fixture(scope="module")
def a_slice_image():
    rows, columns = np.mgrid[:60, :70]
    disc = ((rows - 30) ** 2 + (columns - 35) ** 2 < 15 ** 2) * 160
    return np.repeat((disc + np.random.default_rng(1).integers(0, 40, (60, 70))).astype(np.uint8)[..., None], 3, 2)


def run_in_thread(function, timeout_s=20):
    """Run `function` in a thread; True when it returned within `timeout_s` (a hang fails the test, not CI)."""
    done = threading.Event()
    thread = threading.Thread(target=lambda: (function(), done.set()), daemon=True)
    thread.start()
    return done.wait(timeout_s)


def test_frames_round_trip_arrays_and_refuse_pickle_and_object_arrays():
    arrays = {"big_endian": np.arange(6, dtype=">i2").reshape(2, 3), "half": np.ones((1, 2), np.float16)}
    header, decoded = decode_message(encode_message({"kind": "request", "id": "a"}, arrays))
    assert header["kind"] == "request" and decoded["big_endian"].tolist() == [[0, 1, 2], [3, 4, 5]]
    assert decoded["half"].dtype == np.float16
    with pytest.raises(ProtocolError, match="pickle"):
        decode_message(pickle.dumps({"kind": "request"}))
    with pytest.raises(ProtocolError, match="dtype"):
        encode_message({"kind": "request"}, {"objects": np.array([object()])})
    frame = bytearray(encode_message({"kind": "request"}, {"a": np.zeros(4, np.int32)}))
    with pytest.raises(ProtocolError, match="bytes"):
        decode_message(bytes(frame[:-3]))


def test_the_worker_is_another_process_and_embeds_as_the_engine_does(a_client, a_slice_image):
    ping = a_client.run("ping", timeout_s=60)
    assert ping.params["pid"] == a_client.worker_pid != os.getpid()
    reply = a_client.run("embed", {"model": TINY}, {"image": a_slice_image}, timeout_s=60)
    expected, input_size = SamEngine(build_tiny_sam(seed=0)).compute_embedding(a_slice_image)
    assert reply.arrays["embedding"].dtype == np.float16
    assert np.array_equal(reply.arrays["embedding"], expected.half().numpy())
    assert tuple(reply.params["input_size"]) == input_size and reply.params["original_size"] == [60, 70]
    assert a_client.run("ping", timeout_s=60).params["threads"] == 1  # torch, loaded by the embed, has --threads


def test_decoding_in_the_worker_gives_the_engines_masks(a_client, a_slice_image):
    engine = SamEngine(build_tiny_sam(seed=0))
    entry = engine.embed("slice", a_slice_image)
    expected = engine.predict("slice", np.array([[35.0, 30.0]]), np.array([1]))
    reply = a_client.run("decode", {"model": TINY, "original_size": list(entry.original_size),
                                    "input_size": list(entry.input_size)},
                         {"embedding": entry.embedding.numpy(), "points_xy": np.array([[35.0, 30.0]]),
                          "labels": np.array([1])}, timeout_s=60)
    assert tuple(reply.params["tokens"]) == expected.tokens
    # Same weights and embedding; only the thread count differs (1 there, 2 here), so sums may round apart.
    np.testing.assert_allclose(reply.arrays["lowres_logits"], expected.lowres_logits.float().numpy(), atol=1e-5)


def test_a_failing_operation_answers_an_error_and_the_worker_goes_on(a_client):
    bad = a_client.wait(a_client.submit("embed", {"model": TINY}, {"image": np.zeros((5, 5), np.uint8)}), 60)
    assert bad.status == "error" and "rows, columns, 3" in bad.message
    with pytest.raises(RemoteComputeError, match="Unknown compute operation"):
        a_client.run("no_such_thing", timeout_s=60)
    assert a_client.run("ping", timeout_s=60).params["pid"] == a_client.worker_pid


def test_poll_and_submit_return_at_once_against_a_stalled_worker_and_cancel_drops_the_request(a_client):
    big_image = np.zeros((1024, 1024, 3), np.uint8)  # 3 MB: more than a pipe holds, a blocking write would hang
    os.kill(a_client.worker_pid, signal.SIGSTOP)
    try:
        submitted = []
        assert run_in_thread(lambda: submitted.append(a_client.submit("embed", {"model": TINY}, {"image": big_image})))
        assert run_in_thread(lambda: [a_client.poll() for _ in range(100)])
        assert a_client.poll() == [] and submitted[0] in a_client.pending()
        a_client.cancel(submitted[0])
    finally:
        os.kill(a_client.worker_pid, signal.SIGCONT)
    assert a_client.wait(submitted[0], 60).status == "cancelled"


def test_kill_9_restarts_the_worker_and_says_so():
    with ComputeClient.local(threads=1) as client:
        first_pid = client.run("ping", timeout_s=60).params["pid"]
        os.kill(first_pid, signal.SIGSTOP)  # stopped, so the request below is surely unanswered at the kill
        unanswered = client.submit("ping")
        os.kill(first_pid, signal.SIGKILL)
        reply = client.wait(unanswered, 60)
        assert reply.status == "error" and reply.error == "WorkerCrashedError"
        assert f"PID {first_pid}" in reply.message and "killed by signal 9" in reply.message
        assert "new worker is starting" in client.notice
        assert client.run("ping", timeout_s=60).params["pid"] not in (first_pid, os.getpid())


def test_supervoxels_in_the_worker_equal_those_computed_here(a_client):
    from SmartRegionsLib.algorithms.supervoxels import compute_supervoxels
    image = np.random.default_rng(2).normal(100, 20, (6, 20, 24)).astype(np.float32)
    image[:, :, 12:] += 200
    reply = a_client.run("supervoxels", {"spacing_kji": [2.0, 1.0, 1.0], "parameters": {"region_size_mm": 6.0}},
                         {"image": image}, timeout_s=60)
    from SmartRegionsLib.algorithms.supervoxels import SupervoxelParameters
    expected = compute_supervoxels(image, (2.0, 1.0, 1.0), SupervoxelParameters(region_size_mm=6.0))
    assert np.array_equal(reply.arrays["labels"], expected) and reply.params["regions"] == expected.max() > 1


def test_the_worker_python_is_this_interpreter_headless_and_pythonslicer_inside_slicer(tmp_path, monkeypatch):
    import sys
    monkeypatch.delenv("MVA_WORKER_PYTHON", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert find_worker_python() == os.path.abspath(sys.executable)
    application = tmp_path / "bin" / "SlicerApp-real"
    application.parent.mkdir()
    application.write_text("")
    with pytest.raises(ComputeUnavailableError, match="PythonSlicer"):
        find_worker_python(str(application))
    (tmp_path / "bin" / "PythonSlicer").write_text("")
    assert find_worker_python(str(application)) == str(tmp_path / "bin" / "PythonSlicer")


def test_the_desktop_side_imports_neither_ray_nor_the_web_service():
    import subprocess
    import sys
    from MVAComputeLib.local_worker import module_folders
    modules = ("MVAComputeLib.compute_client", "MVAComputeLib.local_worker", "MVAComputeLib.http_transport",
               "MVAComputeLib.remote_encoding", "SegmentAnythingLib.segment_anything_logic",
               "SegmentAnythingLib.stored_embeddings", "MVAControllersLib.sam_engines",
               "MVAControllersLib.segment_anything_controller")
    code = "import sys\n" + "".join(f"import {name}\n" for name in modules) + \
        "print(sorted(m for m in ('ray', 'fastapi', 'uvicorn', 'starlette') if m in sys.modules))"
    environment = dict(os.environ, PYTHONPATH=os.pathsep.join(module_folders()))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environment, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"


def test_brush_prediction_in_the_worker_equals_the_one_made_here(a_client):
    from MVAComputeLib.brush_operation import brush_box_request
    from SmartBrushLib.algorithms.model import SmartBrushModel
    image = np.random.default_rng(5).normal(50, 10, (20, 70, 80)).astype(np.float32)
    image[:, :, 40:] += 120
    model = SmartBrushModel(image, (2.0, 1.0, 1.0))
    strokes = np.zeros(image.shape, bool), np.zeros(image.shape, bool), np.zeros(image.shape, bool)
    strokes[0][10, 30:34, 25:29], strokes[1][10, 30:34, 50:54], strokes[2][9, 22:25, 22:25] = True, True, True
    for mask, label in zip(strokes, (1, 2, 0)):  # label 0: an erase stroke, which the old request lost
        model.add_stroke(mask, label)
    box = ((6, 14), (20, 50), (20, 60))  # the crop sent (box and feature context) is smaller than the image
    op, params, arrays = brush_box_request(model, box)
    assert arrays["image"].size < image.size and 0 in arrays["stroke_labels"]
    reply = a_client.run(op, params, arrays, timeout_s=120)
    labels, probability = model.predict_box(box)
    assert np.array_equal(reply.arrays["labels"], labels) and {1, 2} <= set(np.unique(labels).tolist())
    assert np.array_equal(reply.arrays["probability"], probability)


def test_a_bias_corrected_brush_prediction_in_the_worker_equals_the_one_made_here(a_client):
    from MVAComputeLib.brush_operation import brush_box_request
    from SmartBrushLib.algorithms.model import SmartBrushModel
    shape = (48, 40, 48)
    stripes = np.broadcast_to(((np.arange(shape[2]) // 6) % 2 == 0)[None, None, :], shape)
    field = 1.0 + 0.25 * np.linspace(-1.0, 1.0, shape[0], dtype=np.float32)[:, None, None]
    image = (np.where(stripes, 100.0, 70.0) * field + np.random.default_rng(6).normal(0, 2.0, shape))
    model = SmartBrushModel(image.astype(np.float32))
    assert model.bias_corrected  # the request carries the corrected image: the worker must not correct it again
    for label, column in ((1, 14), (0, 20)):
        stroke = np.zeros(shape, bool)
        stroke[30, 17:23, column - 1:column + 2] = True
        model.add_stroke(stroke, label)
    box = ((2, 46), (2, 38), (2, 46))
    op, params, arrays = brush_box_request(model, box)
    reply = a_client.run(op, params, arrays, timeout_s=120)
    labels, probability = model.predict_box(box)
    assert np.array_equal(reply.arrays["labels"], labels) and np.array_equal(reply.arrays["probability"], probability)

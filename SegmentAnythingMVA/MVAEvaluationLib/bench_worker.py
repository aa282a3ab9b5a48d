"""`mva bench --only worker`: heavy tool steps in the compute worker process next to the same step computed in this
process: the GUI thread's share (building and sending the request) and the whole round trip (MNI volume)."""
import time

import numpy as np


def bench_worker(data, quick):
    from MVAComputeLib.compute_client import ComputeClient
    from MVAEvaluationLib.bench import row
    tic = time.perf_counter()
    client = ComputeClient.local()
    pid = client.run("ping", timeout_s=300).params["pid"]
    start_seconds = time.perf_counter() - tic
    try:
        repeat = 1 if quick else 3
        return [_predict_3d(client, data, repeat, start_seconds, pid, row),
                _propagation(client, data, repeat, 5 if quick else 20, row), _propagation_plan(data, repeat, row)]
    finally:
        client.close()


def _round_trip(client, request, repeat):
    """(reply of the last run, GUI-thread seconds per run (build + submit), round-trip seconds per run)."""
    gui, total, reply = [], [], None
    for _ in range(repeat):
        tic = time.perf_counter()
        op, params, arrays = request()
        request_id = client.submit(op, params, arrays)
        gui.append(time.perf_counter() - tic)
        reply = client.wait(request_id, 600).raise_for_error()
        total.append(time.perf_counter() - tic)
    return reply, gui, total


def _predict_3d(client, data, repeat, start_seconds, pid, row):
    from MVAComputeLib.brush_operation import brush_box_request
    from SmartBrushLib.algorithms.model import SmartBrushModel
    k = 97
    truth = data.truth[k].astype(bool)
    model = SmartBrushModel(data.image, (1.0, 1.0, 1.0))
    rows, cols = np.nonzero(truth)
    centre = rows[len(rows) // 2], cols[len(cols) // 2]
    dab = np.zeros(data.image.shape, bool)
    dab[k, centre[0] - 2:centre[0] + 3, centre[1] - 2:centre[1] + 3] = True
    model.add_stroke(dab & truth[None], 1)
    outside = np.argwhere(~truth)[len(np.argwhere(~truth)) // 2]
    erase = np.zeros(data.image.shape, bool)
    erase[k, outside[0] - 2:outside[0] + 3, outside[1] - 2:outside[1] + 3] = True
    model.add_stroke(erase, 0)
    painted = np.argwhere(dab | erase)
    box = tuple((int(max(a - 10, 0)), int(min(b + 11, n)))
                for a, b, n in zip(painted.min(0), painted.max(0), data.image.shape))
    reply, gui, total = _round_trip(client, lambda: brush_box_request(model, box), repeat)
    here = []
    for _ in range(repeat):
        from SmartBrushLib.algorithms.features import FeatureCache
        model.features = FeatureCache()  # the worker computes the box features afresh for every request too
        tic = time.perf_counter()
        labels, _ = model.predict_box(box)
        here.append(time.perf_counter() - tic)
    return row(f"Predict 3D in the worker, box {tuple(b - a for a, b in box)} (round trip)", total,
               "Predict 3D in this process", here, gui_thread_p50_ms=round(1000 * float(np.median(gui)), 1),
               same_labels=bool(np.array_equal(reply.arrays["labels"], labels)),
               worker_start_s=round(start_seconds, 1), worker_pid=pid)


def _propagation(client, data, repeat, count, row):
    from MVAComputeLib.propagation_operation import propagation_request, result_from_reply
    from SmartPropagationLib.algorithms import StopRule
    from SmartPropagationLib.propagation_run import PropagationRun, reachable_slices, run_propagation
    k = 97
    low, high = reachable_slices("registration", k, set(), "both", count, data.image.shape[0])
    run = PropagationRun("registration", 0, k, low, data.image[low:high + 1], {k: data.truth[k].astype(bool)},
                         "both", count, (1.0, 1.0, 1.0),
                         StopRule(min_area_mm2=None, area_ratio_band=None, min_quality=None, box_margin_mm=None))
    reply, gui, total = _round_trip(client, lambda: propagation_request(run), repeat)
    here = []
    for _ in range(repeat):
        tic = time.perf_counter()
        local = run_propagation(run)
        here.append(time.perf_counter() - tic)
    remote = result_from_reply(reply)
    same = sorted(remote.masks) == sorted(local.masks) and all(
        np.array_equal(remote.masks[n], local.masks[n]) for n in local.masks)
    return row(f"propagation preview in the worker, {2 * count} slices (round trip)", total,
               "propagation preview in this process", here, gui_thread_p50_ms=round(1000 * float(np.median(gui)), 1),
               same_masks=bool(same), slices_sent=int(high - low + 1))


def _propagation_plan(data, repeat, row):
    """What a propagation preview costs the GUI thread before it is sent: the segment, drawn slices, the crop."""
    from MVABridgeLib.edit_backend import EditMode
    from MVAEvaluationLib.evaluation import Case
    from SmartPropagationLib.propagation_options import PropagationOptions
    from SmartPropagationLib.smart_propagation_logic import SmartPropagationLogic
    case = Case("mni", data.image, data.truth, data.ijk_to_ras)
    try:
        plane = case.plane("axial", 97)
        case.bridge.apply_slice_mask(plane, plane.sample(data.truth, data.ijk_to_ras, order=0) > 0, EditMode.REPLACE)
        logic = SmartPropagationLogic(case.bridge, PropagationOptions(strategy="registration", max_slices=20))
        seconds = []
        for _ in range(repeat):
            tic = time.perf_counter()
            logic.plan_preview(plane)
            seconds.append(time.perf_counter() - tic)
        return row(f"propagation plan on the GUI thread, volume {data.image.shape} (segment, drawn slices, crop)",
                   seconds)
    finally:
        case.close()


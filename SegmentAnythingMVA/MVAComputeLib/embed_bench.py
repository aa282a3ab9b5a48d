"""Figures for pre-embedding (random-weight ViT-B; a handful of slices, so it fits a shared CPU machine).

``python -m MVAComputeLib.embed_bench [--output FILE.json] [--slices N] [--sides 512 1024]`` measures on the
MNI T1 template cropped to N axial slices:

- `mva embed` throughput with 1 Ray worker (2 threads) and 2 Ray workers (1 thread each), per input side;
- store size per 100 slices;
- peak memory (VmHWM) of an embedding worker and of the local compute worker after one embedding;
- case open (volume into the scene + logic + store lookup) and first click on a stored slice -> mask in the
  segment, through the shared Segment Anything controller (the path of the desktop effect and the browser),
  next to a click on a slice that is not stored; per decoder thread count (``--click-threads``: the engine's
  ``decoder_threads``, the process keeps its own count for the encoder), alone and, with ``--busy-encoder``,
  while a thread of the same process embeds slices (a prefetcher, or the browser's job thread).

``--sides`` with no value and ``--inline-sides 512 1024`` embed the stores in this process (no Ray run).
"""
import argparse
import contextlib
import json
import os
import statistics
import tempfile
import threading
import time

os.environ.setdefault("ITK_GLOBAL_DEFAULT_THREADER", "Pool")


def peak_memory_mb(pid):
    """VmHWM of a process in MB (Linux), or None."""
    from MVAComputeLib.embed_memory import proc_status_mb
    return proc_status_mb(f"/proc/{pid}/status", "VmHWM")


def folder_mb(path):
    return sum(os.path.getsize(os.path.join(root, name)) for root, _, names in os.walk(path) for name in names) / 2**20


def write_cropped_mni(folder, slices):
    from MVABridgeLib.volume_io import read_volume, write_volume
    from MVAEvaluationLib.datasets import mni_path
    array, ijk_to_ras = read_volume(mni_path("t1"))
    start = 97 - slices // 2
    cropped = array[start:start + slices]
    matrix = ijk_to_ras.copy()
    matrix[:3, 3] = (ijk_to_ras @ [0, 0, start, 1])[:3]
    path = os.path.join(folder, "mni_crop.nrrd")
    write_volume(path, cropped, matrix)
    return path


def bench_throughput(case_path, folder, sides, rows):
    import ray

    from MVAComputeLib.embed_cases import cases_from_path
    from MVAComputeLib.embed_job import EmbedSettings, run_embed
    from MVAComputeLib.embed_ray import release_workers
    cases = cases_from_path(case_path)
    ray.init(num_cpus=2, object_store_memory=256 * 2**20, include_dashboard=False, log_to_driver=False)
    try:
        for side in sides:
            for workers, threads in ((1, 2), (2, 1)):
                store = os.path.join(folder, f"store_{side}_{workers}.zarr")
                settings = EmbedSettings(model="vit_b-random", input_size=None if side == 1024 else side,
                                         workers=workers, threads_per_worker=threads, batch_slices=1)
                summary = run_embed(cases, store, settings)
                busy = {pid: stats["slices"] / stats["seconds"] for pid, stats in summary.workers.items()}
                cpu = {pid: stats["cpu_seconds"] / stats["slices"] for pid, stats in summary.workers.items()}
                memory = [peak_memory_mb(int(pid)) for pid in summary.workers]
                rows.append({"what": "mva embed", "side": side, "workers": workers, "threads_per_worker": threads,
                             "slices": summary.slices_computed, "seconds": round(summary.seconds, 2),
                             "slices_per_s": round(summary.slices_computed / summary.seconds, 3),
                             "slices_per_s_per_worker_busy": {k: round(v, 3) for k, v in busy.items()},
                             "cpu_s_per_slice_per_worker": {k: round(v, 2) for k, v in cpu.items()},
                             "worker_peak_mb": [round(m) for m in memory if m],
                             "worker_estimate_mb": round(summary.worker_memory_mb),
                             "store_mb_per_100_slices": round(folder_mb(store) / summary.slices_computed * 100, 1)})
                print(json.dumps(rows[-1]), flush=True)
                release_workers()
    finally:
        ray.shutdown()


def bench_compute_worker(rows):
    import numpy as np

    from MVAComputeLib.compute_client import ComputeClient
    image = np.random.default_rng(0).integers(0, 255, (233, 197, 3)).astype(np.uint8)
    with ComputeClient.local(threads=2) as client:
        tic = time.perf_counter()
        client.run("embed", {"model": {"name": "vit_b-random", "input_size": 512}}, {"image": image}, timeout_s=600)
        rows.append({"what": "local compute worker, first ViT-B embedding at 512 px (model build included)",
                     "seconds": round(time.perf_counter() - tic, 2),
                     "worker_peak_mb": round(peak_memory_mb(client.worker_pid) or 0)})
    print(json.dumps(rows[-1]), flush=True)


def bench_inline(case_path, folder, side, rows):
    """One worker in this process (no Ray): per-slice time and CPU time at `side`, and the store size."""
    from MVAComputeLib.embed_cases import cases_from_path
    from MVAComputeLib.embed_job import EmbedSettings, run_embed
    store = os.path.join(folder, f"store_{side}_1.zarr")
    summary = run_embed(cases_from_path(case_path), store, EmbedSettings(
        model="vit_b-random", input_size=None if side == 1024 else side, workers=0, threads_per_worker=2))
    if not summary.slices_computed:  # --work-dir with this store done already
        return
    stats = next(iter(summary.workers.values()))
    rows.append({"what": "mva embed --workers 0 (this process, 2 threads)", "side": side,
                 "slices": summary.slices_computed, "seconds": round(summary.seconds, 2),
                 "busy_s_per_slice": round(stats["seconds"] / stats["slices"], 2),
                 "cpu_s_per_slice": round(stats["cpu_seconds"] / stats["slices"], 2),
                 "store_mb_per_100_slices": round(folder_mb(store) / summary.slices_computed * 100, 1)})
    print(json.dumps(rows[-1]), flush=True)


def open_case(case_path, store, engine):
    """Case open as a front end does it: the volume into a scene, the shared controller's logic with the store, and
    the first slice shown (its key registered: volume digest, store lookup, axes and decoder warmed).

    Returns (logic, headless scene, array, ijk_to_ras, seconds)."""
    from MVABridgeLib.editor_session import SegmentEditorSession
    from MVABridgeLib.headless_scene import create_headless_scene
    from MVABridgeLib.slice_geometry import SlicePlane
    from MVABridgeLib.volume_io import read_volume
    from MVABridgeLib.volumes import add_volume_node
    from MVAControllersLib.segment_anything_controller import EngineSource, SegmentAnythingController

    class StoreSource(EngineSource):
        def embedding_store(self, bridge):
            return store

    headless = create_headless_scene()
    tic = time.perf_counter()
    array, ijk_to_ras = read_volume(case_path)
    volume = add_volume_node(headless.scene, array, ijk_to_ras)
    segmentation = headless.scene.AddNewNodeByClass("vtkMRMLSegmentationNode")
    segmentation.CreateDefaultDisplayNodes()
    segmentation.SetReferenceImageGeometryParameterFromVolumeNode(volume)
    segment_id = segmentation.GetSegmentation().AddEmptySegment("brain")
    session = SegmentEditorSession(volume, segmentation, segment_id, headless.scene)
    logic = SegmentAnythingController(session.bridge, StoreSource()).ensure_logic(engine)
    logic.slice_key(SlicePlane.for_anatomical_axis("axial", 0, ijk_to_ras, array.shape))  # the view shows slice 0
    return logic, headless, array, ijk_to_ras, time.perf_counter() - tic


@contextlib.contextmanager
def encoder_busy(engine, image):
    """A thread of this process embedding `image` again and again (as a prefetcher) while the block runs; it is
    stopped and joined at the end (after its current embedding)."""
    stop = threading.Event()

    def embed_again():
        while not stop.is_set():
            engine.compute_embedding(image)

    thread = threading.Thread(target=embed_again, name="bench-encoder")
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def timed_clicks(logic, engine, array, ijk_to_ras, clicks, thread_counts):
    """{decoder threads: seconds of `clicks` first clicks on stored slices} (cache emptied before each: a record
    read, prepared and decoded every time). The thread counts take turns, click after click, so that a change in
    the machine's load falls on all of them alike."""
    from MVABridgeLib.slice_geometry import SlicePlane
    times = {int(threads): [] for threads in thread_counts}
    for click in range(clicks):
        plane = SlicePlane.for_anatomical_axis("axial", click % array.shape[0], ijk_to_ras, array.shape)
        for threads in times:
            engine.decoder_threads = threads
            engine.cache.clear()
            logic.reset()
            tic = time.perf_counter()
            logic.add_point(plane, (plane.shape[0] // 2, plane.shape[1] // 2))
            times[threads].append(time.perf_counter() - tic)
    return times


def bench_clicks(case_path, store, side, rows, clicks=3, thread_counts=(2,), busy_encoder=False):
    """First clicks on stored slices (the engine's cache emptied before each, so every click reads the store and
    prepares the slice afresh), with each decoder thread count in turn (alone, then beside a busy encoder thread
    when `busy_encoder`), then one click without the store."""
    import numpy as np
    import torch

    from MVABridgeLib.slice_geometry import SlicePlane
    from MVAComputeLib.operations import engine_for_spec
    tic = time.perf_counter()
    engine = engine_for_spec({"name": "vit_b-random", "input_size": None if side == 1024 else side})
    model_seconds = time.perf_counter() - tic
    # The first case of a session also fingerprints the model's encoder weights (once per model): the next one not.
    _, first_scene, _, _, first_open_seconds = open_case(case_path, store, engine)
    first_scene.clear()
    logic, headless, array, ijk_to_ras, open_seconds = open_case(case_path, store, engine)
    timed_clicks(logic, engine, array, ijk_to_ras, 1, thread_counts)  # the first click of all also sets up kernels
    by_threads = timed_clicks(logic, engine, array, ijk_to_ras, clicks, thread_counts)
    beside_encoder = {}
    if busy_encoder:
        image = np.random.default_rng(0).integers(0, 255, (*array.shape[1:], 3)).astype(np.uint8)
        with encoder_busy(engine, image):
            time.sleep(0.5)  # the encoder is running when the clicks start
            beside_encoder = timed_clicks(logic, engine, array, ijk_to_ras, clicks, thread_counts)
    stored_hits = logic.stored.hits
    engine.cache.clear()
    logic.stored = None  # the same click without the store: a window the store was not made with, so it encodes
    window, level = logic.current_window_level()
    logic.window_level = (window + 1.0, level)
    plane = SlicePlane.for_anatomical_axis("axial", 0, ijk_to_ras, array.shape)
    logic.reset()
    tic = time.perf_counter()
    logic.add_point(plane, (plane.shape[0] // 2, plane.shape[1] // 2))
    fresh = time.perf_counter() - tic
    row = {"what": "first click on a stored slice -> mask in the segment (shared controller path)", "side": side,
           "model_load_s": round(model_seconds, 2), "first_case_open_s": round(first_open_seconds, 3),
           "case_open_s": round(open_seconds, 3),
           "stored_hits": stored_hits, "encoded_without_store": engine.last_embedding is not None,
           "click_without_store_s": round(fresh, 2), "process_torch_threads": torch.get_num_threads()}
    for threads, times in by_threads.items():
        row[f"stored_click_s_{threads}_decoder_threads"] = [round(t, 3) for t in times]
        row[f"stored_click_p50_s_{threads}_decoder_threads"] = round(statistics.median(times), 3)
    for threads, times in beside_encoder.items():
        row[f"stored_click_beside_encoder_s_{threads}_decoder_threads"] = [round(t, 3) for t in times]
        row[f"stored_click_beside_encoder_p50_s_{threads}_decoder_threads"] = round(statistics.median(times), 3)
    rows.append(row)
    print(json.dumps(row), flush=True)
    headless.clear()


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m MVAComputeLib.embed_bench")
    parser.add_argument("--output", default=None)
    parser.add_argument("--slices", type=int, default=4)
    parser.add_argument("--sides", type=int, nargs="*", default=[512, 1024], help="Ray runs (1 and 2 workers)")
    parser.add_argument("--inline-sides", type=int, nargs="*", default=[], help="runs in this process only")
    parser.add_argument("--throughput-only", action="store_true", help="no click or compute-worker figures")
    parser.add_argument("--clicks", type=int, default=3, help="first clicks on stored slices per thread count")
    parser.add_argument("--click-threads", type=int, nargs="+", default=[1, 2],
                        help="decoder thread counts of the click runs (same run, one after the other)")
    parser.add_argument("--busy-encoder", action="store_true",
                        help="also click while a thread of this process embeds slices (as a prefetcher)")
    parser.add_argument("--store", default=None,
                        help="click runs only, on this store's case (--case) instead of embedding one first")
    parser.add_argument("--case", default=None, help="with --store: the volume file the store was made from")
    parser.add_argument("--store-side", type=int, default=512, help="with --store: its encoder input side")
    parser.add_argument("--work-dir", default=None,
                        help="keep the cropped case and the stores here, and reuse them in a later run (default: a "
                             "temporary folder)")
    args = parser.parse_args(argv)
    rows = [{"what": "machine", "cpus": os.cpu_count(), "load_average": os.getloadavg()}]
    if args.store:
        if not args.case:
            parser.error("--store needs --case (the volume file the store was made from)")
        bench_clicks(args.case, args.store, args.store_side, rows, args.clicks, args.click_threads,
                     args.busy_encoder)
        return _finish(rows, args.output)
    if args.work_dir:
        os.makedirs(args.work_dir, exist_ok=True)
    with contextlib.nullcontext(args.work_dir) if args.work_dir else tempfile.TemporaryDirectory() as folder:
        case_path = os.path.join(folder, "mni_crop.nrrd")
        if not os.path.exists(case_path):
            write_cropped_mni(folder, args.slices)
        if args.sides:
            bench_throughput(case_path, folder, args.sides, rows)
        for side in args.inline_sides:
            bench_inline(case_path, folder, side, rows)
        if not args.throughput_only:
            for side in args.sides + args.inline_sides:
                bench_clicks(case_path, os.path.join(folder, f"store_{side}_1.zarr"), side, rows, args.clicks,
                             args.click_threads, args.busy_encoder)
            bench_compute_worker(rows)
    return _finish(rows, args.output)


def _finish(rows, output):
    rows.append({"what": "machine after", "load_average": os.getloadavg()})
    if output:
        with open(output, "w") as stream:
            json.dump(rows, stream, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

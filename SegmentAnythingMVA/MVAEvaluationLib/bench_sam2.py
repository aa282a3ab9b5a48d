"""`mva bench --only sam2-propagation`: SAM 2 video propagation per slice, time and memory, random weights.

Each model and precision runs in a fresh process on the MNI T1 (axial slices from 97 on), so that its peak
memory is its own: the seed slice is a conditioning frame, then every next slice is embedded (1024 px; MedSAM2,
SAM 2.1 Hiera-tiny built from the sam2 package's config at its 512 px; the tiny test model at its own size) and
tracked with the memory bank on the CPU. bf16 autocast is compared with fp32 on
the same slices (agreement of the tracked masks; random weights, so a measure of numerical drift only).
"""
import json
import os
import subprocess
import sys

_SCRIPT = r"""
import json, sys, time
import numpy as np, torch
from MVAEvaluationLib.datasets import load_mni
from MVABridgeLib.windowing import auto_window_level
from SegmentAnythingLib.sam2_engine_factory import create_sam2_engine
from SegmentAnythingLib.sam2_propagation import sam2_tracker_factory

def peak_mb():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM")) / 1024

name, count, bf16 = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "bf16"
data = load_mni("wm")
image = data.image[97:97 + count + 1].astype(np.float32)
engine = create_sam2_engine(name, device="cpu", random_weights=True, bf16=bf16)
before = peak_mb()
tracker = sam2_tracker_factory(engine, auto_window_level(data.image))(image, (1.0, 1.0, 1.0))
tic = time.perf_counter()
tracker.condition(0, data.truth[97].astype(bool))
condition_s = time.perf_counter() - tic
tracker.begin_pass(1)
per_slice, cpu, masks = [], [], []
for k in range(1, count + 1):
    tic, cpu_tic = time.perf_counter(), time.process_time()
    masks.append(tracker.track(k, 1).mask)
    per_slice.append(time.perf_counter() - tic)
    cpu.append(time.process_time() - cpu_tic)
encode_s = engine.last_embedding[0]
np.save(sys.argv[4], np.stack(masks))
print(json.dumps({"per_slice_s": per_slice, "cpu_s": cpu, "threads": torch.get_num_threads(), "condition_s": condition_s, "encode_s": encode_s,
                  "added_mb": peak_mb() - before, "peak_mb": peak_mb(), "bank_mb": tracker.memory_bytes() / 1e6,
                  "cache_mb": engine.cache.memory_bytes / 1e6, "side": engine.native_size}))
"""


def _run(name, count, precision, masks_path):
    library = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([library, os.environ.get("PYTHONPATH", "")]),
               CUDA_VISIBLE_DEVICES="")
    run = subprocess.run([sys.executable, "-c", _SCRIPT, name, str(count), precision, masks_path], env=env,
                         capture_output=True, text=True, check=True)
    return json.loads(run.stdout.strip().splitlines()[-1])


def bench_sam2_propagation(data, quick, models=None, fp32_only=("sam2_tiny",)):
    """Rows per model (tiny random test model; SAM 2.1 tiny and small at 1024 px; MedSAM2 at 512 px) and precision.

    fp32 and bf16 autocast run in the same bench for SAM 2.1 tiny, small and MedSAM2 (bf16 helps only where the CPU
    runs it natively; elsewhere the row shows what it costs); the tiny test model runs fp32 only.
    """
    import tempfile

    import numpy as np

    from MVAEvaluationLib.bench import row
    from SegmentAnythingLib.algorithms.sam_models import cpu_supports_bf16
    if not os.path.exists("/proc/self/status"):
        return []
    if models is None:
        models = ("sam2_tiny",) if quick else ("sam2_tiny", "sam2.1_tiny", "sam2.1_small", "medsam2")
    count = 3
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for name in models:
            masks = {}
            precisions = ("fp32",) if name in fp32_only else ("fp32", "bf16")
            for precision in precisions:
                path = os.path.join(folder, f"{name}-{precision}.npy")
                result = _run(name, count, precision, path)
                masks[precision] = np.load(path)
                extra = {"cpu_ms_p50": round(float(np.median(result["cpu_s"])) * 1000, 1),
                         "threads": result["threads"], "encode_ms": round(result["encode_s"] * 1000, 1),
                         "condition_ms": round(result["condition_s"] * 1000, 1),
                         "memory_added_mb": round(result["added_mb"]), "process_peak_mb": round(result["peak_mb"]),
                         "native_bf16": cpu_supports_bf16(), "memory_bank_mb": round(result["bank_mb"], 1),
                         "feature_cache_mb": round(result["cache_mb"], 1)}
                if precision == "bf16":
                    extra["mask_agreement_with_fp32"] = round(float((masks["bf16"] == masks["fp32"]).mean()), 4)
                rows.append(row(f"SAM 2 propagation per slice (embed + track), {name} random weights, "
                                f"{result['side']} px, {precision}", result["per_slice_s"], **extra))
    return rows


def bench_medsam2_propagation(data, quick):
    """`mva bench --only medsam2-propagation`: the MedSAM2 rows of sam2-propagation (fp32 and bf16, 512 px) with
    SAM 2.1 Hiera-tiny at 1024 px in fp32 as the same-run baseline."""
    return bench_sam2_propagation(data, quick, ("sam2.1_tiny", "medsam2"), fp32_only=("sam2_tiny", "sam2.1_tiny"))


def bench_sam2_request(data, quick):
    """`mva bench --only sam2-request`: the bytes a sam2 preview sends the compute worker, and its plan's GUI time.

    A CT-sized volume (300 x 512 x 512 int16; 60 x 256 x 256 with --quick) with the seed slice drawn in the
    middle and one more slice drawn far from it; 50 slices each way. The request holds the slices tracking can
    reach and the conditioning slices, windowed to uint8; before, it held the whole stack in the volume's dtype
    (`whole_stack_mb`: that and the same masks). Timed: the plan, the request and its encoding into the frame the
    compute client queues (all on the GUI thread), against the same for the whole stack.
    """
    import time

    import numpy as np

    from MVABridgeLib.edit_backend import EditMode
    from MVABridgeLib.windowing import sampled_auto_window_level
    from MVAComputeLib.propagation_operation import propagation_request
    from MVAComputeLib.wire_format import encode_message
    from MVAEvaluationLib.bench import row
    from MVAEvaluationLib.evaluation import Case
    from SmartPropagationLib.propagation_options import PropagationOptions
    from SmartPropagationLib.smart_propagation_logic import SmartPropagationLogic
    shape = (60, 256, 256) if quick else (300, 512, 512)
    rng = np.random.default_rng(0)
    k, j, i = np.ogrid[:shape[0], :shape[1], :shape[2]]
    organ = ((k - shape[0] / 2) / (shape[0] / 3)) ** 2 + ((j - shape[1] / 2) ** 2 + (i - shape[2] / 2) ** 2) / (
        shape[1] / 5) ** 2 <= 1
    image = (rng.normal(0.0, 20.0, shape) + np.where(organ, 60.0, -800.0)).astype(np.int16)
    case = Case("ct", image, organ, np.diag([0.8, 0.8, 1.5, 1.0]))
    try:
        seed, far = shape[0] // 2, shape[0] // 4  # both inside the organ
        for index in (seed, far):
            plane = case.plane("axial", index)
            case.bridge.apply_slice_mask(plane, plane.sample(organ, case.ijk_to_ras, order=0) > 0, EditMode.REPLACE)
        seed_plane = case.plane("axial", seed)
        logic = SmartPropagationLogic(case.bridge, PropagationOptions(strategy="sam2", max_slices=50))
        # What the plan cost before: the same reads and a copy of the whole stack (a registration plan that
        # reaches every slice), the request only referencing it.
        whole_logic = SmartPropagationLogic(case.bridge, PropagationOptions(strategy="registration",
                                                                            max_slices=shape[0]))
        seconds, before = [], []
        for _ in range(1 if quick else 3):
            tic = time.perf_counter()
            run = logic.plan_preview(seed_plane, remote_strategies=("sam2",))
            op, params, arrays = propagation_request(run, {"name": "sam2.1_tiny"})
            encode_message({"kind": "request", "id": "bench", "op": op, "params": params}, arrays)
            seconds.append(time.perf_counter() - tic)
            tic = time.perf_counter()
            op, params, whole_arrays = propagation_request(whole_logic.plan_preview(seed_plane))
            encode_message({"kind": "request", "id": "bench", "op": op, "params": params}, whole_arrays)
            before.append(time.perf_counter() - tic)
        sent = sum(a.nbytes for a in arrays.values())
        whole = image.nbytes + arrays["masks"].nbytes
        tic = time.perf_counter()
        window = sampled_auto_window_level(image)
        window_ms = (time.perf_counter() - tic) * 1000
        return [row(f"sam2 preview request, volume {shape} int16, 50 slices each way (plan + encoded request on "
                    f"the GUI thread)", seconds, "the whole stack, as before", before,
                    request_mb=round(sent / 1e6, 1), whole_stack_mb=round(whole / 1e6, 1),
                    slices_sent=len(run.frames), slices_in_volume=int(run.frame_count),
                    sampled_window_ms=round(window_ms, 1), window=[round(v, 1) for v in window])]
    finally:
        case.close()

"""`mva bench`: speed of every tool next to its baseline, measured in the same run (p50 / p95, peak memory)."""
import json
import time
import tracemalloc

import numpy as np

from MVAEvaluationLib.bench_sam2 import bench_medsam2_propagation, bench_sam2_propagation, bench_sam2_request
from MVAEvaluationLib.bench_worker import bench_worker
from MVAEvaluationLib.evaluation import peak_rss_mb


def timed(function, repeat):
    """(result of the last call, list of seconds per call)."""
    seconds, result = [], None
    for _ in range(repeat):
        tic = time.perf_counter()
        result = function()
        seconds.append(time.perf_counter() - tic)
    return result, seconds


def row(name, seconds, baseline=None, baseline_seconds=None, **extra):
    ms = np.asarray(seconds) * 1000
    entry = {"name": name, "p50_ms": round(float(np.percentile(ms, 50)), 1),
             "p95_ms": round(float(np.percentile(ms, 95)), 1), "runs": len(ms)}
    if baseline is not None:
        base = np.asarray(baseline_seconds) * 1000
        entry.update(baseline=baseline, baseline_p50_ms=round(float(np.percentile(base, 50)), 1),
                     baseline_p95_ms=round(float(np.percentile(base, 95)), 1))
    entry.update(extra)
    entry["peak_rss_mb"] = round(peak_rss_mb(), 1)
    return entry


# --- entries ----------------------------------------------------------------------------------------------
def bench_bridge_write(data, quick):
    """A one-slice edit through the bridge (local extent) vs the same edit as a full-volume modifier."""
    from MVABridgeLib.edit_backend import EditMode
    from MVABridgeLib.slice_geometry import VoxelPatch
    from MVAEvaluationLib.evaluation import Case
    case = Case("mni", data.image, data.truth, data.ijk_to_ras)
    plane = case.plane("axial", 97)
    mask = plane.sample(data.truth, data.ijk_to_ras, order=0) > 0
    case.bridge.apply_slice_mask(plane, mask, EditMode.REPLACE)
    _, ours = timed(lambda: case.bridge.apply_slice_mask(plane, mask, EditMode.REPLACE), 10)
    full = np.zeros(data.image.shape, bool)
    full[97] = data.truth[97]
    _, base = timed(lambda: case.bridge.apply(VoxelPatch((0, 0, 0), full), EditMode.REPLACE), 3 if quick else 5)
    contract, plain = _contract_write_times(case, plane, mask)
    case.close()
    return [row("segment write through the bridge (one slice, local extent)", ours,
                "same edit as a full-volume modifier", base),
            row("tool write under the edit contract (one slice, alternating masks)", contract,
                "plain replace of the same masks", plain)]


def _contract_write_times(case, plane, mask):
    """Tool writes that each change voxels (two masks in turn), under the contract and as plain replaces."""
    from scipy import ndimage
    from MVABridgeLib.edit_backend import EditMode
    from MVABridgeLib.tool_edits import ToolEdits
    masks = [mask, ndimage.binary_dilation(mask, iterations=2)]
    edits, turn = ToolEdits("bench"), iter(range(10 ** 6))
    _, contract = timed(lambda: case.bridge.write_plane_decision(edits, plane, add_2d=masks[next(turn) % 2]), 10)
    _, plain = timed(lambda: case.bridge.apply_slice_mask(plane, masks[next(turn) % 2], EditMode.REPLACE), 10)
    return contract, plain


def bench_propagation(data, quick):
    from MVAEvaluationLib.baselines import demons_propagation
    from SmartPropagationLib.algorithms import StopRule, propagate
    image = data.image.astype(np.float32)
    seed = data.truth[97].astype(bool)
    stamps = [time.perf_counter()]
    count = 5 if quick else 20
    propagate(image, seed, 97, +1, count, (1.0, 1.0, 1.0), "registration",
              StopRule(min_area_mm2=None, area_ratio_band=None, min_quality=None, box_margin_mm=None),
              progress=lambda done, total: stamps.append(time.perf_counter()))
    ours = np.diff(stamps)
    tic = time.perf_counter()
    demons_propagation(image, seed, 97, max_distance=count)
    demons_per_slice = (time.perf_counter() - tic) / (2 * count)
    return [row("propagation per slice (registration + refinement)", ours,
                "SimpleITK demons per slice (mean)", [demons_per_slice])]


def bench_supervoxels(data, quick):
    import SimpleITK as sitk
    from scipy import ndimage
    from SmartRegionsLib.algorithms.supervoxels import compute_supervoxels
    side = 128 if quick else 256
    volume = ndimage.zoom(data.image.astype(np.float32), [side / s for s in data.image.shape], order=1)
    tracemalloc.start()
    labels, ours = timed(lambda: compute_supervoxels(volume, (1.0, 1.0, 1.0)), 1 if quick else 3)
    peak = tracemalloc.get_traced_memory()[1] / 1e6
    tracemalloc.stop()
    image = sitk.GetImageFromArray(volume)
    slic = sitk.SLICImageFilter()
    slic.SetSuperGridSize([10, 10, 10])
    _, base = timed(lambda: slic.Execute(image), 1)
    return [row(f"supervoxels {side}^3 (banded grid regions)", ours, "SimpleITK SLIC", base,
                regions=int(labels.max()), numpy_peak_mb=round(peak, 1))]


def bench_sam(data, quick):
    """Prompt decoding with a random ViT-B (embedding values do not change its speed)."""
    import torch
    from segment_anything import SamPredictor
    from MVABridgeLib.windowing import window_to_rgb
    from SegmentAnythingLib.algorithms.sam_engine import SamEngine
    from SegmentAnythingLib.algorithms.sam_models import build_random_sam, build_tiny_sam, cpu_supports_bf16
    rows = []
    image = window_to_rgb(data.image[97], 255.0, 127.5)
    tiny = SamEngine(build_tiny_sam())
    _, tiny_encode = timed(lambda: tiny.compute_embedding(image), 10)
    rows.append(row("SAM encode, tiny random model (256 px)", tiny_encode))
    vit_b = build_random_sam("vit_b")
    engine = SamEngine(vit_b)
    predictor = SamPredictor(vit_b)
    embedding = torch.randn(1, 256, 64, 64)
    engine.cache.put("slice", embedding, image.shape[:2], (1024, int(round(1024 * image.shape[1] / image.shape[0]))))
    predictor.set_torch_image(torch.zeros(1, 3, 1024, 1024), image.shape[:2])
    predictor.features = embedding
    points = np.array([[90.0, 120.0]])
    labels = np.array([1])
    engine.predict("slice", points, labels).mask(0)
    _, ours = timed(lambda: engine.predict("slice", points, labels).mask(0), 20)

    def stock():
        masks, scores, _ = predictor.predict(points, labels, multimask_output=True)
        return masks[int(np.argmax(scores))]
    _, base = timed(stock, 20)
    rows.append(row("SAM prompt -> chosen mask at slice size, ViT-B decoder, cached embedding", ours,
                    "segment_anything SamPredictor.predict", base, threads=torch.get_num_threads()))
    rows.append(bench_sam_click_written(data, engine, "fp32 decoder"))
    bf16 = cpu_supports_bf16()
    if bf16:
        rows.append(bench_sam_click_written(data, SamEngine(vit_b, bf16_decoder=True), "bf16 decoder (default here)"))
    rows.append(bench_sam_click_written(data, SamEngine(vit_b, bf16_decoder=bf16, input_size=512),
                                        "512 px input" + (", bf16 decoder" if bf16 else "")))
    return rows


def bench_sam_encoder(data, quick):
    """ViT-B image encoder on an MNI slice: stock module vs our runner, 1024/768/512 px, on the default device
    (a GPU when present, timed with synchronisation)."""
    import torch
    from MVABridgeLib.windowing import window_to_rgb
    from SegmentAnythingLib.algorithms.sam_engine import SamEngine
    from SegmentAnythingLib.algorithms.sam_image import preprocess_image
    from SegmentAnythingLib.algorithms.sam_models import bf16_is_fast, build_random_sam, choose_device
    if quick:
        return []
    image = window_to_rgb(data.image[97], 255.0, 127.5)
    device = choose_device("auto")
    vit_b = build_random_sam("vit_b", device=device)
    bf16 = bf16_is_fast(device)
    precision = "bf16 autocast" if bf16 else "fp32"
    where = "" if device.type == "cpu" else f" on {_device_name(device)}"
    pixels, _ = preprocess_image(image, 1024, vit_b.pixel_mean, vit_b.pixel_std, vit_b.device)

    def synchronised(function):
        def run():
            result = function()
            if device.type == "cuda":
                torch.cuda.synchronize()
            return result
        return run

    def stock(autocast):
        with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            return vit_b.image_encoder(pixels).float()

    def error(value, exact):
        return round(float((value - exact).norm() / exact.norm()), 4)

    rows = []
    runs = 2 if device.type == "cpu" else 20
    warm_up = device.type != "cpu"  # CUDA kernels and allocator; on the CPU the extra runs would cost ~20 s
    if warm_up:
        stock(False)
    exact, stock_fp32 = timed(synchronised(lambda: stock(False)), 1)
    for size in (1024, 768, 512):
        exact_engine = SamEngine(vit_b, input_size=size)
        engine = SamEngine(vit_b, input_size=size, bf16_encoder=bf16)
        if warm_up:
            engine.compute_embedding(image)
        reference, fp32 = timed(synchronised(lambda: exact_engine.compute_embedding(image)[0]), 1)
        embedding, seconds = timed(synchronised(lambda: engine.compute_embedding(image)[0]),
                                   runs if size == 1024 else runs + 1)
        extra = {"error_vs_fp32_same_size": error(embedding, reference), "fp32_s": round(fp32[0], 3),
                 "threads": torch.get_num_threads(), "device": str(device)}
        if size == 1024:
            if warm_up:
                stock(bf16)
            _, base = timed(synchronised(lambda: stock(bf16)), runs)
            extra.update(stock_fp32_s=round(stock_fp32[0], 3), error_vs_stock_fp32=error(embedding, exact),
                         fast_fp32_equals_stock=error(reference, exact))
            rows.append(row(f"SAM encode, random ViT-B 1024 px, {precision}{where}", seconds,
                            f"segment_anything ImageEncoderViT, {precision}", base, **extra))
        else:
            rows.append(row(f"SAM encode, random ViT-B {size} px input, {precision}{where}", seconds, **extra))
    return rows


_ENCODE_MEMORY_SCRIPT = """
import sys, torch
from SegmentAnythingLib.algorithms.sam_encoder import FastImageEncoder
from SegmentAnythingLib.algorithms.sam_models import build_random_sam, cpu_supports_bf16

def peak_mb():  # this process's own peak (ru_maxrss would also count the parent's memory at fork)
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM")) / 1024

model, pixels = build_random_sam("vit_b"), torch.randn(1, 3, 1024, 1024)
bf16 = cpu_supports_bf16()
before = peak_mb()
with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
    (model.image_encoder if sys.argv[1] == "stock" else FastImageEncoder(model.image_encoder, bf16=bf16))(pixels)
print(peak_mb() - before)
"""


def bench_sam_encoder_memory(data, quick):
    """Peak memory the ViT-B 1024 px encoding adds to a fresh process (CPU, Linux): stock module vs our runner."""
    import os
    import subprocess
    import sys
    if quick or not os.path.exists("/proc/self/status"):
        return []
    library = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([library, os.environ.get("PYTHONPATH", "")]),
               CUDA_VISIBLE_DEVICES="")
    added = {}
    for variant in ("stock", "ours"):
        run = subprocess.run([sys.executable, "-c", _ENCODE_MEMORY_SCRIPT, variant], env=env, capture_output=True,
                             text=True, check=True)
        added[variant] = float(run.stdout.strip().splitlines()[-1])
    return [{"name": "SAM encode ViT-B 1024 px: memory added to the process (MB)", "ours_mb": round(added["ours"]),
             "baseline": "segment_anything ImageEncoderViT", "baseline_mb": round(added["stock"])}]


def _device_name(device):
    import torch
    return torch.cuda.get_device_name(device) if device.type == "cuda" else device.type


def bench_sam_click_written(data, engine, label):
    """Click -> mask written into the segment through the bridge (ViT-B decoder, embedding cached)."""
    import torch
    from MVAEvaluationLib.evaluation import Case
    from SegmentAnythingLib.segment_anything_logic import SegmentAnythingLogic
    case = Case("mni", data.image, data.truth, data.ijk_to_ras)
    plane = case.plane("axial", 97)
    logic = SegmentAnythingLogic(case.bridge, engine, "vit_b-random")
    key = logic.slice_key(plane)
    rows, cols = plane.shape
    side = engine.encoder_size_for((rows, cols))
    grid = side // engine.patch_size
    engine.cache.put(key, torch.randn(1, 256, grid, grid), (rows, cols),
                     (side, int(round(side * cols / rows))) if rows >= cols else (int(round(side * rows / cols)), side))
    clicks = [(100 + (n % 7), 90 + (n % 5)) for n in range(20)]
    logic.add_point(plane, clicks[0])
    seconds = []
    for n, click in enumerate(clicks[1:]):
        tic = time.perf_counter()
        logic.add_point(plane, click, positive=n % 3 != 0)
        seconds.append(time.perf_counter() - tic)
    case.close()
    return row(f"SAM click -> mask written into the segment (ViT-B {label}, cached embedding, refinement)", seconds)


def bench_brush(data, quick):
    """Stroke -> prediction of a 256^2 slice (features cached) and the 3D feature stack of a 128^3 box."""
    from scipy import ndimage
    from skimage.feature import multiscale_basic_features
    from SmartBrushLib.algorithms import SliceBrushModel, SmartBrushModel
    from SmartBrushLib.algorithms.evaluation import ForestBaseline
    image = ndimage.zoom(data.image[97].astype(np.float32), (256 / 233, 256 / 197), order=1)
    truth = ndimage.zoom(data.truth[97].astype(np.float32), (256 / 233, 256 / 197), order=0) > 0.5
    strokes = [(truth & (np.random.default_rng(n).random(truth.shape) < 0.002), 1) if n % 2 == 0 else
               (~truth & (np.random.default_rng(n).random(truth.shape) < 0.002), 0) for n in range(12)]
    rows = []
    for factory, label in ((lambda: SliceBrushModel(image), "ours"), (lambda: ForestBaseline(image), "forest")):
        model = factory()
        model.add_stroke(*strokes[0])
        model.predict()
        seconds = []
        for mask, value in strokes[1:]:
            tic = time.perf_counter()
            model.add_stroke(mask, value)
            model.predict()
            seconds.append(time.perf_counter() - tic)
        rows.append(seconds)
    entries = [row("Smart Brush update (stroke -> 256^2 prediction)", rows[0],
                   "scikit-image features + random forest (100 trees)", rows[1])]
    side = 64 if quick else 128
    box = data.image[30:30 + side, 50:50 + side, 30:30 + side].astype(np.float32)
    model = SmartBrushModel(box)
    _, ours = timed(lambda: model.box_features(((0, side),) * 3), 1)
    _, base = timed(lambda: multiscale_basic_features(box), 1)
    entries.append(row(f"Smart Brush 3D feature stack {side}^3", ours, "skimage multiscale_basic_features", base))
    return entries


def bench_brush3d(data, quick):
    """3D Smart Brush update (dab -> prediction of a 128^3 ROI, features cached): feature cells (ours) next to the
    previous per-voxel coarse-to-fine evaluation on the same strokes, and a random forest on scikit-image 3D
    features of the same box (fit + predict per update, features computed once for both)."""
    from skimage.feature import multiscale_basic_features
    from sklearn.ensemble import RandomForestClassifier
    from MVAEvaluationLib.metrics import dice
    from MVAEvaluationLib.simulated_user import SimulatedUser, dab_mask
    from SmartBrushLib.algorithms.volume_brush import VolumeBrushModel
    side = 64 if quick else 128
    box = (slice(30, 30 + side), slice(50, 50 + side), slice(30, 30 + side))
    image, truth = data.image[box].astype(np.float32), data.truth[box].astype(bool)
    middle = side // 2
    user = SimulatedUser(truth[middle])
    # the ROI is the whole box from the start, so every update predicts side^3 voxels
    models = {mode: VolumeBrushModel(image, (1.0, 1.0, 1.0), margin_mm=float(side), prediction=mode)
              for mode in ("cells", "coarse_to_fine")}
    # a background dab first, so that every timed update runs the classifier (not the one-label band)
    outside = SimulatedUser(~truth[middle]).first_click()
    for model in models.values():
        model.add_stroke((middle, 0, 0), dab_mask(truth.shape[1:], outside.index)[None], 0)
    prediction = np.zeros(truth.shape[1:], bool)
    clicks, seconds, dices = [], {mode: [] for mode in models}, {mode: [] for mode in models}
    for _ in range(5 if quick else 11):
        click = user.next_click(prediction)
        clicks.append(click)
        for mode, model in models.items():
            model.add_stroke((middle, 0, 0), dab_mask(truth.shape[1:], click.index)[None], int(click.positive))
            tic = time.perf_counter()
            roi, mask = model.predict(1)
            seconds[mode].append(time.perf_counter() - tic)
            full = np.zeros(truth.shape, bool)
            full[tuple(slice(a, b) for a, b in roi)] = mask
            dices[mode].append(round(float(dice(full, truth)), 4))
            if mode == "cells":
                prediction = full[middle]
    features = multiscale_basic_features(image)
    strokes = np.full(truth.shape, -1)
    strokes[middle][dab_mask(truth.shape[1:], outside.index)] = 0
    base = []
    for click in clicks[:3]:
        strokes[middle][dab_mask(truth.shape[1:], click.index)] = int(click.positive)
        tic = time.perf_counter()
        forest = RandomForestClassifier(n_estimators=100, max_depth=10, n_jobs=-1, random_state=0)
        forest.fit(features[strokes >= 0], strokes[strokes >= 0])
        forest.predict(features.reshape(-1, features.shape[-1]))
        base.append(time.perf_counter() - tic)
    name = f"Smart Brush 3D update (dab -> {side}^3 ROI prediction, features cached, first excluded)"
    ours = seconds["cells"][1:]
    logic_seconds, logic_dices = _brush3d_logic_updates(image, truth, len(clicks))
    return [row(name, ours, f"previous per-voxel coarse-to-fine evaluation, same strokes, {side}^3",
                seconds["coarse_to_fine"][1:], first_update_ms=round(1000 * seconds["cells"][0], 1),
                dice_3d=dices["cells"], dice_3d_baseline=dices["coarse_to_fine"]),
            row(name, ours, f"random forest (100 trees) on skimage 3D features, fit + predict {side}^3", base),
            row(f"Smart Brush 3D update as the effect runs it (VolumeBrushLogic.add_stroke: prediction and "
                f"corrections of the preview, {side}^3 ROI, first excluded)", logic_seconds[1:],
                first_update_ms=round(1000 * logic_seconds[0], 1), dice_3d=logic_dices)]


def _brush3d_logic_updates(image, truth, count):
    """Seconds and 3D Dice of `count` VolumeBrushLogic.add_stroke updates (simulated dabs on the middle axial
    slice after one background dab; the ROI is the whole box from the start), on a headless scene."""
    from MVAEvaluationLib.evaluation import Case
    from MVAEvaluationLib.metrics import dice
    from MVAEvaluationLib.simulated_user import SimulatedUser, dab_mask
    from SmartBrushLib.volume_brush_logic import VolumeBrushLogic
    case = Case("brush3d", image, truth, np.eye(4))
    try:
        plane = case.plane("axial", image.shape[0] // 2)
        logic = VolumeBrushLogic(case.bridge, margin_mm=float(max(image.shape)))
        truth_2d = plane.sample(truth, case.ijk_to_ras, order=0) > 0
        logic.add_stroke(plane, dab_mask(plane.shape, SimulatedUser(~truth_2d).first_click().index), erase=True)
        user, shown, seconds, dices = SimulatedUser(truth_2d), np.zeros(plane.shape, bool), [], []
        for _ in range(count):
            click = user.next_click(shown)
            tic = time.perf_counter()
            preview = logic.add_stroke(plane, dab_mask(plane.shape, click.index), erase=not click.positive)
            seconds.append(time.perf_counter() - tic)
            dices.append(round(float(dice(preview.mask_kji, truth)), 4))
            shown = plane.sample(preview.mask_kji, case.ijk_to_ras, order=0) > 0
        return seconds, dices
    finally:
        case.close()


def bench_supervoxel_quality(data, quick):
    """Edges followed and grid over homogeneous tissue: ours vs SimpleITK SLIC in the same run (CT phantom, MNI
    white/grey matter, a uniform noisy phantom)."""
    from MVAEvaluationLib.datasets import load_mni
    from MVAEvaluationLib.phantom import make_ct_phantom
    from MVAEvaluationLib.supervoxel_quality import compare, grid_artefact
    phantom = make_ct_phantom(shape_kji=(32, 80, 80) if quick else (64, 160, 160), seed=0)
    cases = [("CT phantom", phantom.image, phantom.labelmap, phantom.spacing_kji)]
    if not quick:
        grey = load_mni("gm").truth.astype(np.uint8)
        white = data.truth.astype(np.uint8)
        cases.append(("MNI white/grey matter", data.image, white + 2 * grey * (1 - white), (1.0, 1.0, 1.0)))
    rows = []
    for name, image, labels, spacing in cases:
        measures = compare(image, labels, spacing)
        ours, slic = measures["ours"], measures["SimpleITK SLIC"]
        rows.append(row(f"supervoxel quality, {name} (boundary recall / USE / oracle Dice: ours "
                        f"{ours['boundary_recall']} / {ours['undersegmentation_error']} / {ours['oracle_dice']}, "
                        f"SLIC {slic['boundary_recall']} / {slic['undersegmentation_error']} / {slic['oracle_dice']})",
                        [ours["seconds"]], "SimpleITK SLIC", [slic["seconds"]], measures=measures))
    grid = grid_artefact((48, 48, 48) if quick else (96, 96, 96))
    rows.append(row(f"boundary fraction in a uniform noisy phantom: ours {grid['ours']}, SLIC {grid['SimpleITK SLIC']}",
                    [0.0], grid=grid))
    return rows


BENCHES = {"brush": bench_brush, "brush3d": bench_brush3d, "supervoxel-quality": bench_supervoxel_quality, "bridge": bench_bridge_write, "propagation": bench_propagation, "supervoxels": bench_supervoxels,
           "sam": bench_sam, "sam-encoder": bench_sam_encoder, "sam-encoder-memory": bench_sam_encoder_memory}
BENCHES["sam2-propagation"] = bench_sam2_propagation  # SAM 2 video propagation, one fresh process per model
BENCHES["medsam2-propagation"] = bench_medsam2_propagation  # MedSAM2 (512 px, fp32, bf16) vs SAM 2.1 tiny
BENCHES["sam2-request"] = bench_sam2_request  # bytes a sam2 preview sends the compute worker
BENCHES["worker"] = bench_worker  # Predict 3D and a propagation preview in the compute worker process


def run_bench(names=None, quick=False, log=print):
    from MVAEvaluationLib.datasets import load_mni
    data = load_mni("wm")
    rows = []
    for name in names or list(BENCHES):
        for entry in BENCHES[name](data, quick):
            rows.append(entry)
            log(json.dumps(entry))
    return rows


def markdown_table(rows):
    """The bench rows as a Markdown table: ours next to the baseline of the same run."""
    lines = ["| what | ours p50 / p95 | baseline (same run) p50 / p95 |", "|---|---|---|"]
    for entry in rows:
        if "ours_mb" in entry:
            lines.append(f"| {entry['name']} | {entry['ours_mb']} MB | {entry['baseline']}: {entry['baseline_mb']} MB |")
            continue
        baseline = "-"
        if "baseline" in entry:
            baseline = f"{entry['baseline']}: {entry['baseline_p50_ms']} / {entry['baseline_p95_ms']} ms"
        lines.append(f"| {entry['name']} | {entry['p50_ms']} / {entry['p95_ms']} ms | {baseline} |")
    return "\n".join(lines) + "\n"

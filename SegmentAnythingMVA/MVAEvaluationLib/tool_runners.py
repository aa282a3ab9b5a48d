"""The tools `mva eval` knows: each runs through the bridge on a Case and returns (dice, latencies_s, extra)."""
import time

import numpy as np

from MVABridgeLib.edit_backend import EditMode
from MVAEvaluationLib import baselines
from MVAEvaluationLib.evaluation import EvaluationError, run_interactive
from MVAEvaluationLib.metrics import dice, slice_extent_error
from MVAEvaluationLib.simulated_user import dab_mask

PROPAGATION_DISTANCES = (1, 5, 10, 20)


def plane_spacing(plane):
    """(normal, row, col) spacing in mm of a voxel-aligned plane."""
    return tuple(float(np.linalg.norm(plane.pixel_to_ras_matrix[:3, c])) for c in (2, 1, 0))


# --- interactive tools ---------------------------------------------------------------------------------------
class GrowCutTool:
    """Slicer's Grow from seeds on a 3-slice slab, seeds = simulated dabs on the middle slice."""

    def __init__(self, case):
        self.case = case
        self.seeds = {}

    def interact(self, plane, click):
        seeds = self.seeds.setdefault(plane.slice_index, np.zeros(plane.shape, np.uint8))
        seeds[dab_mask(plane.shape, click.index)] = baselines.FOREGROUND_SEED if click.positive \
            else baselines.BACKGROUND_SEED
        volume = self.case.bridge.work_volume()
        slab = np.stack([plane.neighbour(d).sample(volume.array, volume.index_to_ras)
                         if 0 <= plane.slice_index + d < volume.shape[plane.aligned_axis]
                         else plane.sample(volume.array, volume.index_to_ras) for d in (-1, 0, 1)])
        mask = baselines.growcut_slice(slab, 1, seeds, plane_spacing(plane))
        self.case.bridge.apply_slice_mask(plane, mask, EditMode.REPLACE)


def run_growcut(case, options):
    dice_values, latencies = run_interactive(case, GrowCutTool(case), options)
    return dice_values, latencies, {}


class BrushTool:
    """Smart Brush: each simulated click is a dab (radius 3 voxels) labelled like the click, then Apply."""

    def __init__(self, case, options):
        from SmartBrushLib.smart_brush_logic import BrushOptions, SmartBrushLogic
        self.logic = SmartBrushLogic(case.bridge, BrushOptions(seed=options.seed or 0))

    def interact(self, plane, click):
        self.logic.add_stroke(plane, dab_mask(plane.shape, click.index), erase=not click.positive)
        self.logic.apply()


def run_brush(case, options):
    dice_values, latencies = run_interactive(case, BrushTool(case, options), options)
    return dice_values, latencies, {}


class RegionsTool:
    """Smart Regions: a positive click adds the region under it (with smart merge), a negative one removes it."""

    def __init__(self, case, options):
        from SmartRegionsLib.smart_regions_logic import RegionsOptions, SmartRegionsLogic
        self.logic = SmartRegionsLogic(case.bridge, RegionsOptions(mode=options.extra.get("mode", "3d")))
        if self.logic.options.mode == "3d":
            tic = time.perf_counter()
            self.logic.volume_labels()  # one-off cost, reported apart from the click latency
            self.setup_seconds = time.perf_counter() - tic

    def interact(self, plane, click):
        self.logic.click(plane, click.index, add=click.positive)


def run_regions(case, options):
    tool = RegionsTool(case, options)
    dice_values, latencies = run_interactive(case, tool, options)
    return dice_values, latencies, {"supervoxel_seconds": round(getattr(tool, "setup_seconds", 0.0), 2)}


class SegmentAnythingTool:
    """SAM: each simulated click is a positive or negative point prompt on the slice."""

    def __init__(self, case, options):
        from SegmentAnythingLib.engine_factory import create_engine
        from SegmentAnythingLib.segment_anything_logic import SegmentAnythingLogic
        from SegmentAnythingLib.algorithms.sam_errors import CheckpointError, SamInputError
        try:
            engine = create_engine(options.model, options.checkpoint, input_size=options.input_size)
        except (CheckpointError, SamInputError) as error:
            raise EvaluationError(str(error)) from None
        self.logic = SegmentAnythingLogic(case.bridge, engine, options.model)

    def interact(self, plane, click):
        self.logic.add_point(plane, click.index, positive=click.positive)


def run_sam(case, options):
    tool = SegmentAnythingTool(case, options)
    dice_values, latencies = run_interactive(case, tool, options)
    return dice_values, latencies, {"model": options.model, "encoder_input_size": tool.logic.engine.input_size or tool.logic.engine.native_size}


# --- propagation ---------------------------------------------------------------------------------------------
def _propagation_run(case, options, strategy, stop_rule=None):
    from SmartPropagationLib.smart_propagation_logic import PropagationOptions, SmartPropagationLogic
    from SmartPropagationLib.algorithms import StopRule
    axis = case.axis_of(options.axis)
    seed_index = options.slice if options.slice is not None else case.largest_slice(options.axis)
    plane = case.plane(options.axis, seed_index)
    seed = np.zeros(case.truth.shape, bool)
    index = [slice(None)] * 3
    index[axis] = seed_index
    seed[tuple(index)] = case.truth[tuple(index)]
    if not seed.any():
        raise EvaluationError(f"The structure is absent from {options.axis} slice {seed_index}")
    prompt = options.extra.get("prompt", "mask")
    prompts = None if prompt == "mask" else simulated_prompts(case, plane, prompt, options.seed)
    case.set_segment(seed if prompts is None else np.zeros_like(seed))  # prompts: the user drew nothing
    rule = stop_rule if stop_rule is not None else StopRule()
    logic = SmartPropagationLogic(case.bridge, PropagationOptions(strategy=strategy, max_slices=case.truth.shape[axis],
                                                                  stop_rule=rule))
    stamps = [time.perf_counter()]
    preview = logic.compute_preview(plane, progress=lambda fraction: stamps.append(time.perf_counter()),
                                    prompts=prompts)
    logic.apply()
    predicted = np.moveaxis(case.segment(), axis, 0)
    truth = np.moveaxis(case.truth, axis, 0)
    by_distance = {}
    for distance in range(1, max(seed_index, truth.shape[0] - 1 - seed_index) + 1):
        scores = [dice(predicted[seed_index + s * distance], truth[seed_index + s * distance])
                  for s in (1, -1) if 0 <= seed_index + s * distance < truth.shape[0]]
        by_distance[distance] = float(np.mean(scores))
    extent_error = slice_extent_error(predicted.any(axis=(1, 2)), truth.any(axis=(1, 2)))
    extra = {"dice_by_distance": {str(d): round(by_distance[d], 4) for d in PROPAGATION_DISTANCES if d in by_distance},
             "extent_error_slices": extent_error, "seed_slice": seed_index,
             "stops": preview.stop_messages(), "final_dice": round(dice(predicted, truth), 4), "conditioning": prompt,
             "noc85": None, "noc90": None}
    return [by_distance[d] for d in sorted(by_distance)], list(np.diff(stamps)), extra


def simulated_prompts(case, plane, prompt, seed=None):
    """The simulated user's prompts on the start slice, from its truth only (shared EVALUATION.md rules 1 and 4).

    "click": one positive click at the maximum of the truth's distance transform; "box": the truth's bounding box
    (with 10 % noise per side when `seed` is given); "box+click": both.
    """
    from MVAEvaluationLib.simulated_user import SimulatedUser, noisy_box
    from SmartPropagationLib.propagation_prompts import PlanePrompts
    truth = plane.sample(case.truth.astype(np.uint8), case.bridge.work_volume().index_to_ras, order=0) > 0
    points, labels, box = (), (), None
    if "click" in prompt:
        row, col = SimulatedUser(truth).first_click().index
        points, labels = ((float(col), float(row)),), (1,)
    if "box" in prompt:
        r0, c0, r1, c1 = noisy_box(truth, None if seed is None else np.random.default_rng(seed))
        box = (float(c0), float(r0), float(c1), float(r1))
    return PlanePrompts(plane, points, labels, box)


def run_propagate(case, options):
    strategy = options.extra.get("strategy", "registration")
    if strategy == "sam2":
        _register_sam2(options)
    elif options.extra.get("prompt", "mask") != "mask":
        raise EvaluationError("--prompt click/box conditions SAM 2 only: add --strategy sam2")
    return _propagation_run(case, options, strategy)


def _register_sam2(options):
    """Strategy "sam2" with the SAM 2 model of --model ("tiny": the tiny random SAM 2) and --checkpoint."""
    from SegmentAnythingLib.algorithms.sam_errors import CheckpointError, SamInputError
    from SegmentAnythingLib.sam2_engine_factory import SAM2_MODEL_NAMES, SAM2_TINY_NAME, create_sam2_engine
    from SegmentAnythingLib.sam2_propagation import register_sam2_propagation
    name = SAM2_TINY_NAME if options.model == "tiny" else options.model
    if name not in SAM2_MODEL_NAMES:
        raise EvaluationError(
            f"--strategy sam2 needs a SAM 2 model: --model tiny or one of {', '.join(SAM2_MODEL_NAMES)}")
    try:
        register_sam2_propagation(create_sam2_engine(name, options.checkpoint))
    except (CheckpointError, SamInputError) as error:
        raise EvaluationError(str(error)) from None


def run_copy(case, options):
    from SmartPropagationLib.algorithms import StopRule
    no_stop = StopRule(min_area_mm2=None, area_ratio_band=None, min_quality=None, box_margin_mm=None)
    return _propagation_run(case, options, "copy", no_stop)


# --- interpolation ---------------------------------------------------------------------------------------------
def _sparse_truth(case, options):
    axis = case.axis_of(options.axis)
    truth = np.moveaxis(case.truth, axis, 0)
    sparse, kept, scored = baselines.keep_every_gth_slice(truth, options.gap)
    return axis, truth, sparse.astype(bool), list(kept), list(scored)


def _score_interpolation(case, axis, truth, kept, scored, seconds):
    predicted = np.moveaxis(case.segment(), axis, 0)
    value = dice(predicted[scored], truth[scored])
    return [value], [seconds], {"gap": int(kept[1] - kept[0]) if len(kept) > 1 else None,
                                "annotated_slices": len(kept), "scored_slices": len(scored),
                                "noc85": None, "noc90": None}


def run_interpolate(case, options):
    from SmartPropagationLib.smart_propagation_logic import PropagationOptions, SmartPropagationLogic
    axis, truth, sparse, kept, scored = _sparse_truth(case, options)
    case.set_segment(np.moveaxis(sparse, 0, axis))
    logic = SmartPropagationLogic(case.bridge, PropagationOptions(strategy="interpolation"))
    tic = time.perf_counter()
    logic.compute_preview(case.plane(options.axis, kept[-1]))
    logic.apply()
    return _score_interpolation(case, axis, truth, kept, scored, time.perf_counter() - tic)


def run_fillbetween(case, options):
    axis, truth, sparse, kept, scored = _sparse_truth(case, options)
    case.set_segment(np.moveaxis(sparse, 0, axis))
    tic = time.perf_counter()
    filled = baselines.fill_between_slices(sparse.astype(np.uint8)) > 0
    low, high = kept[0], kept[-1]
    block = np.moveaxis(filled[low:high + 1], 0, axis)
    start = [0, 0, 0]
    start[axis] = low
    case.bridge.write_blocks(tuple(start), add=block, remove=~block)
    return _score_interpolation(case, axis, truth, kept, scored, time.perf_counter() - tic)


TOOLS = {
    "brush": run_brush,
    "growcut": run_growcut,
    "regions": run_regions,
    "sam": run_sam,
    "propagate": run_propagate,
    "copy": run_copy,
    "interpolate": run_interpolate,
    "fillbetween": run_fillbetween,
}

"""Smart Propagation previews as a compute request: a PropagationRun as arrays and plain values, and back.

`propagation_request` (GUI thread) sends the run's slices (for sam2 only the slices it can track and its conditioning
slices, with their indices, already windowed to uint8 as SAM 2 sees them), its seed / drawn masks, strategy and
options;
`propagate` (worker) rebuilds the run, computes it with SmartPropagationLib's `run_propagation` (strategy
"sam" with the worker's SAM engine, "sam2" with its SAM 2 engine, the others as in-process) and answers the
accepted masks per slice and the stop reason of each direction; `result_from_reply` makes the
PropagationResult again. Slice indices on the wire are the whole volume's.
"""
import dataclasses

import numpy as np

from MVAComputeLib.compute_errors import ComputeError

OPERATION = "propagate"
SAM_STRATEGIES = ("sam", "sam2")
IDENTITY_WINDOW = (255.0, 127.5)  # window_to_uint8 maps 0..255 onto itself with it


def propagation_request(run, model=None):
    """(op, params, arrays) of a PropagationRun; `model`: the worker's model spec for strategies sam / sam2."""
    if run.strategy in SAM_STRATEGIES and not model:
        raise ComputeError(f"Strategy {run.strategy} in the compute worker needs a model spec")
    slices = sorted(run.masks)
    stop_rule = {key: list(value) if isinstance(value, tuple) else value
                 for key, value in dataclasses.asdict(run.stop_rule).items()}
    params = {"strategy": run.strategy, "axis": int(run.axis), "seed_k": int(run.seed_k), "low": int(run.low),
              "direction": run.direction if run.direction == "both" else int(run.direction),
              "max_slices": int(run.max_slices), "spacing": [float(s) for s in run.spacing],
              "stop_rule": stop_rule, "mask_slices": [int(k) for k in slices],
              "window_level": None if run.window_level is None else [float(v) for v in run.window_level],
              "repropagating": bool(run.repropagating), "drawn": sorted(int(k) for k in run.drawn)}
    if run.frames:  # video strategies: which slices `image` holds (whole-volume indices) of how many
        params["frames"], params["frame_count"] = [int(k) for k in run.frames], int(run.frame_count)
    if model:
        params["model"] = model
    if run.prompts:  # SAM 2's conditioning prompts, plain numbers (slice -> points, labels, box)
        params["prompts"] = {
            str(k): {"points_xy": [list(map(float, p)) for p in prompt.points_xy],
                     "labels": [int(v) for v in prompt.labels],
                     "box_xyxy": None if prompt.box_xyxy is None else list(map(float, prompt.box_xyxy))}
            for k, prompt in run.prompts.items()}
    masks = np.stack([np.asarray(run.masks[k], bool) for k in slices]) if slices else \
        np.zeros((0,) + run.image.shape[1:], bool)
    image = run.image
    if run.strategy == "sam2" and run.window_level is not None:
        # SAM 2 sees the slices windowed to uint8: the same pixels, 1 byte each (an int16 CT's half, a float MRI's
        # quarter); the window that maps uint8 onto itself goes with them.
        from MVABridgeLib.windowing import window_stack_to_uint8
        image = window_stack_to_uint8(run.image, *run.window_level)
        params["window_level"] = list(IDENTITY_WINDOW)
    return OPERATION, params, {"image": image, "masks": masks}


def run_from_request(params, arrays):
    """The PropagationRun a `propagate` request describes."""
    from SmartPropagationLib.algorithms import StopRule
    from SmartPropagationLib.propagation_run import PropagationRun
    for name in ("image", "masks"):
        if name not in arrays:
            raise ComputeError(f"The propagate request carries no {name!r} array")
    image, masks, slices = arrays["image"], arrays["masks"], params.get("mask_slices") or []
    if image.ndim != 3 or masks.shape != (len(slices),) + image.shape[1:]:
        raise ComputeError(f"masks {masks.shape} must be one (J, I) mask per listed slice of image {image.shape}")
    if params.get("frames") and len(params["frames"]) != image.shape[0]:
        raise ComputeError(f"{len(params['frames'])} frame indices for the {image.shape[0]} slices of the image")
    rule = {key: tuple(value) if isinstance(value, list) else value
            for key, value in (params.get("stop_rule") or {}).items()}
    window = params.get("window_level")
    from SmartPropagationLib.algorithms.sam2_video import SlicePrompts
    prompts = {int(k): SlicePrompts(tuple(map(tuple, p.get("points_xy") or ())), tuple(p.get("labels") or ()),
                                    None if p.get("box_xyxy") is None else tuple(p["box_xyxy"]))
               for k, p in (params.get("prompts") or {}).items()}
    return PropagationRun(str(params["strategy"]), int(params.get("axis", 0)), int(params["seed_k"]),
                          int(params.get("low", 0)), image, {int(k): m for k, m in zip(slices, masks)},
                          params.get("direction", "both"), int(params.get("max_slices", 50)),
                          tuple(params["spacing"]), StopRule(**rule), frozenset(params.get("drawn") or ()),
                          None if window is None else tuple(window), bool(params.get("repropagating")), prompts,
                          tuple(int(k) for k in params.get("frames") or ()), int(params.get("frame_count") or 0))


def propagate(params, arrays, context, engine_of):
    """The compute worker's handler of `propagate`; `engine_of(spec)` gives the worker's (SAM or SAM 2) engine."""
    from SmartPropagationLib.propagation_run import run_propagation
    run = run_from_request(params, arrays)
    builder = factory = None
    if run.strategy == "sam":
        from SegmentAnythingLib.sam_propagation import sam_strategy
        window = run.window_level
        if window is None:
            from MVABridgeLib.windowing import auto_window_level
            window = auto_window_level(run.image)
        builder = sam_strategy(engine_of(params.get("model")), window)
    elif run.strategy == "sam2":
        from SegmentAnythingLib.sam2_propagation import sam2_tracker_factory
        factory = sam2_tracker_factory(engine_of(params.get("model")), run.window_level)
    context.check_cancelled()
    result = run_propagation(run, context.progress, context.cancelled, predictor_builder=builder,
                             tracker_factory=factory)
    slices = sorted(result.masks)
    masks = np.stack([result.masks[k] for k in slices]) if slices else np.zeros((0,) + run.image.shape[1:], bool)
    stops = [{"direction": int(s.direction), "slice_k": s.slice_k, "reason": str(s.reason.value)}
             for s in result.stops.values()]
    return ({"seed_k": int(result.seed_k), "stops": stops, "strategy": run.strategy},
            {"masks": masks.astype(bool), "slices": np.asarray(slices, np.int32),
             "quality": np.asarray([result.quality.get(k, 1.0) for k in slices], np.float32)})


def result_from_reply(reply):
    """The PropagationResult of a `propagate` reply."""
    from SmartPropagationLib.algorithms import PropagationResult, StopEvent, StopReason
    slices = [int(k) for k in reply.arrays["slices"]]
    masks = {k: reply.arrays["masks"][n].astype(bool) for n, k in enumerate(slices)}
    quality = {k: float(q) for k, q in zip(slices, reply.arrays["quality"])}
    stops = {int(s["direction"]): StopEvent(int(s["direction"]), s["slice_k"], StopReason(s["reason"]))
             for s in reply.params.get("stops", [])}
    return PropagationResult(int(reply.params["seed_k"]), masks, quality, stops)

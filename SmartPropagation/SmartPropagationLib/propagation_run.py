"""One Smart Propagation run as plain data, so that it can be computed anywhere (a thread or the compute worker).

`SmartPropagationLogic.plan_preview` reads everything on the GUI thread into a `PropagationRun`: the resolved
strategy, the slices along the axis that the run can reach (a crop of the volume, propagation axis first), the
seed and every drawn slice's mask, direction, stop rule and window. `run_propagation` computes its
PropagationResult with numpy only; `SmartPropagationLogic.preview_of` turns it into the preview on the GUI thread.
Slice indices in and out are the whole volume's, whatever the crop.
"""
from dataclasses import dataclass, field, replace

import numpy as np

from SmartPropagationLib.algorithms import (
    PropagationResult, StopEvent, StopRule, interpolate_between_slices, propagate)
from SmartPropagationLib.algorithms.sam2_video import build_tracker, propagate_video, video_strategies
from SmartPropagationLib.algorithms.video_frames import SliceStack


@dataclass
class PropagationRun:
    """What one propagation computes from.

    Attributes
    ----------
    strategy : str
        Resolved: "registration", "copy", "sam", "interpolation" or a video strategy ("sam2").
    axis, seed_k : int
        Array axis propagated along (0=k, 1=j, 2=i) and the slice started from (the corrected slice when
        re-propagating).
    low : int
        Index along the axis of the first slice of `image`.
    image : ndarray (n, J, I)
        The reachable slices, propagation axis first, in the volume's dtype (video strategies: the slices `frames`).
    masks : dict of int -> bool (J, I)
        The seed slice's mask; for interpolation and video strategies also every drawn slice's.
    direction : +1, -1 or "both"
    max_slices : int
    spacing : (float, float, float)
        mm, propagation axis first.
    stop_rule : StopRule
    drawn : frozenset of int
        Slices holding someone else's work when the run was planned (never changed by Apply).
    window_level : (float, float) or None
        Strategy "sam" in a compute worker: the window the slices are shown with; video strategies: the automatic
        window of the whole volume (their `image` holds only some slices).
    repropagating : bool
        Re-propagation beyond `seed_k` after a correction (`direction` is then away from the first seed).
    prompts : dict of int -> SlicePrompts
        Video strategies: the user's points / box per slice (in the stack slice's pixels), conditioning frames
        as well as, or instead of, drawn masks.
    frames : tuple of int
        Video strategies: the whole-volume index of each slice of `image` (the reachable range and every
        conditioning slice, `video_frames.video_frame_indices`); empty: `image` is contiguous from `low`.
    frame_count : int
        Video strategies: the number of slices along the axis in the whole volume (0: as `image`).
    """
    strategy: str
    axis: int
    seed_k: int
    low: int
    image: np.ndarray
    masks: dict
    direction: object
    max_slices: int
    spacing: tuple
    stop_rule: StopRule = field(default_factory=StopRule)
    drawn: frozenset = frozenset()
    window_level: tuple = None
    repropagating: bool = False
    prompts: dict = field(default_factory=dict)
    frames: tuple = ()
    frame_count: int = 0

    @property
    def is_video(self):
        return self.strategy == "sam2" or self.strategy in video_strategies()


def reachable_slices(strategy, seed_k, drawn, direction, max_slices, count):
    """(low, high) inclusive slice range a run can read: the seed +/- max_slices in its directions, for
    interpolation the drawn range (video strategies: `video_frames.video_frame_indices`)."""
    if strategy == "interpolation":
        return min(drawn), max(drawn)
    ways = (1, -1) if direction == "both" else (int(direction),)
    low = max(seed_k - max_slices, 0) if -1 in ways else seed_k
    high = min(seed_k + max_slices, count - 1) if 1 in ways else seed_k
    return int(low), int(high)


def run_propagation(run, progress=None, cancel=None, predictor_builder=None, tracker_factory=None):
    """Compute `run` (numpy only; any thread or process).

    Parameters
    ----------
    run : PropagationRun
    progress : callable(fraction), optional
    cancel : callable() -> bool, optional
    predictor_builder : callable, optional
        Strategy "sam": ``builder(image_kji, seed_k, seed_mask_2d, spacing_kji) -> predictor`` (the worker's
        engine); default: the strategy registered in this process.
    tracker_factory : callable, optional
        Video strategies: ``factory(image_kji, spacing_kji) -> tracker``; default: the registered one.

    Returns
    -------
    PropagationResult
        Whole-volume slice indices. Interpolation: the masks of every slice of the drawn range, no stops.
    """
    image = np.asarray(run.image).astype(np.float32)
    low = run.low
    local = {k - low: np.asarray(m, bool) for k, m in run.masks.items()}
    seed = run.seed_k - low
    ticks = None if progress is None else (lambda done, total: progress(done / max(total, 1)))
    if run.strategy == "interpolation":
        volume = interpolate_between_slices(image, dict(sorted(local.items())), run.spacing, progress=ticks,
                                            cancel=cancel)
        masks = {k + low: volume[k] for k in range(image.shape[0])}
        return PropagationResult(run.seed_k, masks, {k: 1.0 for k in masks}, {})
    if run.is_video:  # whole-volume slice indices throughout: the tracker's memory depends on them
        frames = run.frames or tuple(range(low, low + image.shape[0]))
        stack = SliceStack(frames, image, run.frame_count or low + image.shape[0], run.window_level)
        factory = tracker_factory or (lambda image_kji, spacing: build_tracker(run.strategy, image_kji, spacing))
        masks = {k: np.asarray(m, bool) for k, m in run.masks.items()}
        return propagate_video(factory(stack, run.spacing), stack.shape, run.seed_k, masks, run.direction,
                               run.max_slices, run.spacing, run.stop_rule, ticks, cancel, dict(run.prompts) or None)
    else:
        strategy = run.strategy
        if predictor_builder is not None:
            strategy = predictor_builder(image, seed, local[seed], run.spacing)
        result = propagate(image, local[seed], seed, run.direction, run.max_slices, run.spacing, strategy,
                           run.stop_rule, ticks, cancel)
    return shifted(result, low)


def shifted(result, offset):
    """`result` with every slice index moved by `offset`."""
    return PropagationResult(
        result.seed_k + offset, {k + offset: m for k, m in result.masks.items()},
        {k + offset: q for k, q in result.quality.items()},
        {d: StopEvent(s.direction, None if s.slice_k is None else s.slice_k + offset, s.reason)
         for d, s in result.stops.items()})


def merged_repropagation(earlier, fresh, corrected_k, direction):
    """An earlier result with the slices beyond `corrected_k` (in `direction`) taken from the fresh run from it."""
    kept = {k: m for k, m in earlier.masks.items() if (k - corrected_k) * direction < 0}
    quality = {**{k: q for k, q in earlier.quality.items() if k in kept}, **fresh.quality, corrected_k: 1.0}
    return replace(earlier, masks={**kept, **fresh.masks}, quality=quality,
                   stops={**earlier.stops, direction: fresh.stops[direction]})

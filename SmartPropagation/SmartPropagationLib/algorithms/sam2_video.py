"""Propagation with a video tracker (SAM 2): the slices along axis 0 are the frames of a video.

Unlike slice predictors, a video tracker keeps a memory of the frames it has seen: the slices the user drew
are its conditioning frames, and each tracked slice is predicted from them and from the last tracked ones.
The tracker is any object with this interface (``SegmentAnythingLib.algorithms.sam2_video_tracker`` is the
SAM 2 one; tests use oracle stand-ins)::

    tracker.condition(k, mask_2d)        # a drawn slice; an empty mask says the object is absent there
    tracker.begin_pass(direction)        # +1 or -1: a new pass away from the seed
    tracker.track(k, direction)          # -> object with .mask (J, I) bool, .iou float, .object_score float
    tracker.condition_prompts(k, points_xy, labels, box_xyxy, mask_2d)   # optional: a prompted slice
                                         # -> the same kind of object, the slice's mask from the prompts

Drawn slices are never predicted: tracking uses them as they are and goes on past them, except past an empty
one, where the user said the object ends. A slice may instead (or also) hold the user's prompts (SlicePrompts:
positive / negative points and a box, SAM 2's ``add_new_points_or_box``): it is a conditioning frame from its
prompts, and its mask is what they predict, unless the user drew there (then the drawing stays as it is and the
prompts refine it only inside the tracker, as SAM 2 does with points added to a frame that has a mask).
"""
from dataclasses import dataclass, replace

import numpy as np

from .input_checks import check_slice_index, check_slice_mask
from .propagation import PropagationResult, StopEvent, _directions
from .propagation_errors import PropagationCancelled, PropagationInputError, UnknownStrategyError
from .stop_rule import StopReason, StopRule

_VIDEO_STRATEGIES = {}


@dataclass(frozen=True)
class SlicePrompts:
    """The user's prompts on one slice of the stack, in that slice array's pixels.

    Attributes
    ----------
    points_xy : tuple of (float, float)
        (x = column, y = row) of each point.
    labels : tuple of int
        1 (positive) or 0 (negative), one per point.
    box_xyxy : (float, float, float, float) or None
        (x_min, y_min, x_max, y_max).
    """
    points_xy: tuple = ()
    labels: tuple = ()
    box_xyxy: tuple = None

    @property
    def marks_the_object(self):
        """True when the prompts say where the object is (a positive point or a box)."""
        return self.box_xyxy is not None or any(label == 1 for label in self.labels)


def check_prompts(prompts, slice_shape, name="prompts"):
    """``prompts`` as a validated SlicePrompts (float coordinates inside a slice of ``slice_shape``).

    Raises
    ------
    PropagationInputError
    """
    if not isinstance(prompts, SlicePrompts):
        raise PropagationInputError(f"{name} must be a SlicePrompts; got {type(prompts).__name__}")
    rows, columns = (int(v) for v in slice_shape)
    points = np.asarray(prompts.points_xy, float).reshape(-1, 2) if len(prompts.points_xy) else np.zeros((0, 2))
    labels = tuple(int(v) for v in prompts.labels)
    if len(labels) != len(points) or any(v not in (0, 1) for v in labels):
        raise PropagationInputError(f"{name}: give one label, 1 (positive) or 0 (negative), per point; "
                                    f"got {len(points)} points and labels {labels}")
    box = None
    if prompts.box_xyxy is not None:
        box = np.asarray(prompts.box_xyxy, float).reshape(-1)
        if box.shape != (4,) or box[0] > box[2] or box[1] > box[3]:
            raise PropagationInputError(f"{name}: a box is (x_min, y_min, x_max, y_max); got {prompts.box_xyxy}")
    if not len(points) and box is None:
        raise PropagationInputError(f"{name}: no point and no box")
    corners = np.concatenate([points, box.reshape(2, 2)]) if box is not None else points
    if not np.all(np.isfinite(corners)) or np.any(corners < -0.5) or np.any(
            corners >= np.array([columns, rows]) - 0.5):
        raise PropagationInputError(f"{name}: a point or box corner lies outside the {rows} x {columns} slice")
    return SlicePrompts(tuple(map(tuple, points.tolist())), labels, tuple(box.tolist()) if box is not None else None)


def register_video_strategy(name, factory):
    """Make ``factory(image_kji, spacing_kji) -> tracker`` available to Smart Propagation as strategy ``name``."""
    _VIDEO_STRATEGIES[str(name)] = factory


def video_strategies():
    """Names of the registered video strategies."""
    return tuple(sorted(_VIDEO_STRATEGIES))


def build_tracker(name, image_kji, spacing_kji):
    """A new tracker of registered strategy ``name`` for this volume.

    Raises
    ------
    UnknownStrategyError
    """
    factory = _VIDEO_STRATEGIES.get(name)
    if factory is None:
        raise UnknownStrategyError(
            f"No video strategy {name!r} is registered (load a SAM 2 model first); registered: {video_strategies()}")
    return factory(image_kji, spacing_kji)


def propagate_video(tracker, shape_kji, seed_k, drawn_masks, direction="both", max_slices=50,
                    spacing_kji=(1.0, 1.0, 1.0), stop_rule=None, progress=None, cancel=None, prompts=None):
    """Track the object from the seed slice through the neighbouring slices until a stop rule fires.

    Parameters
    ----------
    tracker : video tracker
        See the module docstring; it is given every drawn slice as a conditioning frame first.
    shape_kji : (int, int, int)
        Shape of the volume, propagation axis first.
    seed_k : int
        The slice to start from; it must have a drawing in ``drawn_masks`` or a positive point or a box in
        ``prompts``.
    drawn_masks : dict of int -> ndarray (J, I)
        The slices the user drew and their masks (the seed included when drawn).
    direction : {+1, -1, 'both'}
    max_slices : int
        Largest number of slices to go in each direction (drawn slices passed count).
    spacing_kji : (float, float, float)
        In mm; for the area and box tests of the stop rule.
    stop_rule : StopRule, optional
        Its ``min_quality`` tests the tracker's predicted IoU and ``min_object_score`` its object score.
    progress : callable(done, total), optional
    cancel : callable() -> bool, optional
        Polled before each slice; True raises PropagationCancelled.
    prompts : dict of int -> SlicePrompts, optional
        Slices the user prompted (the tracker needs ``condition_prompts``).

    Returns
    -------
    PropagationResult
        Masks of the tracked slices, of the drawn slices passed on the way (as drawn, quality 1) and of the
        prompted, undrawn ones (as their prompts predict, with the predicted IoU).

    Raises
    ------
    PropagationInputError, PropagationCancelled
    """
    shape_kji = tuple(int(v) for v in shape_kji)
    if len(shape_kji) != 3:
        raise PropagationInputError(f"shape_kji must have three sizes; got {shape_kji!r}")
    grid = np.empty((shape_kji[0], 1, 1))  # stands in for the image in the index checks
    seed_k = check_slice_index(seed_k, grid)
    drawn = {check_slice_index(k, grid, "drawn slice"): _check_mask(m, shape_kji) for k, m in drawn_masks.items()}
    prompted = {check_slice_index(k, grid, "prompted slice"): check_prompts(p, shape_kji[1:], f"prompts on slice {k}")
                for k, p in (prompts or {}).items()}
    if prompted and not hasattr(tracker, "condition_prompts"):
        raise PropagationInputError("This propagation strategy takes no prompts: draw the object on the slice")
    if not ((seed_k in drawn and drawn[seed_k].any()) or (seed_k in prompted and prompted[seed_k].marks_the_object)):
        raise PropagationInputError(f"The seed slice {seed_k} has no drawing and no positive prompt: paint the "
                                    f"object on it, click on it or draw a box around it first")
    if isinstance(max_slices, bool) or not isinstance(max_slices, (int, np.integer)) or max_slices < 0:
        raise PropagationInputError(f"max_slices must be a non-negative integer; got {max_slices!r}")
    directions = _directions(direction)
    stop_rule = stop_rule or StopRule()
    anchors = _condition(tracker, seed_k, drawn, prompted, cancel)
    seed_mask = anchors[seed_k][0]
    if not seed_mask.any():
        raise PropagationInputError(f"The prompts on slice {seed_k} select nothing: add a positive point or a box")
    result = PropagationResult(seed_k, {seed_k: seed_mask}, {seed_k: anchors[seed_k][1]})
    box = stop_rule.seed_box(seed_mask, spacing_kji[1:])
    room = {1: shape_kji[0] - 1 - seed_k, -1: seed_k}
    total = sum(min(int(max_slices), room[d]) for d in directions)
    done = [0]

    def tick():
        done[0] += 1
        if progress is not None:
            progress(done[0], total)

    for d in directions:
        tracker.begin_pass(d)
        _track_one_way(tracker, shape_kji[0], seed_k, d, int(max_slices), spacing_kji, anchors, stop_rule, box,
                       result, tick, cancel)
    return result


def _condition(tracker, seed_k, drawn, prompted, cancel):
    """Give the tracker every drawn and prompted slice, nearest the seed first.

    Returns the slices tracking passes through unchanged: slice -> (mask, quality).
    """
    anchors = {}
    for k in sorted(set(drawn) | set(prompted), key=lambda k: (abs(k - seed_k), k)):
        if cancel is not None and cancel():
            raise PropagationCancelled("Propagation was cancelled")
        drawing = drawn.get(k)
        has_drawing = drawing is not None and drawing.any()
        if k not in prompted:
            tracker.condition(k, drawing)
            anchors[k] = (drawing, 1.0)
            continue
        p = prompted[k]
        prediction = tracker.condition_prompts(k, p.points_xy or None, p.labels or None, p.box_xyxy,
                                               mask_2d=drawing if has_drawing else None)
        anchors[k] = (drawing, 1.0) if has_drawing else (np.asarray(prediction.mask, bool), float(prediction.iou))
    return anchors


def _check_mask(mask_2d, shape_kji):
    grid = np.empty((1,) + tuple(shape_kji[1:]))
    return check_slice_mask(mask_2d, grid, "drawn mask", allow_empty=True)


def _track_one_way(tracker, count, seed_k, direction, max_slices, spacing_kji, anchors, stop_rule, box, result,
                   tick, cancel):
    previous_area = int(np.count_nonzero(anchors[seed_k][0]))
    k = seed_k
    for _ in range(max_slices):
        if cancel is not None and cancel():
            raise PropagationCancelled("Propagation was cancelled")
        k += direction
        if not 0 <= k < count:
            result.stops[direction] = StopEvent(direction, None, StopReason.VOLUME_END)
            return
        if k in anchors:
            tick()
            mask, quality = anchors[k]
            if not mask.any():  # the user erased the object here (or prompted nothing): it ends
                result.stops[direction] = StopEvent(direction, k, StopReason.VANISHED)
                return
            result.masks[k], result.quality[k] = mask, quality
            previous_area = int(np.count_nonzero(mask))
            continue
        prediction = tracker.track(k, direction)
        mask = np.asarray(prediction.mask, bool)
        reason = stop_rule.check(mask, previous_area, float(prediction.iou), box, spacing_kji[1:],
                                 object_score=float(prediction.object_score))
        tick()
        if reason is not None:
            result.stops[direction] = StopEvent(direction, k, reason)
            return
        result.masks[k], result.quality[k] = mask, float(prediction.iou)
        previous_area = int(np.count_nonzero(mask))
    result.stops[direction] = StopEvent(direction, None, StopReason.MAX_SLICES)


def repropagate_video(tracker, result, corrected_k, drawn_masks, direction=None, max_slices=50,
                      spacing_kji=(1.0, 1.0, 1.0), stop_rule=None, progress=None, cancel=None, shape_kji=None,
                      prompts=None):
    """Track again from a slice the user corrected, with it as a new conditioning frame.

    Parameters
    ----------
    tracker : video tracker
        A fresh tracker for the volume.
    result : PropagationResult
        The earlier propagation; it is not modified.
    corrected_k : int
        The corrected slice; it must be in ``drawn_masks`` with a non-empty mask.
    drawn_masks : dict of int -> ndarray (J, I)
        Every drawn slice, the corrected one and the first seed included: all are conditioning frames.
    direction : {+1, -1}, optional
        Which side to redo; default: away from the original seed (+1 when ``corrected_k`` is the seed).
    shape_kji : (int, int, int)
        Shape of the volume, propagation axis first.
    max_slices, spacing_kji, stop_rule, progress, cancel, prompts
        As in :func:`propagate_video` (the corrected slice may be given by prompts instead of a drawing).

    Returns
    -------
    PropagationResult
        Same seed as ``result``; the slices on the seed side of ``corrected_k`` are kept, the slices beyond it come
        from the new tracking.
    """
    if shape_kji is None:
        raise PropagationInputError("repropagate_video needs the volume's shape_kji")
    if direction is None:
        direction = 1 if corrected_k >= result.seed_k else -1
    (direction,) = _directions(direction)
    fresh = propagate_video(tracker, shape_kji, corrected_k, drawn_masks, direction, max_slices, spacing_kji,
                            stop_rule, progress, cancel, prompts)
    kept = {k: m for k, m in result.masks.items() if (k - corrected_k) * direction < 0}
    kept_quality = {k: q for k, q in result.quality.items() if k in kept}
    return replace(result, masks={**kept, **fresh.masks}, quality={**kept_quality, **fresh.quality},
                   stops={**result.stops, direction: fresh.stops[direction]})

"""Propagate a slice's mask to neighbouring slices, slice by slice, until a stop rule fires."""
from dataclasses import dataclass, field, replace

import numpy as np

from .input_checks import check_slice_index, check_slice_mask, check_volume
from .propagation_errors import PropagationCancelled, PropagationInputError
from .slice_predictors import build_predictor
from .stop_rule import StopReason, StopRule

BOTH = "both"


@dataclass
class StopEvent:
    """Where and why propagation in one direction ended.

    Attributes
    ----------
    direction : int
        +1 (increasing k) or -1.
    slice_k : int or None
        The slice whose prediction was rejected (None for MAX_SLICES / VOLUME_END: nothing was rejected).
    reason : StopReason
    """
    direction: int
    slice_k: int | None
    reason: StopReason


@dataclass
class PropagationResult:
    """Per-slice masks and quality of one propagation.

    Attributes
    ----------
    seed_k : int
        The slice the propagation started from (its mask is included in `masks`).
    masks : dict of int -> ndarray of bool (J, I)
        Accepted masks by slice index; slices beyond a stop are absent.
    quality : dict of int -> float
        Predictor quality per accepted slice (1.0 for the seed).
    stops : dict of int -> StopEvent
        One entry per direction that was propagated.
    """
    seed_k: int
    masks: dict = field(default_factory=dict)
    quality: dict = field(default_factory=dict)
    stops: dict = field(default_factory=dict)

    @property
    def slices(self):
        """Accepted slice indices in increasing order."""
        return sorted(self.masks)

    def to_volume(self, shape_kji):
        """All accepted masks as one bool array of `shape_kji` (other slices empty)."""
        volume = np.zeros(shape_kji, bool)
        for k, mask in self.masks.items():
            volume[k] = mask
        return volume


def _directions(direction):
    if direction == BOTH or direction == 0:
        return (1, -1)
    if direction in (1, -1):
        return (int(direction),)
    raise PropagationInputError(f"direction must be +1, -1 or 'both'; got {direction!r}")


def _propagate_one_way(image_kji, start_k, start_mask, direction, max_slices, spacing_kji, predictor,
                       stop_rule, box, result, tick, cancel):
    count = image_kji.shape[0]
    mask, k = start_mask, start_k
    for _ in range(max_slices):
        if cancel is not None and cancel():
            raise PropagationCancelled("Propagation was cancelled")
        next_k = k + direction
        if not 0 <= next_k < count:
            result.stops[direction] = StopEvent(direction, None, StopReason.VOLUME_END)
            return
        next_mask, quality = predictor(image_kji[k], mask, image_kji[next_k])
        next_mask = np.asarray(next_mask, bool)
        reason = stop_rule.check(next_mask, int(np.count_nonzero(mask)), float(quality), box, spacing_kji[1:])
        tick()
        if reason is not None:
            result.stops[direction] = StopEvent(direction, next_k, reason)
            return
        result.masks[next_k] = next_mask
        result.quality[next_k] = float(quality)
        mask, k = next_mask, next_k
    result.stops[direction] = StopEvent(direction, None, StopReason.MAX_SLICES)


def propagate(image_kji, seed_mask_2d, seed_k, direction=BOTH, max_slices=50, spacing_kji=(1.0, 1.0, 1.0),
              strategy="registration", stop_rule=None, progress=None, cancel=None):
    """Carry the seed slice's mask to neighbouring slices until the object ends.

    Parameters
    ----------
    image_kji : ndarray (K, J, I)
        The volume, resampled so that the propagation axis is axis 0.
    seed_mask_2d : ndarray (J, I)
        The object on the seed slice (non-zero = object).
    seed_k : int
        Index of the seed slice along axis 0.
    direction : {+1, -1, 'both'}
        Propagate towards increasing k, decreasing k, or both.
    max_slices : int
        Largest number of slices to propagate in each direction.
    spacing_kji : sequence of 3 float
        Voxel spacing in mm, in (k, j, i) order.
    strategy : str or callable
        'registration' (demons + intensity refinement), 'copy' (baseline), another registered name
        (e.g. 'sam', see `register_strategy`), or a predictor
        ``callable(image_prev, mask_prev, image_next) -> (mask_next, quality)``.
    stop_rule : StopRule, optional
        Defaults to `StopRule()`.
    progress : callable(done, total), optional
        Called after each predicted slice; `total` is the most slices that can still be predicted.
    cancel : callable() -> bool, optional
        Polled before each slice; returning True raises `PropagationCancelled`.

    Returns
    -------
    PropagationResult

    Raises
    ------
    ShapeMismatchError, NonFiniteImageError, SliceOutOfRangeError, EmptySeedMaskError, UnknownStrategyError
        On bad input (all subclasses of `PropagationInputError`, a ValueError).
    PropagationCancelled
        When `cancel` returned True.
    """
    image_kji, spacing_kji = check_volume(image_kji, spacing_kji)
    seed_k = check_slice_index(seed_k, image_kji)
    seed_mask_2d = check_slice_mask(seed_mask_2d, image_kji)
    directions = _directions(direction)
    if isinstance(max_slices, bool) or not isinstance(max_slices, (int, np.integer)) or max_slices < 0:
        raise PropagationInputError(f"max_slices must be a non-negative integer; got {max_slices!r}")
    stop_rule = stop_rule or StopRule()
    predictor = build_predictor(strategy, image_kji, seed_k, seed_mask_2d, spacing_kji)
    box = stop_rule.seed_box(seed_mask_2d, spacing_kji[1:])
    result = PropagationResult(seed_k, {seed_k: seed_mask_2d}, {seed_k: 1.0})
    room = {1: image_kji.shape[0] - 1 - seed_k, -1: seed_k}
    total = sum(min(int(max_slices), room[d]) for d in directions)
    done = [0]

    def tick():
        done[0] += 1
        if progress is not None:
            progress(done[0], total)

    for d in directions:
        _propagate_one_way(image_kji, seed_k, seed_mask_2d, d, int(max_slices), spacing_kji, predictor,
                           stop_rule, box, result, tick, cancel)
    return result


def repropagate(image_kji, result, corrected_k, corrected_mask_2d, direction=None, max_slices=50,
                spacing_kji=(1.0, 1.0, 1.0), strategy="registration", stop_rule=None, progress=None, cancel=None):
    """Start again from a slice the user corrected, replacing only the slices beyond it.

    Parameters
    ----------
    image_kji : ndarray (K, J, I)
    result : PropagationResult
        The earlier propagation; it is not modified.
    corrected_k : int
        The corrected slice.
    corrected_mask_2d : ndarray (J, I)
        Its corrected mask (non-empty).
    direction : {+1, -1}, optional
        Which side to redo; default: away from the original seed (+1 when `corrected_k` is the seed).
    max_slices, spacing_kji, strategy, stop_rule, progress, cancel
        As in `propagate`.

    Returns
    -------
    PropagationResult
        Same seed as `result`; slices on the other side of `corrected_k` are kept as they were, the
        corrected slice holds the correction, and the slices beyond it come from the new propagation.
    """
    image_kji, spacing_kji = check_volume(image_kji, spacing_kji)
    corrected_k = check_slice_index(corrected_k, image_kji, "corrected slice")
    corrected_mask_2d = check_slice_mask(corrected_mask_2d, image_kji, "corrected mask")
    if direction is None:
        direction = 1 if corrected_k >= result.seed_k else -1
    (direction,) = _directions(direction)
    fresh = propagate(image_kji, corrected_mask_2d, corrected_k, direction, max_slices, spacing_kji,
                      strategy, stop_rule, progress, cancel)
    kept = {k: m for k, m in result.masks.items() if (k - corrected_k) * direction < 0}
    kept_quality = {k: q for k, q in result.quality.items() if k in kept}
    merged = replace(result, masks={**kept, **fresh.masks}, quality={**kept_quality, **fresh.quality},
                     stops={**result.stops, direction: fresh.stops[direction]})
    merged.quality[corrected_k] = 1.0
    return merged

"""`mva eval annotate3d`: a whole 3D annotation session, scored interaction by interaction.

A simulated annotator works as a person would (EVALUATION.md, "3D end-to-end protocol"): annotate a first slice,
propagate or predict in 3D, then fix the largest 3D error component on its slice with most error (rule 6) and
re-propagate, until the 3D Dice reaches 0.90 or the budget is spent. Counting: one click, one dab (rule 5) or one
button press (Propagate, Fill between, Apply, placing an ROI) is one interaction; for the Paint baseline one
stroke fills the largest error component of the slice. Dice is measured after every interaction on what the user
sees (the segment, or the pending preview that Apply would write). Only `Annotator` reads the truth: the tools
and this driver never undo, filter or pick interactions by looking at it.
"""
import time
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from MVAEvaluationLib.metrics import dice, worst_drop
from MVAEvaluationLib.simulated_user import Click, _padded_edt

TARGET_DICE = 0.90
# The annotator's habits (not tool parameters): a slice counts as done at this slice Dice, and a person moves
# on after this many clicks on one slice even when it is not.
SLICE_DONE_DICE = 0.95
MAX_CLICKS_PER_SLICE = 4
# ... and a propagated slice of which less than this share is right counts as propagation gone wrong from there.
PROPAGATION_WRONG_PRECISION = 0.5


class SessionOver(Exception):
    """The annotator stops: the target is reached (and applied) or the budget is spent."""


class Annotator:
    """The simulated person: the only object that reads the truth.

    Parameters
    ----------
    case : evaluation.Case
    """

    def __init__(self, case):
        self.case = case
        self.truth = case.truth
        self.clicked = {}  # plane key -> bool mask of pixels clicked already (never the same pixel twice)

    def first_slice(self, axis=0):
        """Rule 1 for 3D tools: the slice with the largest truth area along array `axis`.

        Slices of equal area go to the one nearest the structure's centre along the axis, so the choice does not
        depend on the order the slices are stored in (a scan stored reversed starts on the same slice).
        """
        area = self.truth.sum(axis=tuple(a for a in range(3) if a != axis)).astype(float)
        tied = np.flatnonzero(area == area.max())
        centre = float(np.dot(area, np.arange(len(area))) / max(area.sum(), 1.0))
        return int(tied[np.argmin(np.abs(tied - centre))])

    def satisfied(self, visible):
        return dice(visible, self.truth) >= TARGET_DICE

    def slice_to_fix(self, visible, axes=(0,), skip=()):
        """Rule 6: the largest 3D error component, then (among `axes`) the slice where it has most voxels.

        `skip`: (axis, index) of slices the person gave up on; their errors are left out.
        Returns (axis, index) or None when nothing is wrong.
        """
        error = self.truth ^ np.asarray(visible, bool)
        for axis, index in skip:
            np.moveaxis(error, axis, 0)[index] = False
        labels, count = ndimage.label(error)
        if count == 0:
            return None
        largest = labels == (np.argmax(np.bincount(labels.ravel())[1:]) + 1)
        best = None
        for axis in axes:
            per_slice = largest.sum(axis=tuple(a for a in range(3) if a != axis))
            index = int(np.argmax(per_slice))
            if best is None or per_slice[index] > best[2]:
                best = (axis, index, per_slice[index])
        return best[0], best[1]

    def object_end(self, visible, axis, index):
        """Where a person says "the object ends here" for a wrong slice `index` the object is not on: the
        nearest slice to the object, on the same side, that the object is not on and the mask still covers."""
        truth_along = self.truth.any(axis=tuple(a for a in range(3) if a != axis))
        shown_along = np.asarray(visible, bool).any(axis=tuple(a for a in range(3) if a != axis))
        present = np.flatnonzero(truth_along)
        if present.size == 0:
            return index
        step = 1 if index < present[0] else -1 if index > present[-1] else 0
        while step and 0 <= index + step < truth_along.size and not truth_along[index + step] \
                and shown_along[index + step]:
            index += step
        return index

    def slice_mostly_wrong(self, plane, visible):
        """Less than PROPAGATION_WRONG_PRECISION of what the mask shows on the plane is the structure."""
        shown = plane.sample(visible, self.case.ijk_to_ras, order=0) > 0
        return shown.any() and (shown & self.slice_truth(plane)).sum() < PROPAGATION_WRONG_PRECISION * shown.sum()

    def slice_truth(self, plane):
        return plane.sample(self.truth, self.case.ijk_to_ras, order=0) > 0

    def slice_dice(self, plane, visible):
        return dice(plane.sample(visible, self.case.ijk_to_ras, order=0) > 0, self.slice_truth(plane))

    def slice_done(self, plane, visible):
        return self.slice_dice(plane, visible) >= SLICE_DONE_DICE

    def click(self, plane, visible):
        """RITM rule on the plane: at the deepest point of the larger error, never the same pixel twice.

        Returns a Click (index in plane pixels) or None when the slice has no error left to click.
        """
        truth = self.slice_truth(plane)
        predicted = plane.sample(visible, self.case.ijk_to_ras, order=0) > 0
        clicked = self.clicked.setdefault((plane.pixel_to_ras_matrix.round(6).tobytes(), plane.shape),
                                          np.zeros(plane.shape, bool))
        fn_distance = _padded_edt(truth & ~predicted)
        fp_distance = _padded_edt(predicted & ~truth)
        fn_distance[clicked] = 0
        fp_distance[clicked] = 0
        if max(fn_distance.max(), fp_distance.max()) == 0:
            return None
        positive = fn_distance.max() >= fp_distance.max()
        distance = fn_distance if positive else fp_distance
        index = np.unravel_index(int(np.argmax(distance)), distance.shape)
        clicked[index] = True
        return Click(tuple(int(v) for v in index), bool(positive))

    def stroke(self, plane, painted_2d):
        """Paint baseline: the largest error component of the slice, and whether it is to be added.

        Returns (mask_2d, positive) or None when the painted slice equals the truth there.
        """
        truth = self.slice_truth(plane)
        best = None
        for region, positive in ((truth & ~painted_2d, True), (painted_2d & ~truth, False)):
            labels, count = ndimage.label(region)
            if count:
                sizes = np.bincount(labels.ravel())[1:]
                if best is None or sizes.max() > best[2]:
                    best = (labels == np.argmax(sizes) + 1, positive, sizes.max())
        return None if best is None else (best[0], best[1])

    def roi(self, margin_fraction=0.1):
        """The box a person draws around the structure: its bounding box grown by 10 % of each side."""
        where = np.argwhere(self.truth)
        low, high = where.min(0), where.max(0) + 1
        pad = np.ceil((high - low) * margin_fraction).astype(int) + 1
        return tuple((int(max(a - p, 0)), int(min(b + p, n)))
                     for a, b, p, n in zip(low, high, pad, self.truth.shape))


@dataclass
class Session:
    """Dice after each interaction, with the action's name and its compute time."""
    annotator: Annotator
    budget: int
    dice: list = field(default_factory=list)
    actions: list = field(default_factory=list)
    latencies_s: list = field(default_factory=list)
    pending: list = field(default_factory=list)

    @property
    def left(self):
        return self.budget - len(self.dice)

    def record(self, action, seconds, visible, pending=False):
        """Score one interaction; ends the session when the target is reached and nothing is pending.

        `pending` says a preview is waiting for Apply: the annotator then presses Apply next (the caller's job),
        and a tool with a pending preview keeps one interaction of the budget for that press.
        """
        self.dice.append(dice(visible, self.annotator.truth))
        self.actions.append(action)
        self.latencies_s.append(float(seconds))
        self.pending.append(bool(pending))
        if self.left <= 0 or (not pending and self.dice[-1] >= TARGET_DICE):
            raise SessionOver()

    def need(self, count):
        """End the session unless `count` interactions are left (a press and the Apply that must follow it)."""
        if self.left < count:
            raise SessionOver()

    def wants_apply(self, visible):
        """With a preview pending: apply now (the target is reached, or only the Apply press is left)."""
        return self.left <= 1 or self.annotator.satisfied(visible)


def timed(function, *args, **kwargs):
    tic = time.perf_counter()
    value = function(*args, **kwargs)
    return value, time.perf_counter() - tic


def interactions_to(dice_values, threshold=TARGET_DICE, pending=None):
    """Interactions (1-based) until the Dice reached `threshold` in the segment itself: a preview still waiting
    for Apply (`pending[n]` True) does not count as reached."""
    pending = pending or [False] * len(dice_values)
    for count, (value, waiting) in enumerate(zip(dice_values, pending), start=1):
        if value >= threshold and not waiting:
            return count
    return None


def run_annotate3d(case, combination, budget, seed=0, model="tiny", checkpoint=None):
    """Run one tool combination on `case`; returns the JSON-ready result.

    Raises
    ------
    EvaluationError
        For an unknown combination.
    """
    from MVAEvaluationLib.annotate3d_tools import COMBINATIONS
    from MVAEvaluationLib.evaluation import EvaluationError, peak_rss_mb
    if combination not in COMBINATIONS:
        raise EvaluationError(f"Unknown tool combination {combination!r}; choose one of {', '.join(COMBINATIONS)}")
    if int(budget) < 2:
        raise EvaluationError(f"The budget must be at least 2 interactions, got {budget}")
    session = Session(Annotator(case), int(budget))
    started = time.perf_counter()
    try:
        COMBINATIONS[combination](case, session, seed=seed, model=model, checkpoint=checkpoint)
    except SessionOver:
        pass
    seconds_total = time.perf_counter() - started
    latencies_ms = np.asarray(session.latencies_s, float) * 1000.0
    dice_values = [round(float(d), 4) for d in session.dice]
    return {
        "tool": combination, "protocol": "annotate3d", "volume": case.name, "budget": int(budget),
        "dice": dice_values, "actions": session.actions,
        "final_dice": round(float(session.dice[-1]), 4) if session.dice else None,
        "interactions_to_90": interactions_to(dice_values, pending=session.pending),
        "worst_drop": worst_drop(dice_values),
        "seconds_total": round(seconds_total, 2),
        "latency_ms_p50": round(float(np.percentile(latencies_ms, 50)), 1) if latencies_ms.size else None,
        "latency_ms_p95": round(float(np.percentile(latencies_ms, 95)), 1) if latencies_ms.size else None,
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }


def evaluate_annotate3d(volume, truth, label, combinations, budget, seed=0, model="tiny", checkpoint=None):
    """Each combination on a fresh copy of the case (its own scene); returns one result per combination."""
    from MVAEvaluationLib.evaluation import load_case
    results = []
    for combination in combinations:
        case = load_case(volume, truth, label)
        try:
            case.bridge.work_volume()  # the tools' volume checks (NaN voxels, one slice) before the session starts
            results.append(dict(run_annotate3d(case, combination, budget, seed, model, checkpoint), label=label))
        finally:
            case.close()
    return results

"""Smart Brush in 3D through the bridge: strokes on any slice view update one 3D preview; Apply writes it.

Every stroke (any orientation) trains the same `VolumeBrushModel`; the preview starts from the segment as it
is. When the retrained classifier's whole new proposal differs from the preview by a moderate amount, the preview
takes it (as ilastik's live prediction does), keeping what earlier strokes decided; a proposal that would change
much more (a flood after one dab on low-contrast CT) changes the preview only where the stroke asks for it
(`targeted_update`): a stroke adds the tissue it marks and what is connected to it, an erase stroke removes what
it marks and what is connected to it, nothing else moves. *Apply* writes the voxels the preview changed, as one
undo step.
"""
import copy
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from MVABridgeLib.errors import NothingToApplyError
from MVABridgeLib.tool_edits import EditResult, ToolEdits
from SmartBrushLib.algorithms import BACKGROUND
from SmartBrushLib.algorithms.corrections import CorrectionHistory
from SmartBrushLib.algorithms.errors import SmartBrushInputError
from SmartBrushLib.algorithms.volume_brush import VolumeBrushModel, bounding_box, connected_to


# One stroke changes at most a quarter of the preview (the part nearest the stroke): on low-contrast CT a
# retrained classifier can propose the whole body after one dab (effusion: 3D Dice 0.64 -> 0.03).
MAX_CHANGE_PER_STROKE = 0.25
# A proposal changing at most this fraction of the preview's voxels replaces it whole: a retrained classifier
# corrects the object everywhere (MNI white matter: targeted updates alone stalled at 3D Dice 0.87 while the
# classifier's own proposals reached 0.94); a larger change is a flood and only its part at the stroke is taken.
MAX_ADOPTED_CHANGE = 0.25
# What a proposal adds far from a positive stroke is one tissue with what it adds next to it only if its smoothed
# values spread at most this many times as widely: a far addition twice as spread holds other tissues (CT liver
# under 60 HU noise: the far part of one adoption was 10 % liver, its values spread 2.6 times the near part's;
# the far parts of good adoptions on the MNI variants spread 0.4 to 1.7 times their near parts).
MAX_FAR_SPREAD = 2.0
# ... judged once both parts hold this many voxels (a dab of radius 3 holds 29).
MIN_SPREAD_VOXELS = 20


def _dilated(stroke, iterations=1):
    """The stroke grown by `iterations` voxels (face neighbours), computed in its bounding box only (strokes are
    small, the ROI is not)."""
    out = np.zeros(stroke.shape, bool)
    box = bounding_box(stroke)
    if box is None:
        return out
    box = tuple(slice(max(b.start - iterations, 0), b.stop + iterations) for b in box)
    out[box] = ndimage.binary_dilation(stroke[box], iterations=iterations) | stroke[box]
    return out


def _untouched(region, near):
    """The pieces of `region` (bool) that hold no voxel of `near`."""
    return region & ~connected_to(region, near) if region.any() else region


def _asked(mask, proposed, stroke, positive):
    """What the stroke itself asks of `proposed`: positive, the stroke and the pieces of `proposed & ~mask` within
    two voxels of it; negative, the stroke and the pieces of `mask & ~proposed` within two voxels of it (the
    targeted update of `corrections.targeted_update`, computed near the stroke)."""
    change = (proposed & ~mask) if positive else (mask & ~proposed)
    return (connected_to(change, _dilated(stroke, 2)) | stroke) & (~mask if positive else mask)


def _ball_radius(voxels):
    """Radius (voxels) of a ball of `voxels` voxels."""
    return float(np.cbrt(3.0 * max(float(voxels), 1.0) / (4.0 * np.pi)))


def _within(stroke, radius):
    """Bool mask of the voxels within `radius` voxels of the stroke (Euclidean), found in a box around it."""
    out = np.zeros(stroke.shape, bool)
    box = bounding_box(stroke)
    if box is None:
        return out
    reach = int(np.ceil(radius)) + 1
    box = tuple(slice(max(b.start - reach, 0), b.stop + reach) for b in box)
    out[box] = ndimage.distance_transform_edt(~stroke[box]) <= radius
    return out


def _near_part(change, stroke, limit):
    """The voxels of `change` within the radius of a ball of `limit` voxels around the stroke, connected to the
    stroke there: at most about `limit` voxels, all of them near the stroke."""
    return connected_to(change & _within(stroke, _ball_radius(limit)), _dilated(stroke, 2))


def _mixes_tissues(values, far, near):
    """True when `far` (bool) spreads more than `MAX_FAR_SPREAD` times as widely in `values` as `near` does."""
    if np.count_nonzero(far) < MIN_SPREAD_VOXELS or np.count_nonzero(near) < MIN_SPREAD_VOXELS:
        return False
    return float(np.std(values[far])) > MAX_FAR_SPREAD * float(np.std(values[near]))


class VolumeCorrections(CorrectionHistory):
    """`CorrectionHistory` that can also adopt a whole proposal, keeping what earlier strokes decided; its targeted
    update works near the stroke (the ROI is millions of voxels, a stroke a few dozen)."""

    def update(self, proposed, stroke, positive, box=None, sure=None):
        """One stroke's targeted update (as `CorrectionHistory.update`): a positive stroke adds itself and the
        pieces of the proposal's additions it touches, a negative one removes itself and the pieces of the
        proposal's removals it touches; what earlier strokes decided stays unless the stroke touches it. A change
        larger than `max_change` times the mask in the box is cut to its part within the radius of a ball of that
        many voxels around the stroke; such a flood first keeps only what the classifier is sure of (`sure`, as in
        `adopt`; MNI white matter beside a 5 % contrast neighbour: a dab's flood was 19 % white matter).
        Returns the new mask.

        Raises
        ------
        SmartBrushInputError
            If `proposed` or `stroke` differ in shape from the mask's box.
        """
        proposed, stroke = np.asarray(proposed, bool), np.asarray(stroke, bool)
        box = tuple(slice(0, n) for n in self.mask.shape) if box is None else tuple(box)
        mask, rejected, accepted = self.mask[box], self.rejected[box], self.accepted[box]
        if proposed.shape != mask.shape or stroke.shape != mask.shape:
            raise SmartBrushInputError(f"proposed {proposed.shape} and stroke {stroke.shape} must have the shape "
                                       f"{mask.shape} of the mask's box")
        protected = _untouched(rejected if positive else accepted, _dilated(stroke))
        allowed = (proposed & ~protected) if positive else (proposed | protected)
        change = _asked(mask, allowed, stroke, positive)
        limit = None if self.max_change is None else self.max_change * np.count_nonzero(mask)
        if limit and np.count_nonzero(change) > limit and sure is not None:
            change = _asked(mask, (allowed & sure[0]) if positive else (allowed | ~sure[1]), stroke, positive)
        if limit and np.count_nonzero(change) > limit:
            change = _near_part(change, stroke, limit) | (stroke & (~mask if positive else mask))
        if positive:
            accepted |= change
            mask |= change
            rejected &= ~mask
        else:
            rejected |= change
            mask &= ~change
            accepted &= mask
        return self.mask

    def adopt(self, proposed, stroke, positive, box, max_change, sure=None, values=None):
        """Take the changes of `proposed` (for `box`) in the stroke's direction, wherever they are: a positive
        stroke adds the proposal's additions, a negative one removes its removals, except what earlier strokes
        removed or added beyond this stroke's reach; the stroke itself goes in (positive) or out (negative).

        A retrained classifier corrects the object far from the stroke too (that is why its proposal is
        adopted), but a positive stroke is no reason to remove anything, nor a negative one to add anything.
        Returns the new mask, or None (nothing changed) when that would change more than `max_change` times the
        mask's voxels, or when the proposal does not take the stroke up (it changes nothing next to the stroke
        beyond the stroke's own voxels): then its changes elsewhere are side effects of retraining, not what the
        stroke asked for.

        `sure` (a pair of bool arrays of the box, or None: sure everywhere) says where the classifier is sure the
        voxel is, and is not, the object: beyond the stroke's reach the proposal adds only the first and removes
        only the second (a retrained classifier's guesses about voxels unlike any stroke flip from stroke to
        stroke: on oblique MNI white matter a dab added 83 k voxels of grey matter 90 voxels away).
        """
        proposed, stroke = np.asarray(proposed, bool), np.asarray(stroke, bool)
        mask, rejected, accepted = self.mask[box], self.rejected[box], self.accepted[box]
        if proposed.shape != mask.shape or stroke.shape != mask.shape:
            raise SmartBrushInputError(f"proposed {proposed.shape} and stroke {stroke.shape} must have the shape "
                                       f"{mask.shape} of the mask's box")
        # what earlier strokes decided stays beyond the stroke's reach (the radius of a ball of max_change times
        # the object): a retrained classifier does not undo them far away, even inside one connected object
        beyond = ~_within(stroke, _ball_radius(self.max_change * np.count_nonzero(mask))) \
            if self.max_change else np.ones(mask.shape, bool)
        sure_object, sure_not = sure if sure is not None else (np.True_, np.True_)
        if positive:
            candidate = mask | (proposed & ~(beyond & (rejected | ~sure_object))) | stroke
        else:
            candidate = mask & (proposed | (beyond & (accepted | ~sure_not))) & ~stroke
        if np.count_nonzero(candidate ^ mask) > max_change * max(int(self.mask.sum()), 1):
            return None
        asked = _asked(mask, candidate, stroke, positive)
        if not (asked & ~stroke).any():
            return None
        if positive and values is not None and _mixes_tissues(values, candidate & ~mask & ~asked, asked | stroke):
            return None
        if positive:
            accepted |= asked
        else:
            rejected |= asked
        accepted &= candidate
        rejected &= ~candidate
        mask[...] = candidate
        return self.mask


@dataclass
class VolumePreview:
    """The 3D preview: the whole selected segment as it would be after Apply (bool (k, j, i)) and the ROI."""
    mask_kji: np.ndarray
    roi: tuple


class VolumeBrushLogic:
    """3D Smart Brush on the bridge's selected segment.

    Parameters
    ----------
    bridge : SegmentEditBridge
    seed : int
    margin_mm : float
        Context around the strokes that the 3D prediction covers (and grows by).
    max_adopted_change : float
        A new proposal changing at most this fraction of the preview replaces it (0: targeted updates only).
    """

    def __init__(self, bridge, seed=0, margin_mm=20.0, max_adopted_change=MAX_ADOPTED_CHANGE):
        self.max_adopted_change = float(max_adopted_change)
        self.bridge = bridge
        self.seed = int(seed)
        self.margin_mm = float(margin_mm)
        self._model = (None, None)  # (work volume, model)
        self.segment_labels = {}
        self.base = None  # the segment when the preview started
        self.history = None
        self.erased = None  # voxels under erase strokes since the preview started
        self.edits = ToolEdits("Smart Brush 3D")
        self.preview = None
        self._preview_of = None  # the bridge's edit_target() the preview was made for

    def _model_for(self, volume):
        if self._model[0] is not volume:
            self._model = (volume, VolumeBrushModel(volume.array, volume.spacing_kji, self.seed, self.margin_mm))
        return self._model[1]

    def _label(self, segment_id):
        return self.segment_labels.setdefault(segment_id, len(self.segment_labels) + 1)

    def add_stroke(self, plane, stroke_2d, erase=False):
        """Learn from a stroke drawn in `plane` (bool, plane shape) and update the 3D preview.

        Returns
        -------
        VolumePreview
        """
        volume = self.bridge.work_volume()
        self.bridge.checked_segment()
        segment_id = self.bridge.backend.selected_segment_id()
        label = self._label(segment_id)
        selected, _ = plane.mask_to_volume(np.asarray(stroke_2d, bool), volume.index_to_ras, volume.shape)
        if not selected.mask_kji.any():
            return self.preview
        model = self._model_for(volume)
        if self.base is not None and not self.bridge.is_edit_target(self._preview_of):
            self.preview, self.base = None, None  # made for another segment or volume: start from the segment
        if self.base is None:
            self.base = self.bridge.selected_mask().astype(bool)
            self.history = VolumeCorrections(self.base, MAX_CHANGE_PER_STROKE)
            self.erased = np.zeros(self.base.shape, bool)
            self._preview_of = self.bridge.edit_target()
        model.add_stroke(selected.start_kji, selected.mask_kji, BACKGROUND if erase else label)
        roi, predicted = model.predict(label)
        stroke = selected.full(volume.shape)
        if erase:
            self.erased |= stroke
        if roi is None:  # only erase strokes so far: nothing is predicted, the stroke itself is erased
            box = tuple(slice(a, a + n) for a, n in zip(selected.start_kji, selected.mask_kji.shape))
            predicted = self.history.mask[box] & ~selected.mask_kji
        else:
            box = tuple(slice(a, b) for a, b in roi)
        mask = None
        if roi is not None:
            mask = self.history.adopt(predicted, stroke[box], not erase, box, self.max_adopted_change, model.sure,
                                      model.smoothed())
        if mask is None:
            mask = self.history.update(predicted, stroke[box], positive=not erase, box=box,
                                       sure=model.sure if roi is not None else None)
        self.preview = VolumePreview(mask.copy(), roi)
        return self.preview

    def visible_mask(self):
        """The segment as the user sees it: the preview when there is one, else the segment."""
        if self.preview is not None:
            return self.preview.mask_kji
        return self.bridge.selected_mask().astype(bool)

    def apply(self):
        """Write what the preview changed as one undo step, under the edit contract: the additions, the user's
        erase strokes, and the tool's other removals only where it wrote them itself. Returns the EditResult."""
        if self.preview is None:
            raise NothingToApplyError("Nothing to apply: paint a stroke first")
        if not self.bridge.is_edit_target(self._preview_of):
            self.clear()
            raise NothingToApplyError("The selected segment or the source volume changed since the 3D preview was "
                                      "made: the preview was cleared, nothing was written; paint again")
        after, base, erased = self.preview.mask_kji, self.base, self.erased
        changed = after ^ base
        if not changed.any():
            self.preview, self.base, self.erased = None, None, None
            return EditResult(message="Nothing changed: the preview equals the segment")
        where = np.argwhere(changed)
        low, high = where.min(0), where.max(0) + 1
        box = tuple(slice(a, b) for a, b in zip(low, high))
        removed = base[box] & ~after[box]
        result = self.bridge.write_decision(self.edits, tuple(int(v) for v in low), add=after[box] & ~base[box],
                                            retract=removed & ~erased[box], erase=removed & erased[box])
        self.preview, self.base, self.erased = None, None, None  # kept when the write failed: Apply again
        return result

    def stroke_copy(self, bridge):
        """A copy that learns one stroke from `bridge` (e.g. arrays captured on the GUI thread) without changing
        this logic: it owns copies of everything `add_stroke` edits in place; `take_stroke` adopts its result."""
        worker = copy.copy(self)
        worker.bridge = bridge
        volume, model = self._model
        worker._model = (volume, copy.copy(model) if model is not None else None)  # stroke arrays are rebound
        worker.segment_labels = dict(self.segment_labels)
        worker.history = copy.deepcopy(self.history)
        worker.erased = None if self.erased is None else self.erased.copy()
        return worker

    def take_stroke(self, worker):
        """Adopt what a `stroke_copy` learned (the bridge, options and edits stay this logic's); returns the preview."""
        for name in ("_model", "segment_labels", "base", "history", "erased", "preview", "_preview_of"):
            setattr(self, name, getattr(worker, name))
        return self.preview

    def clear(self):
        """Forget every stroke and the preview."""
        if self._model[1] is not None:
            self._model[1].clear()
        self.preview, self.base, self._preview_of = None, None, None

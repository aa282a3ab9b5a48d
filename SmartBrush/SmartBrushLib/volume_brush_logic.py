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
from SmartBrushLib.algorithms.corrections import CorrectionHistory, targeted_update
from SmartBrushLib.algorithms.errors import SmartBrushInputError
from SmartBrushLib.algorithms.volume_brush import VolumeBrushModel, connected_to


# One stroke changes at most a quarter of the preview (the part nearest the stroke): on low-contrast CT a
# retrained classifier can propose the whole body after one dab (effusion: 3D Dice 0.64 -> 0.03).
MAX_CHANGE_PER_STROKE = 0.25
# A proposal changing at most this fraction of the preview's voxels replaces it whole: a retrained classifier
# corrects the object everywhere (MNI white matter: targeted updates alone stalled at 3D Dice 0.87 while the
# classifier's own proposals reached 0.94); a larger change is a flood and only its part at the stroke is taken.
MAX_ADOPTED_CHANGE = 0.25


def _dilated(stroke):
    """The stroke grown by one voxel (face neighbours), computed in its bounding box only (strokes are small)."""
    out = np.zeros(stroke.shape, bool)
    where = np.argwhere(stroke)
    if len(where) == 0:
        return out
    box = tuple(slice(max(int(a) - 1, 0), int(b) + 2) for a, b in zip(where.min(0), where.max(0)))
    out[box] = ndimage.binary_dilation(stroke[box]) | stroke[box]
    return out


def _untouched(region, near):
    """The pieces of `region` (bool) that hold no voxel of `near`."""
    return region & ~connected_to(region, near) if region.any() else region


class VolumeCorrections(CorrectionHistory):
    """`CorrectionHistory` that can also adopt a whole proposal, keeping what earlier strokes decided."""

    def adopt(self, proposed, stroke, positive, box, max_change):
        """Take `proposed` (for `box`) as the new mask, except the pieces earlier strokes added or removed (unless
        this stroke touches them), and with the stroke itself in (positive) or out (negative).

        Returns the new mask, or None (nothing changed) when that would change more than `max_change` times the
        mask's voxels.
        """
        proposed, stroke = np.asarray(proposed, bool), np.asarray(stroke, bool)
        mask, rejected, accepted = self.mask[box], self.rejected[box], self.accepted[box]
        if proposed.shape != mask.shape or stroke.shape != mask.shape:
            raise SmartBrushInputError(f"proposed {proposed.shape} and stroke {stroke.shape} must have the shape "
                                       f"{mask.shape} of the mask's box")
        near = _dilated(stroke)
        candidate = (proposed & ~_untouched(rejected, near)) | _untouched(accepted, near)
        candidate = candidate | stroke if positive else candidate & ~stroke
        if np.count_nonzero(candidate ^ mask) > max_change * max(int(self.mask.sum()), 1):
            return None
        asked = targeted_update(mask, candidate, stroke, positive) ^ mask  # what the stroke itself asked for
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
        label = self._label(self.bridge.backend.selected_segment_id())
        selected, _ = plane.mask_to_volume(np.asarray(stroke_2d, bool), volume.index_to_ras, volume.shape)
        if not selected.mask_kji.any():
            return self.preview
        model = self._model_for(volume)
        if self.base is None:
            self.base = self.bridge.selected_mask().astype(bool)
            self.history = VolumeCorrections(self.base, MAX_CHANGE_PER_STROKE)
            self.erased = np.zeros(self.base.shape, bool)
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
            mask = self.history.adopt(predicted, stroke[box], not erase, box, self.max_adopted_change)
        if mask is None:
            mask = self.history.update(predicted, stroke[box], positive=not erase, box=box)
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
        changed = self.preview.mask_kji ^ self.base
        after, base, erased = self.preview.mask_kji, self.base, self.erased
        self.preview, self.base, self.erased = None, None, None
        if not changed.any():
            return EditResult(message="Nothing changed: the preview equals the segment")
        where = np.argwhere(changed)
        low, high = where.min(0), where.max(0) + 1
        box = tuple(slice(a, b) for a, b in zip(low, high))
        removed = base[box] & ~after[box]
        return self.bridge.write_decision(self.edits, tuple(int(v) for v in low), add=after[box] & ~base[box],
                                          retract=removed & ~erased[box], erase=removed & erased[box])

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
        for name in ("_model", "segment_labels", "base", "history", "erased", "preview"):
            setattr(self, name, getattr(worker, name))
        return self.preview

    def clear(self):
        """Forget every stroke and the preview."""
        if self._model[1] is not None:
            self._model[1].clear()
        self.preview, self.base = None, None

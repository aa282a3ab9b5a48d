"""Smart Brush through the bridge: strokes train a classifier; its prediction is previewed, then applied.

Views aligned with a volume axis share one model per axis, so strokes on every slice of that orientation
train it; an oblique view gets a model of its own plane. Strokes are kept per segment until cleared:
a segment's strokes are foreground for it and "other class" examples for the other segments.

Writes follow the bridge's edit contract: *Apply* and *Predict 3D* add what the classifier predicts, remove the
voxels under erase strokes, and take back only the brush's own earlier voxels that it no longer predicts and
nobody edited since. Work drawn by the user or by other tools survives.
"""
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from MVABridgeLib.edit_backend import EditMode
from MVABridgeLib.errors import InvalidMaskError, NothingToApplyError
from MVABridgeLib.slice_geometry import VoxelPatch
from MVABridgeLib.tool_edits import ToolEdits
from SmartBrushLib.algorithms import BACKGROUND, SliceBrushModel, SmartBrushModel, uncertainty
from SmartBrushLib.algorithms.plane_corrections import PlaneCorrections
from SmartBrushLib.brush_options import BrushOptions


@dataclass
class BrushPreview:
    """The predicted mask of the selected segment on one plane."""
    plane: object
    mask_2d: np.ndarray
    uncertainty_2d: np.ndarray


class SmartBrushLogic:
    def __init__(self, bridge, options=None):
        self.bridge = bridge
        self.options = options or BrushOptions()
        self.models = {}
        self.segment_labels = {}  # segment id -> classifier label (>= 1)
        self.painted_box = {}  # id(axis model) -> (low, high) index of all strokes, slice-first layout
        self.positive_strokes = {}  # (plane key, segment id) -> bool 2D union of foreground strokes
        self.erase_strokes = {}  # (plane key, segment id) -> (plane, bool 2D erase strokes not applied yet)
        self.written = {}  # (plane key, segment id) -> bool 2D mask last applied on that plane
        self.corrections = {}  # (plane key, segment id) -> PlaneCorrections: the plane's preview, stroke by stroke
        self.edits = ToolEdits("Smart Brush")
        self.preview = None
        self._preview_for = None  # the bridge's edit_target() the preview was made for

    # --- models ---------------------------------------------------------------------------------------------
    def _label(self, segment_id):
        return self.segment_labels.setdefault(segment_id, len(self.segment_labels) + 1)

    def _model_for(self, plane):
        volume = self.bridge.work_volume()
        if plane.is_voxel_aligned:
            key = ("axis", plane.aligned_axis, id(volume))
            if key not in self.models:
                axis = plane.aligned_axis
                spacing = tuple(np.array(volume.spacing_kji)[[axis] + [a for a in range(3) if a != axis]])
                self.models[key] = SmartBrushModel(np.moveaxis(volume.array, axis, 0), spacing, self.options.seed)
        else:
            key = ("plane", plane.pixel_to_ras_matrix.tobytes(), plane.shape, id(volume))
            if key not in self.models:
                spacing = tuple(float(np.linalg.norm(plane.pixel_to_ras_matrix[:3, c])) for c in (1, 0))
                image = plane.sample(volume.array, volume.index_to_ras, order=0)  # the voxels its edits write
                self.models[key] = SliceBrushModel(image, spacing, self.options.seed)
        return self.models[key]

    def _to_moved(self, plane, mask_2d):
        """A plane-layout 2D mask as the (slice-first) volume mask of the axis model, and the stroke's
        (low, high) index in that layout (None when empty); bounds come from the one-slice block, not the volume."""
        volume = self.bridge.work_volume()
        selected, _ = plane.mask_to_volume(mask_2d, volume.index_to_ras, volume.shape)
        order = [plane.aligned_axis] + [a for a in range(3) if a != plane.aligned_axis]
        where = np.argwhere(selected.mask_kji)
        bounds = None
        if len(where):
            start = np.asarray(selected.start_kji)
            bounds = ((where.min(0) + start)[order], (where.max(0) + start)[order])
        return np.moveaxis(selected.full(volume.shape), plane.aligned_axis, 0), bounds

    def _from_moved_slice(self, plane, slice_2d):
        """A 2D array of the axis model's slice as a plane-layout 2D array."""
        return plane.voxel_slice_to_plane(slice_2d, self.bridge.work_volume().index_to_ras)

    # --- strokes --------------------------------------------------------------------------------------------
    def add_stroke(self, plane, stroke_2d, erase=False):
        """Train on a stroke drawn in `plane` (bool, plane shape); returns the new BrushPreview."""
        segment_id = self.bridge.backend.selected_segment_id()
        self.bridge.work_volume()  # validate volume and segment before anything changes
        self.bridge.checked_segment()
        label = BACKGROUND if erase else self._label(segment_id)
        model = self._model_for(plane)
        key = (self._plane_key(plane), segment_id)
        stroke_2d = np.asarray(stroke_2d, bool)
        if stroke_2d.shape != plane.shape:
            raise InvalidMaskError(f"Stroke shape {stroke_2d.shape} differs from the slice shape {plane.shape}")
        strokes = self.positive_strokes.get(key, np.zeros(plane.shape, bool))
        erased = self.erase_strokes.get(key, (plane, np.zeros(plane.shape, bool)))[1]
        strokes, erased = (strokes & ~stroke_2d, erased | stroke_2d) if erase else (strokes | stroke_2d, erased & ~stroke_2d)
        if plane.is_voxel_aligned:
            moved, bounds = self._to_moved(plane, stroke_2d)
            model.add_stroke(moved, label)
            if bounds is not None:
                low, high = bounds
                old = self.painted_box.get(id(model))
                self.painted_box[id(model)] = (low, high) if old is None else \
                    (np.minimum(old[0], low), np.maximum(old[1], high))
        else:
            model.add_stroke(stroke_2d, label)
        self.positive_strokes[key] = strokes
        self.erase_strokes[key] = (plane, erased)
        self.preview = self._corrected(plane, key, stroke_2d, erase)
        self._preview_for = self.bridge.edit_target()
        return self.preview

    def predict(self, plane):
        """Preview of the selected segment on `plane` (nothing is written).

        On a plane painted on (and with `connected_to_strokes`), the preview is what the strokes there made of it,
        each one changing only the region it landed in (`PlaneCorrections`); elsewhere, the classifier's prediction.
        """
        key = (self._plane_key(plane), self.bridge.backend.selected_segment_id())
        proposal, unsure = self._proposal(plane)
        corrections = self.corrections.get(key)
        mask = corrections.mask.copy() if corrections is not None else proposal
        self.preview = BrushPreview(plane, mask, unsure)
        self._preview_for = self.bridge.edit_target()
        return self.preview

    def _proposal(self, plane):
        """(the classifier's mask of the selected segment on `plane`, its uncertainty), kept to the pieces
        connected to the plane's strokes."""
        model = self._model_for(plane)
        label = self._label(self.bridge.backend.selected_segment_id())
        if plane.is_voxel_aligned:
            labels, probability = model.predict_slice(plane.slice_index)
            mask = self._from_moved_slice(plane, labels == label)
            unsure = self._from_moved_slice(plane, uncertainty(probability))
        else:
            labels, probability = model.predict()
            mask, unsure = labels == label, uncertainty(probability)
        mask = mask.astype(bool)
        key = (self._plane_key(plane), self.bridge.backend.selected_segment_id())
        strokes = self.positive_strokes.get(key)
        if self.options.connected_to_strokes and strokes is not None and strokes.any():
            pieces, _ = ndimage.label(mask)
            touched = np.unique(pieces[strokes & mask])
            mask = np.isin(pieces, touched[touched > 0])
        elif self.options.connected_to_strokes and self.erase_strokes.get(key, (None, np.zeros(1, bool)))[1].any():
            # only erase strokes on this plane: a correction that removes, it adds nothing the segment lacks here
            mask &= plane.sample(self.bridge.selected_mask(), self.bridge.work_volume().index_to_ras, order=0) > 0
        return mask, unsure

    def _corrected(self, plane, key, stroke_2d, erase):
        """The plane's preview after a stroke: the stroke changes only the region it lands in."""
        proposal, unsure = self._proposal(plane)
        if not self.options.connected_to_strokes:
            return BrushPreview(plane, proposal, unsure)
        corrections = self.corrections.setdefault(key, PlaneCorrections(plane.shape))
        model = self._model_for(plane)
        if plane.is_voxel_aligned:
            edges = self._from_moved_slice(plane, model.slice_edges(plane.slice_index))
        else:
            edges = model.edges()
        mask = corrections.update(proposal, stroke_2d, not erase, edges, unsure)
        return BrushPreview(plane, mask.copy(), unsure)

    @staticmethod
    def _plane_key(plane):
        return (plane.pixel_to_ras_matrix.round(6).tobytes(), plane.shape)

    def apply(self):
        """Write the preview into its plane as one undo step (edit contract: see the module docstring).

        Returns the bridge's EditResult (voxels added and removed, and a status message).
        """
        if self.preview is None:
            raise NothingToApplyError("Nothing to apply: paint a stroke first")
        if not self.bridge.is_edit_target(self._preview_for):
            self.preview = None
            raise NothingToApplyError("The selected segment or the source volume changed since the preview was "
                                      "made: the preview was cleared, nothing was written; paint again")
        plane = self.preview.plane
        key = (self._plane_key(plane), self.bridge.backend.selected_segment_id())
        erased = self.erase_strokes.get(key, (plane, None))[1]
        result = self.bridge.write_plane_decision(self.edits, plane, add_2d=self.preview.mask_2d, erase_2d=erased,
                                                  region_2d=self.written.get(key))
        self.written[key] = np.asarray(self.preview.mask_2d, bool)
        self.erase_strokes.pop(key, None)  # applied once: painting there again later is the user's newer decision
        return result

    def apply_volume(self, patch):
        """Write a `predict_volume` result as one undo step: its box gets the prediction, the erase strokes inside
        the box are removed, and only the brush's own unedited voxels it no longer predicts are taken back."""
        volume = self.bridge.work_volume()
        block = np.asarray(patch.mask_kji, bool)
        erase = self._erase_voxels(volume).full(volume.shape)[
            tuple(slice(a, a + n) for a, n in zip(patch.start_kji, block.shape))]
        result = self.bridge.write_decision(self.edits, patch.start_kji, add=block, retract=~block,
                                            erase=erase if erase.any() else None)
        segment_id = self.bridge.backend.selected_segment_id()
        self.erase_strokes = {key: value for key, value in self.erase_strokes.items() if key[1] != segment_id}
        return result

    def _erase_voxels(self, volume):
        """Every erase stroke of the selected segment as voxels of the work volume."""
        segment_id = self.bridge.backend.selected_segment_id()
        out = np.zeros(volume.shape, bool)
        for (_, stroke_segment), (plane, erased) in self.erase_strokes.items():
            if stroke_segment == segment_id and erased.any():
                selected, _ = plane.mask_to_volume(erased, volume.index_to_ras, volume.shape)
                k, j, i = selected.start_kji
                dk, dj, di = selected.mask_kji.shape
                out[k:k + dk, j:j + dj, i:i + di] |= selected.mask_kji
        return VoxelPatch((0, 0, 0), out)

    def assist_footprint(self, plane, footprint_2d, start_rc):
        """Edge-aware brush: the footprint restricted to pixels classified like the stroke's start."""
        model = self._model_for(plane)
        if plane.is_voxel_aligned:
            volume = self.bridge.work_volume()
            start_kji = plane.pixel_voxels_kji([start_rc], volume.index_to_ras)[0]
            moved_start = (start_kji[plane.aligned_axis],) + tuple(
                start_kji[a] for a in range(3) if a != plane.aligned_axis)
            restricted = model.assist(self._to_moved(plane, footprint_2d)[0], moved_start)
            return self._from_moved_slice(plane, restricted[plane.slice_index]).astype(bool)
        return model.assist(np.asarray(footprint_2d, bool), tuple(int(np.floor(v + 0.5)) for v in start_rc))

    def paint_assisted(self, plane, footprint_2d, start_rc, erase=False):
        """Assist mode: write the restricted footprint directly (one undo step) and learn from it."""
        restricted = self.assist_footprint(plane, footprint_2d, start_rc)
        self.add_stroke(plane, restricted, erase)
        return self.bridge.apply_slice_mask(plane, restricted, EditMode.REMOVE if erase else EditMode.ADD)

    def predict_volume(self, plane, margin_voxels=10, progress=None, cancel=None):
        """3D scope: predict inside a box around the strokes (axis model of `plane`); returns a VoxelPatch."""
        model, label, box = self.volume_box(plane, margin_voxels)
        labels, _ = model.predict_box(box, progress=progress, cancel=cancel)
        return self.volume_patch(plane, box, labels, label)

    def volume_box(self, plane, margin_voxels=10):
        """What `predict_volume` predicts: (axis model of `plane`, the selected segment's label, the box around
        the strokes in the model's slice-first layout). The compute worker predicts the same box elsewhere."""
        if not plane.is_voxel_aligned:
            raise ValueError("3D prediction needs a view aligned with the volume's axes")
        model = self._model_for(plane)
        label = self._label(self.bridge.backend.selected_segment_id())
        if id(model) not in self.painted_box:
            raise NothingToApplyError("Nothing painted yet in this orientation: paint a stroke in this view first")
        painted_low, painted_high = self.painted_box[id(model)]
        low = np.maximum(painted_low - margin_voxels, 0)
        high = np.minimum(painted_high + margin_voxels + 1, model.image.shape)
        return model, label, tuple((int(a), int(b)) for a, b in zip(low, high))

    def volume_patch(self, plane, box, labels, label):
        """The VoxelPatch (volume layout) of the predicted `labels` of `box` (slice-first layout) for `label`."""
        low = [a for a, _ in box]
        block_moved = np.asarray(labels) == label
        block = np.moveaxis(block_moved, 0, plane.aligned_axis)
        start = [0, 0, 0]
        start[plane.aligned_axis] = int(low[0])
        others = [a for a in range(3) if a != plane.aligned_axis]
        start[others[0]], start[others[1]] = int(low[1]), int(low[2])
        return VoxelPatch(tuple(start), block)

    def clear(self, segment_id=None):
        """Forget the strokes of one segment (or all); the voxels written so far are kept as they are."""
        if segment_id is None:
            self.painted_box.clear()
        keep = lambda key: segment_id is not None and key[1] != segment_id  # noqa: E731
        self.positive_strokes = {key: value for key, value in self.positive_strokes.items() if keep(key)}
        self.erase_strokes = {key: value for key, value in self.erase_strokes.items() if keep(key)}
        self.written = {key: value for key, value in self.written.items() if keep(key)}
        self.corrections = {key: value for key, value in self.corrections.items() if keep(key)}
        self.edits.forget(segment_id)  # what the brush wrote so far now counts as the user's
        for model in self.models.values():
            if segment_id is None:
                model.clear()
            elif segment_id in self.segment_labels:
                model.clear(self.segment_labels[segment_id])
        self.preview = None

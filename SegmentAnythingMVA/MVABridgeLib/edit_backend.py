"""One small interface for segment edits, with a headless and a Qt-effect implementation.

Tools never call ModifySegmentByLabelmap themselves. Every write goes through `SegmentEditBridge`, which saves
undo state once, builds modifiers limited to the block's extent and lets Slicer's segment editor logic apply
masking and overwrite settings.

The edit contract (CONTRIBUTING.md, "Edit contract"):

- A tool action changes only the voxels it decided about: `write_decision` adds what the tool predicts, removes
  what the user marked as "not this" (erase strokes, negative clicks) and takes back only voxels the same tool
  object wrote itself and nobody changed since (`tool_edits.ToolEdits`). It never clears a slice, a box or a
  region to make room; edits made in between, added or erased, survive.
- Other segments change only where the action added voxels, as the editor's overwrite setting says.
- One action is one undo step. A failed action leaves no trace: a write that fails half-way is rolled back
  (the selected segment's block restored) and nothing of the tool's memory changes.
- An action that changes nothing says so (`EditResult.message`).

`apply`, `apply_slice_mask` and `write_blocks` are plain writes (a user's own paint, imports, tests): they
write exactly what they are given.
"""
import enum

import numpy as np

import slicer

from MVABridgeLib.errors import InvalidMaskError, InvalidSegmentationError, InvalidVolumeError
from MVABridgeLib.image_data import array_view, geometry_of, oriented_image_from_array
from MVABridgeLib.segments import check_segment, segment_block
from MVABridgeLib.tool_edits import EditResult
from MVABridgeLib.volumes import check_source_array, check_source_node

EditorLogic = slicer.vtkSlicerSegmentEditorLogic


class EditMode(enum.Enum):
    """ADD and REMOVE change only the patch's True voxels; REPLACE makes the patch's block equal to the mask."""
    ADD = "add"
    REMOVE = "remove"
    REPLACE = "replace"


class EditBackend:
    """What the bridge needs from a segment editor. Images are vtkOrientedImageData in reference geometry."""

    def segmentation_node(self):
        raise NotImplementedError

    def selected_segment_id(self):
        raise NotImplementedError

    def source_volume_node(self):
        raise NotImplementedError

    def source_image(self):
        raise NotImplementedError

    def save_undo(self):
        raise NotImplementedError

    def modify(self, modifier, logic_mode, bypass_masking=False):
        """Apply `modifier` to the selected segment with a vtkSlicerSegmentEditorLogic.ModificationMode*.

        `bypass_masking` skips the editable area and the overwrite of other segments (not the intensity range).
        """
        raise NotImplementedError

    def forget_failed_action(self):
        """After a failed action was rolled back: drop the undo state saved for it, where the editor allows."""

    def segmentation_key(self):
        """What names the selected segmentation in a tool's edit memory (its node id; None without one)."""
        node = self.segmentation_node()
        return node.GetID() if node is not None else None


class LogicBackend(EditBackend):
    """Headless backend over vtkSlicerSegmentEditorLogic (slicer-core, or a script in the Slicer console)."""

    def __init__(self, logic):
        self.logic = logic

    @property
    def editor_node(self):
        return self.logic.GetSegmentEditorNode()

    def segmentation_node(self):
        return self.editor_node.GetSegmentationNode()

    def selected_segment_id(self):
        return self.editor_node.GetSelectedSegmentID()

    def source_volume_node(self):
        return self.editor_node.GetSourceVolumeNode()

    def source_image(self):
        if not self.logic.UpdateAlignedSourceVolume():
            return None
        return self.logic.GetAlignedSourceVolume()

    def save_undo(self):
        self.logic.SaveStateForUndo()

    def modify(self, modifier, logic_mode, bypass_masking=False):
        self.logic.ModifySegmentByLabelmap(self.segmentation_node(), self.selected_segment_id(),
                                           modifier, logic_mode, True, bool(bypass_masking))

    def forget_failed_action(self):
        # The segment is back to the saved state: undoing restores that state and leaves only a redo of
        # identical content, so the user's next undo goes to the step before the failed action.
        if self.logic.CanUndo():
            self.logic.Undo()


class EffectBackend(EditBackend):
    """Backend over a Qt `scriptedEffect` (desktop Slicer). Holds no Qt import itself."""

    def __init__(self, scripted_effect):
        self.effect = scripted_effect

    def segmentation_node(self):
        return self.effect.parameterSetNode().GetSegmentationNode()

    def selected_segment_id(self):
        return self.effect.parameterSetNode().GetSelectedSegmentID()

    def source_volume_node(self):
        return self.effect.parameterSetNode().GetSourceVolumeNode()

    def source_image(self):
        return self.effect.sourceVolumeImageData()

    def save_undo(self):
        self.effect.saveStateForUndo()

    def modify(self, modifier, logic_mode, bypass_masking=False):
        # qSlicerSegmentEditorAbstractEffect.ModificationMode uses the same order as the logic's enum;
        # modifySelectedSegmentByLabelmap(labelmap, mode, bypassMasking) (qSlicerSegmentEditorAbstractEffect.h).
        self.effect.modifySelectedSegmentByLabelmap(modifier, logic_mode, bool(bypass_masking))


class WorkVolume:
    """The source volume in the segmentation's reference geometry: what every tool computes on."""

    def __init__(self, array_kji, index_to_ras, name="source volume"):
        self.array = array_kji
        self.index_to_ras = np.asarray(index_to_ras, float)
        self.name = name

    @property
    def shape(self):
        return self.array.shape

    @property
    def spacing_kji(self):
        return tuple(np.linalg.norm(self.index_to_ras[:3, :3], axis=0)[::-1])

    def same_as(self, other):
        """True when `other` is this work volume or holds the same voxels on the same grid (a result computed on
        one may be written while the other is the source: nothing changed that the result was computed from)."""
        return other is self or (other is not None and other.shape == self.shape
                                 and np.array_equal(other.index_to_ras, self.index_to_ras)
                                 and np.array_equal(other.array, self.array))


class SegmentEditBridge:
    """Reads the source volume and the selected segment, writes masks, through one `EditBackend`."""

    def __init__(self, backend):
        self.backend = backend
        self._work_volume = None
        self._work_volume_stamp = None

    # --- reading ------------------------------------------------------------------------------------------
    def work_volume(self):
        """The source volume in reference geometry (cached until the source image changes).

        Raises
        ------
        InvalidVolumeError
            No source volume, or a volume that is 2D, vector, or has NaN voxels.
        InvalidSegmentationError
            No segmentation (closed or deleted), so no reference geometry to read the volume in.
        """
        volume_node = self.backend.source_volume_node()
        if volume_node is None:
            raise InvalidVolumeError("No source volume is selected")
        segmentation = self.backend.segmentation_node()
        # the aligned source depends on the volume and on the segmentation's reference geometry
        geometry = segmentation.GetSegmentation().GetConversionParameter(
            slicer.vtkSegmentationConverter.GetReferenceImageGeometryParameterName()) if segmentation else ""
        image_data = volume_node.GetImageData()
        stamp = (volume_node.GetID(), volume_node.GetMTime(), image_data.GetMTime() if image_data else 0, geometry)
        if stamp != self._work_volume_stamp:
            check_source_node(volume_node)  # a zero spacing aborts the process inside the editor's resampling
            image = self.backend.source_image()
            if (image is None or image.GetPointData().GetScalars() is None) and segmentation is None:
                raise InvalidSegmentationError("No segmentation is selected (it was closed or deleted); select or "
                                               "add a segmentation first")
            if image is None or image.GetPointData().GetScalars() is None:
                raise InvalidVolumeError(
                    f"Volume '{volume_node.GetName()}' has no image data in the segmentation's geometry")
            components = image.GetNumberOfScalarComponents()
            if components != 1:
                raise InvalidVolumeError(f"Volume '{volume_node.GetName()}' has {components} components per voxel "
                                         "(RGB/vector); convert it to a scalar volume first")
            shape, index_to_ras = geometry_of(image)
            array = array_view(image).copy()
            check_source_array(array, f"Volume '{volume_node.GetName()}'", index_to_ras)
            self._work_volume = WorkVolume(array, index_to_ras, volume_node.GetName())
            self._work_volume_stamp = stamp
        return self._work_volume

    def cached_work_volume(self):
        """The work volume read by the last `work_volume()` call, without touching VTK (for worker threads)."""
        if self._work_volume is None:
            raise InvalidVolumeError("The source volume has not been read yet")
        return self._work_volume

    def selected_mask(self):
        """The selected segment as a uint8 (k, j, i) mask in the work volume's grid."""
        return self.selected_block((0, 0, 0), self.work_volume().shape).astype(np.uint8)

    def selected_block(self, start_kji, shape_kji):
        """The selected segment in the block of `shape_kji` at `start_kji` of the work volume, bool (k, j, i)."""
        volume = self.work_volume()
        segmentation, segment_id = self.checked_segment()
        return segment_block(segmentation, segment_id, volume.shape, volume.index_to_ras, start_kji, shape_kji)

    def selected_key(self):
        """(segmentation key, segment id) selected now, what a tool's preview or object belongs to (segment ids
        repeat across segmentations)."""
        return self.backend.segmentation_key(), self.backend.selected_segment_id()

    def edit_target(self):
        """What a preview computed now is for: ((segmentation key, segment id), work volume)."""
        return self.selected_key(), self.work_volume()

    def is_edit_target(self, target):
        """True when `target` (from `edit_target`) is still where an edit goes: the same segment of the same
        segmentation, and a source volume with the same voxels on the same grid."""
        if target is None:
            return False
        key, volume = target
        now = self.work_volume()  # raises, with its reason, when there is no volume or segmentation to edit
        return key == self.selected_key() and volume.same_as(now)

    def checked_segment(self):
        """(segmentation node, selected segment id); raises InvalidSegmentationError if either is missing."""
        segmentation = self.backend.segmentation_node()
        segment_id = self.backend.selected_segment_id()
        if segmentation is not None and not segment_id and segmentation.GetSegmentation().GetNumberOfSegments():
            raise InvalidSegmentationError("No segment is selected")
        check_segment(segmentation, segment_id)
        return segmentation, segment_id

    # --- writing ------------------------------------------------------------------------------------------
    def apply(self, patch, mode=EditMode.ADD):
        """Write a VoxelPatch into the selected segment as one undo step.

        ADD / REMOVE change the patch's True voxels; REPLACE makes the whole block equal to the mask.
        Returns the number of voxels handed to Slicer (masking and overwrite settings may change fewer).

        Raises
        ------
        InvalidMaskError
            The block is not 3D or lies partly outside the volume. Nothing is changed.
        """
        mode = EditMode(mode)
        mask = np.asarray(patch.mask_kji, bool)
        if mode is EditMode.ADD:
            return self.write_blocks(patch.start_kji, add=mask)
        if mode is EditMode.REMOVE:
            return self.write_blocks(patch.start_kji, remove=mask)
        return self.write_blocks(patch.start_kji, add=mask, remove=~mask)

    def apply_slice_mask(self, plane, mask_2d, mode=EditMode.REPLACE):
        """Write a 2D mask drawn in `plane` (a SlicePlane) into the voxels that plane covers, as one undo step.

        REPLACE clears the plane's other voxels of the selected segment (on oblique planes: within the
        bounding box of the new mask and the segment's current cut).
        """
        volume = self.work_volume()
        mode = EditMode(mode)
        region = None
        if mode is EditMode.REPLACE and not plane.is_voxel_aligned:
            region = plane.sample(self.selected_mask(), volume.index_to_ras, order=0) > 0
        selected, covered = plane.mask_to_volume(mask_2d, volume.index_to_ras, volume.shape, region)
        if mode is EditMode.REPLACE:
            return self.write_blocks(selected.start_kji, add=selected.mask_kji, remove=covered.mask_kji & ~selected.mask_kji)
        return self.apply(selected, mode)

    def write_blocks(self, start_kji, add=None, remove=None):
        """Remove then add two same-shape (k, j, i) blocks placed at `start_kji`, as one undo step (plain write).

        Returns the number of voxels handed to Slicer. A failure half-way restores the block and re-raises.
        """
        start, shape = self._checked_blocks(start_kji, add, remove)
        if not any(block is not None and block.any() for block in (add, remove)):
            return 0
        before = self.selected_block(start, shape) if remove is not None and remove.any() else None
        self._write_atomically(start, add, remove, before)
        return int(add.sum() if add is not None else 0) + int(remove.sum() if remove is not None else 0)

    def write_decision(self, edits, start_kji, add=None, retract=None, erase=None):
        """Write one tool action under the edit contract (module docstring) as one undo step.

        Parameters
        ----------
        edits : tool_edits.ToolEdits
            The memory of the tool object making the action (what it wrote before).
        start_kji : where the blocks start in the work volume.
        add, retract, erase : bool (k, j, i) blocks of one shape, or None
            What the tool predicts; what it no longer predicts (removed only where it wrote it itself and nobody
            changed it since); what the user marked as "not this" (removed whoever drew it).

        Returns
        -------
        EditResult
            Voxels actually added and removed (masking may change fewer than asked) and a status message.
        """
        start, shape = self._checked_blocks(start_kji, add, retract, erase)
        if shape is None or 0 in shape:
            return EditResult(message="Nothing changed: the action covers no voxel of the volume")
        volume = self.work_volume()
        ledger = edits.ledger(self.backend.selected_segment_id(), volume, self.backend.segmentation_key())
        ledger.sync(self.selected_block)
        before = self.selected_block(start, shape)
        to_add, to_remove = ledger.plan(start, before, _as_bool(add), _as_bool(retract), _as_bool(erase))
        if not to_add.any() and not to_remove.any():
            return EditResult(message=_nothing_message(add, erase, before))
        self._write_atomically(start, to_add, to_remove, before)
        after = self.selected_block(start, shape)
        ledger.record(start, before, after)
        added, removed = int(np.count_nonzero(after & ~before)), int(np.count_nonzero(before & ~after))
        if not added and not removed:
            return EditResult(message="Nothing changed: the editable area or intensity range of the Segment "
                                      "Editor's masking settings excludes these voxels")
        return EditResult(added, removed)

    def write_plane_decision(self, edits, plane, add_2d=None, erase_2d=None, region_2d=None):
        """`write_decision` for an action drawn in a SlicePlane (2D masks of the plane's shape).

        The tool adds `add_2d`, the user's `erase_2d` is removed, and the tool retracts its own voxels of the plane
        that it no longer predicts: the whole voxel slice for voxel-aligned planes; on oblique planes the voxels
        under `add_2d`, `erase_2d` and `region_2d` (pass what the tool wrote there before).
        """
        volume = self.work_volume()
        masks = [np.zeros(plane.shape, bool) if m is None else np.asarray(m, bool) for m in (add_2d, erase_2d, region_2d)]
        for mask in masks:
            if mask.shape != plane.shape:
                raise InvalidMaskError(f"Mask shape {mask.shape} differs from the slice shape {plane.shape}")
        add_2d, erase_2d, region_2d = masks
        union = add_2d | erase_2d | region_2d
        selected, covered = plane.mask_to_volume(add_2d, volume.index_to_ras, volume.shape, union)
        erased, _ = plane.mask_to_volume(erase_2d, volume.index_to_ras, volume.shape, union)
        return self.write_decision(edits, selected.start_kji, add=selected.mask_kji,
                                   retract=covered.mask_kji & ~selected.mask_kji,
                                   erase=erased.mask_kji if erase_2d.any() else None)

    def foreign_mask(self, edits, start_kji, shape_kji):
        """Voxels of a block that hold someone else's decision for the selected segment (drawn by the user or
        another tool, or erased since `edits`' tool wrote them): what that tool must leave alone."""
        volume = self.work_volume()
        ledger = edits.ledger(self.backend.selected_segment_id(), volume, self.backend.segmentation_key())
        ledger.sync(self.selected_block)
        start = tuple(int(v) for v in start_kji)
        return ledger.foreign(start, self.selected_block(start, shape_kji))

    def _checked_blocks(self, start_kji, *blocks):
        """(start, shape) of same-shape 3D blocks inside the volume; raises InvalidMaskError otherwise."""
        volume = self.work_volume()
        self.checked_segment()
        start = np.asarray(start_kji, int)
        shape = None
        for block in blocks:
            if block is None:
                continue
            block = np.asarray(block)
            if block.ndim != 3:
                raise InvalidMaskError(f"A 3D (k, j, i) mask is needed, got {block.ndim} dimensions")
            if shape is not None and block.shape != shape:
                raise InvalidMaskError(f"Blocks of one action differ in shape: {shape} and {block.shape}")
            shape = block.shape
            if block.size and (np.any(start < 0) or np.any(start + block.shape > np.array(volume.shape))):
                raise InvalidMaskError(f"Mask block at {tuple(start)} of shape {block.shape} extends outside the "
                                       f"volume of shape {volume.shape}; nothing was changed")
        return tuple(int(v) for v in start), shape

    def _write_atomically(self, start, add, remove, before):
        """Save undo, remove, add; if a write raises, put the removed voxels back and re-raise."""
        volume = self.work_volume()
        extent_start_ijk = tuple(int(v) for v in start[::-1])
        self.backend.save_undo()
        removing = remove is not None and remove.any()
        try:
            if removing:
                self.backend.modify(self._modifier(remove, volume, extent_start_ijk), EditorLogic.ModificationModeRemove)
            if add is not None and add.any():
                self.backend.modify(self._modifier(add, volume, extent_start_ijk), EditorLogic.ModificationModeAdd)
        except Exception:
            self._roll_back(start, before if removing else None, volume, extent_start_ijk)
            raise

    def _roll_back(self, start, before, volume, extent_start_ijk):
        """Restore the selected segment's block to `before` (Remove changes only the selected segment; an Add
        that raised is taken as not applied)."""
        lost = before & ~self.selected_block(start, before.shape) if before is not None else None
        if lost is not None and lost.any():
            self.backend.modify(self._modifier(lost, volume, extent_start_ijk), EditorLogic.ModificationModeAdd,
                                bypass_masking=True)
            self.backend.forget_failed_action()
        # Nothing was written: the undo state saved for the action equals the segment, and the editor's history
        # treats it as the current state (vtkSegmentationHistory), so the next undo still goes to the step before.

    @staticmethod
    def _modifier(mask, volume, extent_start_ijk):
        return oriented_image_from_array(mask.astype(np.uint8), volume.index_to_ras, extent_start_ijk)


def _as_bool(block):
    return None if block is None else np.asarray(block, bool)


def _nothing_message(add, erase, before):
    """Why an action that was allowed to change nothing changed nothing."""
    adds = add is not None and np.asarray(add).any()
    if adds and not (np.asarray(add, bool) & ~before).any():
        return "Nothing changed: the segment already holds these voxels"
    if not adds and erase is not None and not (np.asarray(erase, bool) & before).any():
        return "Nothing changed: the segment has no voxels there to remove"
    return "Nothing changed: the voxels this action would change were drawn or erased by you (or another tool)"

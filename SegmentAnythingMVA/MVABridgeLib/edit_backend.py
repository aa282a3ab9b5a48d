"""One small interface for segment edits, with a headless and a Qt-effect implementation.

Tools never call ModifySegmentByLabelmap themselves: they hand a `VoxelPatch` (or a 2D mask in a
`SlicePlane`) to `SegmentEditBridge.apply`, which saves undo state once, builds a modifier limited to the
patch's extent and lets Slicer's segment editor logic apply masking and overwrite settings.
"""
import enum

import numpy as np

import slicer

from MVABridgeLib.errors import InvalidMaskError, InvalidSegmentationError, InvalidVolumeError
from MVABridgeLib.image_data import array_view, geometry_of, oriented_image_from_array
from MVABridgeLib.segments import check_segment, segment_mask
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

    def modify(self, modifier, logic_mode):
        """Apply `modifier` to the selected segment with a vtkSlicerSegmentEditorLogic.ModificationMode*."""
        raise NotImplementedError


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

    def modify(self, modifier, logic_mode):
        self.logic.ModifySegmentByLabelmap(self.segmentation_node(), self.selected_segment_id(),
                                           modifier, logic_mode, True, False)


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

    def modify(self, modifier, logic_mode):
        # qSlicerSegmentEditorAbstractEffect.ModificationMode uses the same order as the logic's enum.
        self.effect.modifySelectedSegmentByLabelmap(modifier, logic_mode)


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
        volume = self.work_volume()
        segmentation, segment_id = self.checked_segment()
        return segment_mask(segmentation, segment_id, volume.shape, volume.index_to_ras)

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
        """Remove then add two same-shape (k, j, i) blocks placed at `start_kji`, as one undo step."""
        volume = self.work_volume()
        self.checked_segment()
        start = np.asarray(start_kji, int)
        blocks = [b for b in (add, remove) if b is not None]
        for block in blocks:
            if block.ndim != 3:
                raise InvalidMaskError(f"A 3D (k, j, i) mask is needed, got {block.ndim} dimensions")
            if block.size and (np.any(start < 0) or np.any(start + block.shape > np.array(volume.shape))):
                raise InvalidMaskError(f"Mask block at {tuple(start)} of shape {block.shape} extends outside the "
                                       f"volume of shape {volume.shape}; nothing was changed")
        if not any(block.any() for block in blocks):
            return 0
        extent_start_ijk = tuple(int(v) for v in start[::-1])
        self.backend.save_undo()
        if remove is not None and remove.any():
            self.backend.modify(self._modifier(remove, volume, extent_start_ijk), EditorLogic.ModificationModeRemove)
        if add is not None and add.any():
            self.backend.modify(self._modifier(add, volume, extent_start_ijk), EditorLogic.ModificationModeAdd)
        return int(add.sum() if add is not None else 0) + int(remove.sum() if remove is not None else 0)

    @staticmethod
    def _modifier(mask, volume, extent_start_ijk):
        return oriented_image_from_array(mask.astype(np.uint8), volume.index_to_ras, extent_start_ijk)

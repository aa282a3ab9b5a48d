"""Edits through the bridge honour the segment editor's masking, overwrite and undo, as Slicer's editor does."""
import numpy as np
import pytest
from conftest import GEOMETRIES, add_segmentation

import slicer
from MVABridgeLib.edit_backend import EditMode
from MVABridgeLib.editor_session import SegmentEditorSession
from MVABridgeLib.errors import InvalidMaskError, InvalidSegmentationError, InvalidVolumeError, OutsideVolumeError
from MVABridgeLib.segments import replace_segment_from_mask, segment_mask_in_volume
from MVABridgeLib.slice_geometry import SlicePlane, VoxelPatch
from MVABridgeLib.volumes import add_volume_node, check_source_array

EditorNode = slicer.vtkMRMLSegmentEditorNode
SegmentationNode = slicer.vtkMRMLSegmentationNode
MATRIX = GEOMETRIES["lps_anisotropic"]


@pytest.fixture
def two_segments(headless):
    image = np.zeros((6, 8, 10), np.int16)
    image[:, :, 5:] = 100
    volume = add_volume_node(headless.scene, image, MATRIX)
    segmentation, ids = add_segmentation(headless, volume, ("A", "B"))
    session = SegmentEditorSession(volume, segmentation, ids[0], headless.scene)
    return volume, segmentation, ids, session


def box(shape, k, j, i):
    mask = np.zeros(shape, bool)
    mask[k, j, i] = True
    return mask


def read(segmentation, segment_id, volume):
    return segment_mask_in_volume(segmentation, segment_id, volume).astype(bool)


def test_add_remove_replace_and_undo_redo(two_segments):
    volume, segmentation, (a, _), session = two_segments
    shape = (6, 8, 10)
    session.bridge.apply(VoxelPatch((0, 0, 0), box(shape, slice(1, 3), slice(2, 5), slice(1, 8))), EditMode.ADD)
    assert read(segmentation, a, volume).sum() == 2 * 3 * 7
    # a local patch removes only its own voxels
    session.bridge.apply(VoxelPatch((1, 2, 1), np.ones((1, 3, 2), bool)), EditMode.REMOVE)
    assert read(segmentation, a, volume).sum() == 42 - 6
    # replace makes the block equal to the mask and leaves the rest alone
    block = np.zeros((1, 8, 10), bool)
    block[0, 0, 0] = True
    session.bridge.apply(VoxelPatch((2, 0, 0), block), EditMode.REPLACE)
    result = read(segmentation, a, volume)
    assert result[2].sum() == 1 and result[2, 0, 0] and result[1].sum() == 21 - 6
    assert session.undo()
    assert read(segmentation, a, volume).sum() == 36
    assert session.undo() and read(segmentation, a, volume).sum() == 42
    assert session.redo() and read(segmentation, a, volume).sum() == 36


def test_overwrite_all_segments_takes_voxels_from_others_and_overwrite_none_does_not(two_segments):
    volume, segmentation, (a, b), session = two_segments
    shape = (6, 8, 10)
    session.bridge.apply(VoxelPatch((0, 0, 0), box(shape, slice(0, 6), slice(0, 4), slice(0, 10))), EditMode.ADD)
    session.select_segment(b)
    overlap = box(shape, slice(0, 6), slice(2, 6), slice(0, 10))
    session.bridge.apply(VoxelPatch((0, 0, 0), overlap), EditMode.ADD)
    assert read(segmentation, a, volume).sum() == 6 * 2 * 10
    assert session.undo()
    session.editor_node.SetOverwriteMode(EditorNode.OverwriteNone)
    session.bridge.apply(VoxelPatch((0, 0, 0), overlap), EditMode.ADD)
    assert read(segmentation, a, volume).sum() == 6 * 4 * 10
    assert read(segmentation, b, volume).sum() == 6 * 4 * 10


def test_edit_allowed_inside_a_segment_and_intensity_range_clip_the_edit(two_segments):
    volume, segmentation, (a, b), session = two_segments
    shape = (6, 8, 10)
    inside = box(shape, slice(0, 6), slice(0, 8), slice(0, 3))
    replace_segment_from_mask(segmentation, a, inside, MATRIX)
    session.select_segment(b)
    session.editor_node.SetOverwriteMode(EditorNode.OverwriteNone)
    session.editor_node.SetMaskMode(SegmentationNode.EditAllowedInsideSingleSegment)
    session.editor_node.SetMaskSegmentID(a)
    everything = np.ones(shape, bool)
    session.bridge.apply(VoxelPatch((0, 0, 0), everything), EditMode.ADD)
    assert np.array_equal(read(segmentation, b, volume), inside)
    session.undo()
    session.editor_node.SetMaskMode(SegmentationNode.EditAllowedEverywhere)
    session.editor_node.SetSourceVolumeIntensityMask(True)
    session.editor_node.SetSourceVolumeIntensityMaskRange(50, 200)
    session.bridge.apply(VoxelPatch((0, 0, 0), everything), EditMode.ADD)
    written = read(segmentation, b, volume)
    assert written[:, :, 5:].all() and not written[:, :, :5].any()


def test_replace_on_a_slice_changes_only_that_slice(two_segments):
    volume, segmentation, (a, _), session = two_segments
    everything = np.ones((6, 8, 10), bool)
    replace_segment_from_mask(segmentation, a, everything, MATRIX)
    plane = SlicePlane.for_anatomical_axis("axial", 2, MATRIX, (6, 8, 10))
    mask_2d = np.zeros(plane.shape, bool)
    mask_2d[:2, :3] = True
    session.bridge.apply_slice_mask(plane, mask_2d, EditMode.REPLACE)
    result = read(segmentation, a, volume)
    assert result[2].sum() == 6
    assert result[[0, 1, 3, 4, 5]].all()
    session.undo()
    assert read(segmentation, a, volume).all()


# --- bad input: a clear exception and no segment changes --------------------------------------------------
def snapshot(segmentation, ids, volume):
    return [read(segmentation, segment_id, volume).copy() for segment_id in ids]


def test_patch_outside_the_volume_raises_and_changes_nothing(two_segments):
    volume, segmentation, ids, session = two_segments
    replace_segment_from_mask(segmentation, ids[0], box((6, 8, 10), 1, slice(None), slice(None)), MATRIX)
    before = snapshot(segmentation, ids, volume)
    with pytest.raises(InvalidMaskError, match="outside"):
        session.bridge.apply(VoxelPatch((5, 0, 0), np.ones((2, 8, 10), bool)), EditMode.REPLACE)
    with pytest.raises(InvalidMaskError, match="differs"):
        plane = SlicePlane.for_anatomical_axis("axial", 1, MATRIX, (6, 8, 10))
        session.bridge.apply_slice_mask(plane, np.ones((3, 3), bool))
    with pytest.raises(OutsideVolumeError):
        SlicePlane.for_anatomical_axis("axial", 6, MATRIX, (6, 8, 10))
    after = snapshot(segmentation, ids, volume)
    assert all(np.array_equal(x, y) for x, y in zip(before, after))
    assert not session.logic.CanUndo()


def test_volume_with_nan_voxels_raises_before_any_edit(headless):
    image = np.zeros((4, 5, 6), np.float32)
    image[1, 2, 3] = np.nan
    volume = add_volume_node(headless.scene, image, MATRIX)
    segmentation, (a,) = add_segmentation(headless, volume)
    session = SegmentEditorSession(volume, segmentation, a, headless.scene)
    with pytest.raises(InvalidVolumeError, match="1 NaN"):
        session.bridge.apply(VoxelPatch((0, 0, 0), np.ones((4, 5, 6), bool)))
    assert read(segmentation, a, volume).sum() == 0


@pytest.mark.parametrize("shape, message", [((1, 5, 6), "single slice"), ((5, 6), "2 dimensions"),
                                            ((3, 4, 5, 2), "4D")])
def test_volumes_that_are_not_3d_scalar_are_rejected(shape, message):
    with pytest.raises(InvalidVolumeError, match=message):
        check_source_array(np.zeros(shape))


def test_single_slice_and_rgb_volume_nodes_are_rejected_by_the_editor(headless):
    single = add_volume_node(headless.scene, np.zeros((1, 5, 6), np.int16), MATRIX)
    segmentation, (a,) = add_segmentation(headless, single)
    session = SegmentEditorSession(single, segmentation, a, headless.scene)
    with pytest.raises(InvalidVolumeError, match="single slice"):
        session.bridge.work_volume()
    rgb = headless.scene.AddNewNodeByClass("vtkMRMLVectorVolumeNode", "RGB")
    import vtk
    image = vtk.vtkImageData()
    image.SetDimensions(6, 5, 4)
    image.AllocateScalars(vtk.VTK_UNSIGNED_CHAR, 3)
    rgb.SetAndObserveImageData(image)
    from MVABridgeLib.volumes import volume_array
    with pytest.raises(InvalidVolumeError, match="3 components"):
        volume_array(rgb)


def test_missing_volume_segmentation_or_segment_raise_clear_errors(headless):
    volume = add_volume_node(headless.scene, np.zeros((4, 5, 6), np.int16), MATRIX)
    empty = headless.scene.AddNewNodeByClass("vtkMRMLSegmentationNode")
    with pytest.raises(InvalidVolumeError, match="No source volume"):
        SegmentEditorSession(None, empty, "x", headless.scene)
    with pytest.raises(InvalidSegmentationError, match="no segments"):
        SegmentEditorSession(volume, empty, "x", headless.scene)
    segmentation, (a,) = add_segmentation(headless, volume)
    with pytest.raises(InvalidSegmentationError, match="no segment with id"):
        SegmentEditorSession(volume, segmentation, "missing", headless.scene)


class ScriptedEffectStandIn:
    """The few calls of Slicer's qSlicerSegmentEditorAbstractEffect that EffectBackend makes, answered by the
    real segment editor logic of the scene (the Qt class itself cannot run here)."""

    def __init__(self, logic):
        self.logic = logic

    def parameterSetNode(self):
        return self.logic.GetSegmentEditorNode()

    def sourceVolumeImageData(self):
        self.logic.UpdateAlignedSourceVolume()
        return self.logic.GetAlignedSourceVolume()

    def saveStateForUndo(self):
        self.logic.SaveStateForUndo()

    def modifySelectedSegmentByLabelmap(self, modifier, mode, bypassMasking=False):
        # qSlicerSegmentEditorAbstractEffect.h: modifySelectedSegmentByLabelmap(labelmap, mode, bypassMasking = false)
        node = self.logic.GetSegmentEditorNode()
        self.logic.ModifySegmentByLabelmap(node.GetSegmentationNode(), node.GetSelectedSegmentID(), modifier, mode,
                                           True, bool(bypassMasking))


def test_effect_backend_edits_like_the_logic_backend(two_segments):
    from MVABridgeLib.edit_backend import EffectBackend, SegmentEditBridge
    volume, segmentation, (a, b), session = two_segments
    effect_bridge = SegmentEditBridge(EffectBackend(ScriptedEffectStandIn(session.logic)))
    plane = SlicePlane.for_anatomical_axis("coronal", 4, MATRIX, (6, 8, 10))
    mask_2d = np.zeros(plane.shape, bool)
    mask_2d[1:4, 2:7] = True
    effect_bridge.apply_slice_mask(plane, mask_2d, EditMode.REPLACE)
    via_effect = read(segmentation, a, volume)
    session.undo()
    assert read(segmentation, a, volume).sum() == 0
    session.bridge.apply_slice_mask(plane, mask_2d, EditMode.REPLACE)
    assert np.array_equal(read(segmentation, a, volume), via_effect) and via_effect.sum() == mask_2d.sum()
    assert np.array_equal(effect_bridge.work_volume().array, session.bridge.work_volume().array)

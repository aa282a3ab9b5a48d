"""`EditBackend` over trame-slicer's SegmentationEditor, and a read-only snapshot bridge for worker threads.

Writes go through trame-slicer's `SegmentModifier.apply_labelmap`, which calls slicer-core's
vtkSlicerSegmentEditorLogic.ModifySegmentByLabelmap (masking, overwrite and intensity range apply) and
pushes trame-slicer's undo command. Callers wrap one tool action in `one_undo_step` so that a REPLACE
(a remove and an add) is a single undo entry.
"""
from contextlib import contextmanager

import numpy as np
import slicer
from MVABridgeLib.edit_backend import EditBackend, SegmentEditBridge
from MVABridgeLib.errors import BridgeError

EditorLogic = slicer.vtkSlicerSegmentEditorLogic


class NoActiveSegmentationError(BridgeError):
    """The web editor has no volume/segmentation loaded yet."""


class TrameEditBackend(EditBackend):
    """What SegmentEditBridge needs, read from a trame_slicer.core.SegmentationEditor."""

    def __init__(self, segmentation_editor):
        self.editor = segmentation_editor

    def _modifier(self):
        modifier = self.editor.active_segment_modifier
        if modifier is None:
            raise NoActiveSegmentationError("Open a case first: no volume and segmentation are loaded")
        return modifier

    def segmentation_node(self):
        return self.editor.active_segmentation_node

    def selected_segment_id(self):
        return self.editor.active_segment_id

    def source_volume_node(self):
        return self.editor.active_volume_node

    def source_image(self):
        return self._modifier().get_source_image_data()

    def save_undo(self):
        # trame-slicer's apply_labelmap records the undo state of each write itself.
        pass

    def modify(self, modifier, logic_mode):
        from trame_slicer.segmentation import ModificationMode
        mode = {EditorLogic.ModificationModeAdd: ModificationMode.Add,
                EditorLogic.ModificationModeRemove: ModificationMode.Remove,
                EditorLogic.ModificationModeSet: ModificationMode.Set}[logic_mode]
        # Only the modifier's own extent is touched (it is a sub-block of the reference grid).
        self._modifier().apply_labelmap(modifier, modification_mode=mode, modifier_extent=list(modifier.GetExtent()))


@contextmanager
def one_undo_step(segmentation_editor, text=""):
    """Group every write inside the block into one entry of trame-slicer's undo stack."""
    modifier = segmentation_editor.active_segment_modifier
    if modifier is None or segmentation_editor.undo_stack is None:
        yield
        return
    with modifier.group_undo_commands(text):
        yield


class SnapshotBridge(SegmentEditBridge):
    """A bridge whose reads come from arrays captured on the main thread; it cannot write.

    Tool logics compute previews in a worker thread through it (VTK and MRML are not thread-safe), then
    the result is written on the main loop through the live bridge.
    """

    def __init__(self, live_bridge, with_mask=True):
        super().__init__(live_bridge.backend)
        self._volume = live_bridge.work_volume()
        self._mask = live_bridge.selected_mask() if with_mask else None

    def work_volume(self):
        return self._volume

    def selected_mask(self):
        if self._mask is None:
            return np.zeros(self._volume.shape, np.uint8)
        return self._mask

    def write_blocks(self, start_kji, add=None, remove=None):
        raise RuntimeError("A snapshot bridge is read-only: write on the main loop through the live bridge")

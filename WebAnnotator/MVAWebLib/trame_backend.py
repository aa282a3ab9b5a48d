"""`EditBackend` over trame-slicer's SegmentationEditor (jobs read through MVAControllersLib.snapshot).

Writes go through trame-slicer's `SegmentModifier.apply_labelmap`, which calls slicer-core's
vtkSlicerSegmentEditorLogic.ModifySegmentByLabelmap (masking, overwrite and intensity range apply) and
pushes trame-slicer's undo command. Callers wrap one tool action in `one_undo_step` so that its remove and add
(and a rollback after a failed write) are a single undo entry.
"""
from contextlib import contextmanager

import slicer
from MVABridgeLib.edit_backend import EditBackend
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

    def modify(self, modifier, logic_mode, bypass_masking=False):
        from trame_slicer.segmentation import ModificationMode
        mode = {EditorLogic.ModificationModeAdd: ModificationMode.Add,
                EditorLogic.ModificationModeRemove: ModificationMode.Remove,
                EditorLogic.ModificationModeSet: ModificationMode.Set}[logic_mode]
        # Only the modifier's own extent is touched (it is a sub-block of the reference grid).
        self._modifier().apply_labelmap(modifier, modification_mode=mode, modifier_extent=list(modifier.GetExtent()),
                                        do_bypass_masking=bool(bypass_masking))


@contextmanager
def one_undo_step(segmentation_editor, text=""):
    """Group every write inside the block into one entry of trame-slicer's undo stack."""
    modifier = segmentation_editor.active_segment_modifier
    if modifier is None or segmentation_editor.undo_stack is None:
        yield
        return
    with modifier.group_undo_commands(text):
        yield

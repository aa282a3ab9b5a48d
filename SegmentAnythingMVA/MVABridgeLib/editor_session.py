"""Scripting entry point: segment editing on given nodes, in the Slicer Python console or headless.

    session = SegmentEditorSession(volume_node, segmentation_node, segment_id)
    session.bridge.apply_slice_mask(plane, mask_2d)
    session.undo()
"""
import slicer

from MVABridgeLib.edit_backend import LogicBackend, SegmentEditBridge
from MVABridgeLib.errors import InvalidSegmentationError, InvalidVolumeError
from MVABridgeLib.segments import check_segment


class SegmentEditorSession:
    """A vtkSlicerSegmentEditorLogic with its own editor node, wired to a volume, segmentation and segment.

    Its undo history is its own (separate from a Segment Editor widget's). Masking and overwrite settings are
    on `editor_node` (vtkMRMLSegmentEditorNode).
    """

    def __init__(self, volume_node, segmentation_node, segment_id, scene=None, application_logic=None):
        if volume_node is None:
            raise InvalidVolumeError("No source volume is selected")
        if segmentation_node is None:
            raise InvalidSegmentationError("No segmentation is selected")
        check_segment(segmentation_node, segment_id)
        scene = scene or segmentation_node.GetScene() or slicer.mrmlScene
        self.scene = scene
        self.editor_node = scene.AddNewNodeByClass("vtkMRMLSegmentEditorNode")
        if self.editor_node is None:
            raise RuntimeError("vtkMRMLSegmentEditorNode is not registered: set the scene on a "
                               "vtkSlicerSegmentationsModuleLogic first (see headless_scene.create_headless_scene)")
        if segmentation_node.GetDisplayNode() is None:
            segmentation_node.CreateDefaultDisplayNodes()
        self.logic = slicer.vtkSlicerSegmentEditorLogic()
        self.logic.SetMRMLScene(scene)
        if application_logic is not None:
            self.logic.SetMRMLApplicationLogic(application_logic)
        # Order matters: the source volume is ignored until the segmentation is set.
        self.logic.SetSegmentEditorNode(self.editor_node)
        self.logic.SetSegmentationNode(segmentation_node)
        self.logic.SetSourceVolumeNode(volume_node)
        self.logic.SetCurrentSegmentID(segment_id)
        self.bridge = SegmentEditBridge(LogicBackend(self.logic))

    @property
    def segment_id(self):
        return self.editor_node.GetSelectedSegmentID()

    def select_segment(self, segment_id):
        check_segment(self.editor_node.GetSegmentationNode(), segment_id)
        self.logic.SetCurrentSegmentID(segment_id)

    def undo(self):
        if not self.logic.CanUndo():
            return False
        self.logic.Undo()
        return True

    def redo(self):
        if not self.logic.CanRedo():
            return False
        self.logic.Redo()
        return True

    def close(self):
        if self.editor_node is not None and self.editor_node.GetScene() is not None:
            self.scene.RemoveNode(self.editor_node)
        self.editor_node = None

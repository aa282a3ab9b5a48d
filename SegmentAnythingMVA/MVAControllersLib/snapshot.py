"""A read-only bridge over arrays captured on the GUI thread, for tool logic running in a job."""
import numpy as np

from MVABridgeLib.edit_backend import EditBackend, SegmentEditBridge


class SnapshotBackend(EditBackend):
    """Answers what tool logic asks during compute (segment id, volume identity) without MRML calls."""

    def __init__(self, segment_id, volume_token, segmentation_key=None):
        self._segment_id = segment_id
        self.volume_token = volume_token
        self._segmentation_key = segmentation_key

    def selected_segment_id(self):
        return self._segment_id

    def segmentation_key(self):
        return self._segmentation_key

    def source_volume_node(self):
        raise RuntimeError("A job must not read MRML nodes: pass what it needs from the GUI thread")

    segmentation_node = source_volume_node
    source_image = source_volume_node

    def save_undo(self):
        raise RuntimeError("A snapshot bridge is read-only: write on the GUI thread through the live bridge")

    modify = save_undo


class SnapshotBridge(SegmentEditBridge):
    """Work volume (and optionally the selected segment) read now; reads later come from these arrays."""

    def __init__(self, live_bridge, with_mask=False):
        volume = live_bridge.work_volume()
        segment_id = live_bridge.backend.selected_segment_id()
        node = live_bridge.backend.source_volume_node()
        super().__init__(SnapshotBackend(segment_id, (node.GetID(), node.GetMTime()),
                                         live_bridge.backend.segmentation_key()))
        self._volume = volume
        self._mask = live_bridge.selected_mask() if with_mask else None

    def work_volume(self):
        return self._volume

    cached_work_volume = work_volume

    def selected_mask(self):
        return self._mask if self._mask is not None else np.zeros(self._volume.shape, np.uint8)

    def selected_block(self, start_kji, shape_kji):
        """The captured segment in a block (bool); all False when the snapshot holds no segment."""
        block = tuple(slice(int(a), int(a) + int(n)) for a, n in zip(start_kji, shape_kji))
        return self.selected_mask()[block].astype(bool)

    def checked_segment(self):
        return None, self.backend.selected_segment_id()

    def write_blocks(self, start_kji, add=None, remove=None):
        raise RuntimeError("A snapshot bridge is read-only: write on the GUI thread through the live bridge")

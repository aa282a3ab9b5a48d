"""Workflow cases in an MRML scene: open a case as a volume plus a segmentation with the project's labels,
and turn the edited segmentation back into a labelmap to save or submit (desktop Slicer and headless)."""
from dataclasses import dataclass

import numpy as np

from MVABridgeLib.segments import replace_segment_from_mask, segment_mask_in_volume
from MVABridgeLib.volumes import add_volume_node
from MVAWorkflowLib.errors import NotFoundError
from MVAWorkflowLib.storage import Labelmap


@dataclass
class OpenCase:
    """A case loaded into a scene; `segments` maps each label value to its segment id."""
    case_id: int
    version: int
    volume_node: object
    segmentation_node: object
    segments: dict

    def labelmap(self):
        """The segmentation as a Labelmap on the case volume's grid (later segments win where they overlap)."""
        volume = self.volume_node
        shape = volume.GetImageData().GetDimensions()[::-1]
        array = np.zeros(shape, np.uint16)
        for value, segment_id in sorted(self.segments.items()):
            array[segment_mask_in_volume(self.segmentation_node, segment_id, volume) > 0] = value
        from MVABridgeLib.volumes import volume_ijk_to_ras
        dtype = np.uint8 if max(self.segments, default=0) < 256 else np.uint16
        return Labelmap(array.astype(dtype), volume_ijk_to_ras(volume))


def _colour(hex_colour):
    hex_colour = hex_colour.lstrip("#")
    return tuple(int(hex_colour[i:i + 2], 16) / 255.0 for i in (0, 2, 4))


def open_case(service, actor, project, case_id, scene, annotator=None, revision=None):
    """Load case `case_id` into `scene`: its volume, and a segmentation with one segment per project label
    holding the current annotation (the caller's, or `annotator`'s for reviewers), or revision `revision` of it
    (after a `DamagedAnnotationError`, which names the revisions to open instead). Returns an OpenCase."""
    case = service.get_case(actor, case_id)
    array, ijk_to_ras = service.load_volume(actor, case_id)
    volume = add_volume_node(scene, array, ijk_to_ras, case.name)
    segmentation = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", f"{case.name} segmentation")
    segmentation.CreateDefaultDisplayNodes()
    segmentation.SetReferenceImageGeometryParameterFromVolumeNode(volume)
    segments = {}
    for label in service.list_labels(actor, project):
        segments[label.value] = segmentation.GetSegmentation().AddEmptySegment(label.name, label.name,
                                                                               _colour(label.color))
    try:
        annotation = service.load_annotation(actor, case_id, annotator, revision=revision)
    except NotFoundError:
        if revision is not None:
            raise  # a revision asked for by number must exist; opening an empty one would hide that
        annotation = None
    if annotation is not None:
        for value, segment_id in segments.items():
            mask = annotation.array_kji == value
            if mask.any():
                replace_segment_from_mask(segmentation, segment_id, mask, annotation.ijk_to_ras)
    return OpenCase(case.id, case.version, volume, segmentation, segments)

"""Scenarios shared by the headless pytest suite and the in-Slicer tests (ScriptedLoadableModuleTest).

Each scenario takes a scene (slicer.mrmlScene in Slicer, a headless scene otherwise), builds what it needs,
runs a tool through the bridge and raises ScenarioFailure when a check fails.
"""
import numpy as np

from MVABridgeLib.edit_backend import EditMode
from MVABridgeLib.editor_session import SegmentEditorSession
from MVABridgeLib.segments import segment_mask_in_volume
from MVABridgeLib.slice_geometry import SlicePlane
from MVABridgeLib.volumes import add_volume_node

SCENARIOS = {}


class ScenarioFailure(AssertionError):
    """A scenario's check failed."""


def check(condition, message):
    if not condition:
        raise ScenarioFailure(message)


def scenario(name):
    def register(function):
        SCENARIOS[name] = function
        return function
    return register


def two_region_volume(scene, shape=(12, 40, 40), spacing=(0.8, 0.8, 2.0)):
    """A volume with a bright disc (the object) on a dark background, LPS-style geometry, one segment."""
    k, j, i = np.mgrid[0:shape[0], 0:shape[1], 0:shape[2]]
    disc = ((j - shape[1] / 2) ** 2 + (i - shape[2] / 2) ** 2) < (shape[1] / 4) ** 2
    rng = np.random.default_rng(0)
    image = (np.where(disc, 200, 20) + rng.normal(0, 5, shape)).astype(np.int16)
    ijk_to_ras = np.diag([-spacing[0], -spacing[1], spacing[2], 1.0])
    ijk_to_ras[:3, 3] = (10.0, 20.0, -5.0)
    volume = add_volume_node(scene, image, ijk_to_ras, "Phantom")
    segmentation = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "Segmentation")
    segmentation.CreateDefaultDisplayNodes()
    segmentation.SetReferenceImageGeometryParameterFromVolumeNode(volume)
    segment_id = segmentation.GetSegmentation().AddEmptySegment("Object", "Object")
    session = SegmentEditorSession(volume, segmentation, segment_id, scene)
    return session, volume, segmentation, segment_id, disc


@scenario("bridge_slice_edit_and_undo")
def bridge_slice_edit_and_undo(scene):
    session, volume, segmentation, segment_id, disc = two_region_volume(scene)
    work = session.bridge.work_volume()
    plane = SlicePlane.for_anatomical_axis("axial", 5, work.index_to_ras, work.shape)
    truth_2d = plane.sample(disc, work.index_to_ras, order=0) > 0
    session.bridge.apply_slice_mask(plane, truth_2d, EditMode.REPLACE)
    written = segment_mask_in_volume(segmentation, segment_id, volume)
    check(written[5].astype(bool).sum() == disc[5].sum(), "the slice mask was not written exactly")
    check(written.sum() == disc[5].sum(), "voxels outside the edited slice changed")
    check(session.undo() and segment_mask_in_volume(segmentation, segment_id, volume).sum() == 0,
          "undo did not restore the empty segment")


def run_in_slicer(test_case, names=None):
    """Run scenarios inside desktop Slicer (slicer.mrmlScene), one per name, clearing the scene between them."""
    import slicer
    for name in names or sorted(SCENARIOS):
        slicer.mrmlScene.Clear(0)
        test_case.delayDisplay(f"Scenario {name}")
        SCENARIOS[name](slicer.mrmlScene)
    test_case.delayDisplay("Scenarios passed")

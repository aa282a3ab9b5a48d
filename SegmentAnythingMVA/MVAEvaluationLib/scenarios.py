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


def _disc_plane(session, disc, k=5):
    work = session.bridge.work_volume()
    plane = SlicePlane.for_anatomical_axis("axial", k, work.index_to_ras, work.shape)
    return plane, plane.sample(disc, work.index_to_ras, order=0) > 0


def _dice(a, b):
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    return 2 * (a & b).sum() / max(a.sum() + b.sum(), 1)


@scenario("smart_brush")
def smart_brush(scene):
    from scipy import ndimage
    from SmartBrushLib.smart_brush_logic import SmartBrushLogic
    session, volume, segmentation, segment_id, disc = two_region_volume(scene)
    plane, truth = _disc_plane(session, disc)
    logic = SmartBrushLogic(session.bridge)
    logic.add_stroke(plane, ndimage.binary_erosion(truth, iterations=4))  # a scribble inside the disc
    frame = np.zeros(plane.shape, bool)
    frame[:2], frame[-2:], frame[:, :2], frame[:, -2:] = True, True, True, True
    preview = logic.add_stroke(plane, frame, erase=True)  # and one around it
    check(segment_mask_in_volume(segmentation, segment_id, volume).sum() == 0, "the preview wrote to the segment")
    logic.apply()
    written = segment_mask_in_volume(segmentation, segment_id, volume)
    check(written.sum() == written[5].sum() == preview.mask_2d.sum(), "Apply did not write the preview's slice")
    check(_dice(written[5], disc[5]) > 0.7 and not (written.astype(bool) & ~disc).any(),
          "the brush did not learn the disc")
    check(session.undo() and segment_mask_in_volume(segmentation, segment_id, volume).sum() == 0,
          "Apply was not one undo step")


@scenario("smart_regions")
def smart_regions(scene):
    from SmartRegionsLib.smart_regions_logic import RegionsOptions, SmartRegionsLogic
    session, volume, segmentation, segment_id, disc = two_region_volume(scene)
    plane, truth = _disc_plane(session, disc)
    logic = SmartRegionsLogic(session.bridge, RegionsOptions(region_size_mm=6.0))
    logic.click(plane, tuple(int(v) for v in np.argwhere(truth).mean(axis=0)))
    written = segment_mask_in_volume(segmentation, segment_id, volume).astype(bool)
    check(written.any() and not (written & ~disc).any(), "a region crossed the disc's edge")
    check(session.undo() and segment_mask_in_volume(segmentation, segment_id, volume).sum() == 0,
          "the click was not one undo step")


@scenario("smart_propagation")
def smart_propagation(scene):
    from MVABridgeLib.segments import replace_segment_from_mask
    from SmartPropagationLib.smart_propagation_logic import SmartPropagationLogic
    session, volume, segmentation, segment_id, disc = two_region_volume(scene)
    work = session.bridge.work_volume()
    seed = np.zeros(disc.shape, bool)
    seed[5] = disc[5]
    replace_segment_from_mask(segmentation, segment_id, seed, work.index_to_ras)
    plane, _ = _disc_plane(session, disc)
    logic = SmartPropagationLogic(session.bridge)
    preview = logic.compute_preview(plane)
    logic.apply()
    written = segment_mask_in_volume(segmentation, segment_id, volume).astype(bool)
    check(len(preview.masks) == disc.shape[0] and _dice(written, disc) > 0.9, "propagation lost the disc")
    check(np.array_equal(written[5], disc[5]), "the drawn slice changed")


@scenario("segment_anything")
def segment_anything(scene):
    from SegmentAnythingLib.engine_factory import create_engine
    from SegmentAnythingLib.segment_anything_logic import SegmentAnythingLogic
    session, volume, segmentation, segment_id, disc = two_region_volume(scene)
    plane, truth = _disc_plane(session, disc)
    logic = SegmentAnythingLogic(session.bridge, create_engine("tiny"), "tiny")
    prediction = logic.add_point(plane, tuple(int(v) for v in np.argwhere(truth).mean(axis=0)))
    written = segment_mask_in_volume(segmentation, segment_id, volume)
    check(len(prediction) == 3 and written.sum() == prediction.mask(0).sum() == written[5].sum(),
          "the prompt's mask was not written on its slice only")


def run_in_slicer(test_case, names=None):
    """Run scenarios inside desktop Slicer (slicer.mrmlScene), one per name, clearing the scene between them."""
    import slicer
    for name in names or sorted(SCENARIOS):
        slicer.mrmlScene.Clear(0)
        test_case.delayDisplay(f"Scenario {name}")
        SCENARIOS[name](slicer.mrmlScene)
    test_case.delayDisplay("Scenarios passed")

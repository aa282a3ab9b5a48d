"""Segment Anything under the editor's settings: other segments change only where a prompt added voxels, as the
overwrite setting says; the editable area and intensity range hold; one undo step restores both segments."""
import numpy as np
import pytest
from conftest import GEOMETRIES, add_segmentation

import slicer
from MVABridgeLib.editor_session import SegmentEditorSession
from MVABridgeLib.segments import replace_segment_from_mask, segment_mask_in_volume
from MVABridgeLib.slice_geometry import SlicePlane
from MVABridgeLib.volumes import add_volume_node
from SegmentAnythingLib.algorithms.sam_engine import SamEngine
from SegmentAnythingLib.algorithms.sam_models import build_tiny_sam
from SegmentAnythingLib.segment_anything_logic import SegmentAnythingLogic

MATRIX = GEOMETRIES["oblique_anisotropic"]
SHAPE = (10, 32, 32)
EditorNode = slicer.vtkMRMLSegmentEditorNode
SegmentationNode = slicer.vtkMRMLSegmentationNode


@pytest.fixture(scope="module")
def engine():
    return SamEngine(build_tiny_sam(seed=0))


@pytest.fixture
def case(headless):
    k, j, i = np.indices(SHAPE)
    disc = (j - 16) ** 2 + (i - 16) ** 2 < 9 ** 2
    image = (np.where(disc, 250, 30) + np.random.default_rng(1).normal(0, 5, SHAPE)).astype(np.int16)
    volume = add_volume_node(headless.scene, image, MATRIX)
    segmentation, ids = add_segmentation(headless, volume, ("A", "B"))
    b_drawn = np.zeros(SHAPE, bool)
    b_drawn[:, :, :] = (i + j) % 3 == 0  # B covers a third of every slice: any prediction overlaps it
    replace_segment_from_mask(segmentation, ids[1], b_drawn, MATRIX)
    session = SegmentEditorSession(volume, segmentation, ids[0], headless.scene)
    return session, volume, segmentation, ids, b_drawn


def masks(case):
    session, volume, segmentation, ids, _ = case
    return [segment_mask_in_volume(segmentation, i, volume).astype(bool) for i in ids]


def clicks(case, engine):
    session = case[0]
    volume = session.bridge.work_volume()
    logic = SegmentAnythingLogic(session.bridge, engine, "tiny", window_level=(400.0, 150.0))
    plane = SlicePlane.for_anatomical_axis("axial", 5, volume.index_to_ras, volume.shape)
    centre = (plane.shape[0] // 2, plane.shape[1] // 2)
    for pixel, positive in ((centre, True), ((3, 3), False), ((centre[0] + 2, centre[1]), True)):
        before = masks(case)
        logic.add_point(plane, pixel, positive)
        yield before, masks(case)


@pytest.mark.parametrize("overwrite", ["OverwriteAllSegments", "OverwriteVisibleSegments", "OverwriteNone"])
def test_each_prompt_changes_the_other_segment_only_where_it_added_as_the_overwrite_setting_says(case, engine,
                                                                                               overwrite):
    case[0].editor_node.SetOverwriteMode(getattr(EditorNode, overwrite))
    reached = False
    for (a_before, b_before), (a_after, b_after) in clicks(case, engine):
        added = a_after & ~a_before
        reached |= bool((added & b_before).any())
        assert np.array_equal(b_after, b_before if overwrite == "OverwriteNone" else b_before & ~added)
    assert reached, "no prompt reached segment B: the test would prove nothing"


def test_prompts_stay_inside_the_editable_area_and_undo_restores_both_segments(case, engine):
    session, *_, b_drawn = case
    session.editor_node.SetMaskMode(SegmentationNode.EditAllowedOutsideAllSegments)
    first = masks(case)
    steps = 0
    for _, (a_after, b_after) in clicks(case, engine):
        steps += 1
        assert not (a_after & b_drawn).any() and np.array_equal(b_after, b_drawn)
    for _ in range(steps):
        assert session.undo()
    restored = masks(case)
    assert all(np.array_equal(x, y) for x, y in zip(restored, first)) and not session.logic.CanUndo()


def test_a_click_after_another_segment_is_selected_starts_a_new_object_in_that_segment(case, engine):
    session, volume, segmentation, ids, b_drawn = case
    session.editor_node.SetOverwriteMode(EditorNode.OverwriteNone)
    work = session.bridge.work_volume()
    logic = SegmentAnythingLogic(session.bridge, engine, "tiny", window_level=(400.0, 150.0))
    plane = SlicePlane.for_anatomical_axis("axial", 5, work.index_to_ras, work.shape)
    logic.add_point(plane, (16, 16))
    logic.add_point(plane, (3, 3), positive=False)
    a_object = masks(case)[0]
    session.select_segment(ids[1])
    with pytest.raises(ValueError, match="another segment"):
        logic.cycle_candidate()  # A's candidates are not B's
    logic.add_point(plane, (14, 18))
    assert logic.session.points_xy == [(18.0, 14.0)], "B's first click went on with A's object's prompts"
    assert np.array_equal(masks(case)[0], a_object)
    assert not (masks(case)[1] & ~b_drawn & ~plane.mask_to_volume(np.ones(plane.shape, bool), work.index_to_ras,
                                                                     work.shape)[0].full(work.shape)).any()

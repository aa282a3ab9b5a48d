"""The edit contract for the 3D actions (3D Smart Brush Apply, Smart Regions 3D clicks and drags, Smart
Propagation apply / re-propagate / end here): other segments with each overwrite setting, work done in between,
masking, one undo step restoring every segment bit for bit, failed actions leaving no trace, a changed volume or
segment, and two segmentations of one volume."""
import numpy as np
import pytest
from scipy import ndimage
from conftest import GEOMETRIES, add_segmentation

import slicer
from MVABridgeLib.editor_session import SegmentEditorSession
from MVABridgeLib.errors import BridgeError
from MVABridgeLib.segments import replace_segment_from_mask, segment_mask_in_volume
from MVABridgeLib.slice_geometry import SlicePlane
from MVABridgeLib.tool_edits import ToolEdits
from MVABridgeLib.volumes import add_volume_node
from MVAEvaluationLib.simulated_user import dab_mask
from SmartBrushLib.volume_brush_logic import VolumeBrushLogic

MATRIX = GEOMETRIES["lps_anisotropic"]
SHAPE = (20, 32, 32)
EditorNode = slicer.vtkMRMLSegmentEditorNode
SegmentationNode = slicer.vtkMRMLSegmentationNode


def ball(shape=SHAPE, radius=8):
    grid = np.ogrid[tuple(slice(0, n) for n in shape)]
    return sum((g - n / 2) ** 2 for g, n in zip(grid, shape)) < radius ** 2


class Scene:
    """A bright ball; segments A (selected, empty) and B (the user's slab through the ball)."""

    def __init__(self, headless):
        self.headless = headless
        self.ball = ball()
        image = np.where(self.ball, 200, 40) + np.random.default_rng(3).normal(0, 6, SHAPE)
        self.volume = add_volume_node(headless.scene, image.astype(np.int16), MATRIX, "Ball")
        self.segmentation, self.ids = add_segmentation(headless, self.volume, ("A", "B"))
        self.b_drawn = np.zeros(SHAPE, bool)
        self.b_drawn[8:11, 10:22, 4:28] = True
        replace_segment_from_mask(self.segmentation, self.ids[1], self.b_drawn, MATRIX)
        self.session = SegmentEditorSession(self.volume, self.segmentation, self.ids[0], headless.scene)

    @property
    def bridge(self):
        return self.session.bridge

    def mask(self, index=0, segmentation=None):
        return segment_mask_in_volume(segmentation or self.segmentation, self.ids[index], self.volume).astype(bool)

    def both(self):
        return self.mask(0), self.mask(1)

    def axial(self, k=10):
        return SlicePlane.for_anatomical_axis("axial", k, MATRIX, SHAPE)

    def inside_stroke(self, plane):
        truth = plane.sample(self.ball, MATRIX, order=0) > 0
        return ndimage.binary_erosion(truth, iterations=3)

    def brush_preview(self, logic=None):
        """A 3D brush with a scribble inside the ball on axial 10 and an erase dab in the background."""
        logic = logic or VolumeBrushLogic(self.bridge, margin_mm=8.0)
        plane = self.axial()
        logic.add_stroke(plane, self.inside_stroke(plane))
        logic.add_stroke(plane, dab_mask(plane.shape, (2, 2)), erase=True)
        assert logic.preview is not None and logic.preview.mask_kji.sum() > 200
        return logic


def fails_in_the_editor(scene, action, *args):
    """Run `action(*args)` with every write of the editor raising, as a crash in Slicer's logic would."""
    backend = scene.bridge.backend
    original = backend.modify

    def failing(*_args, **_kwargs):
        raise RuntimeError("the editor failed")
    backend.modify = failing
    try:
        with pytest.raises(RuntimeError, match="the editor failed"):
            action(*args)
    finally:
        backend.modify = original


@pytest.fixture
def scene(headless):
    return Scene(headless)


# --- 3D Smart Brush Apply ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("overwrite", ["OverwriteAllSegments", "OverwriteVisibleSegments", "OverwriteNone"])
def test_a_3d_brush_apply_changes_the_other_segment_only_where_it_added_and_as_overwrite_says(scene, overwrite):
    scene.session.editor_node.SetOverwriteMode(getattr(EditorNode, overwrite))
    logic = scene.brush_preview()
    preview = logic.preview.mask_kji.copy()
    a_before, b_before = scene.both()
    logic.apply()
    a_after, b_after = scene.both()
    added = a_after & ~a_before
    assert np.array_equal(a_after, preview)  # overwrite none lets segments overlap
    if overwrite == "OverwriteNone":
        assert np.array_equal(b_after, b_before)
    else:
        assert np.array_equal(b_after, b_before & ~added)
    assert (added & b_before).any()


def test_a_3d_brush_apply_keeps_what_the_user_painted_and_erased_between_the_stroke_and_apply(scene):
    core = ball(radius=4)
    scene.bridge.write_blocks((0, 0, 0), add=core)  # the user's own voxels, inside the ball
    logic = scene.brush_preview()
    preview = logic.preview.mask_kji.copy()
    painted = np.zeros(SHAPE, bool)
    painted[2, 2:5, 2:5] = True  # far from the ball: the preview does not hold it
    erased = core & (np.indices(SHAPE)[0] == 10)  # the user erases a slice of the core the preview holds
    assert preview[erased].all() and not preview[painted].any()
    scene.bridge.write_blocks((0, 0, 0), add=painted, remove=erased)
    logic.apply()
    after = scene.mask()
    assert after[painted].all(), "the user's paint made between the stroke and Apply was lost"
    assert not after[erased].any(), "the user's erasure made between the stroke and Apply was undone"
    assert np.array_equal(after, (preview | painted) & ~erased)


def test_a_second_3d_brush_apply_keeps_the_users_touch_ups_made_after_the_first(scene):
    logic = scene.brush_preview()
    logic.apply()
    first = scene.mask()
    erased = first & (np.indices(SHAPE)[0] == 6)  # the user erases the ball's slice 6 the brush wrote
    painted = np.zeros(SHAPE, bool)
    painted[17, 3:6, 3:6] = True
    scene.bridge.write_blocks((0, 0, 0), add=painted, remove=erased)
    plane = scene.axial(12)
    logic.add_stroke(plane, dab_mask(plane.shape, (4, 4)), erase=True)  # a correction elsewhere
    logic.add_stroke(plane, scene.inside_stroke(plane))
    logic.apply()
    after = scene.mask()
    assert after[painted].all() and not after[erased].any()


def test_a_3d_brush_apply_honours_the_editable_area_and_the_intensity_range(scene):
    editor = scene.session.editor_node
    editor.SetMaskMode(SegmentationNode.EditAllowedOutsideAllSegments)
    logic = scene.brush_preview()
    logic.apply()
    a, b = scene.both()
    assert a.any() and not (a & scene.b_drawn).any() and np.array_equal(b, scene.b_drawn)
    scene.session.undo()
    editor.SetMaskMode(SegmentationNode.EditAllowedEverywhere)
    editor.SetSourceVolumeIntensityMask(True)
    editor.SetSourceVolumeIntensityMaskRange(-1000, 100)  # the ball (about 200) is outside the range
    logic = scene.brush_preview(VolumeBrushLogic(scene.bridge, margin_mm=8.0))
    result = logic.apply()
    assert scene.mask()[scene.ball].sum() < 0.05 * scene.ball.sum()
    assert not result.changed or result.added < 0.05 * scene.ball.sum()


def test_a_3d_brush_apply_is_one_undo_step_that_restores_both_segments_bit_for_bit(scene):
    scene.bridge.write_blocks((0, 0, 0), add=ball(radius=3))  # the user's own earlier action
    before = scene.both()
    logic = scene.brush_preview()
    logic.apply()
    assert not np.array_equal(scene.mask(), before[0])
    assert scene.session.undo()
    after = scene.both()
    assert np.array_equal(after[0], before[0]) and np.array_equal(after[1], before[1])
    assert scene.session.undo() and not scene.mask().any()  # the next undo is the user's action


def test_a_3d_brush_apply_that_fails_leaves_no_trace_and_keeps_the_preview_to_apply_again(scene):
    scene.bridge.write_blocks((0, 0, 0), add=ball(radius=3))
    logic = scene.brush_preview()
    preview = logic.preview.mask_kji.copy()
    before = scene.both()
    fails_in_the_editor(scene, logic.apply)
    after = scene.both()
    assert np.array_equal(after[0], before[0]) and np.array_equal(after[1], before[1])
    assert logic.preview is not None and np.array_equal(logic.preview.mask_kji, preview)
    logic.apply()
    assert scene.mask()[preview].all()
    assert scene.session.undo() and np.array_equal(scene.mask(), before[0])


def other_ball_volume(scene):
    """Another source volume on the same grid: a small ball in a corner, none where the first ball is."""
    small = np.zeros(SHAPE, bool)
    small[3:9, 3:11, 3:11] = ball((6, 8, 8), radius=4)
    image = np.where(small, 200, 40) + np.random.default_rng(4).normal(0, 6, SHAPE)
    return add_volume_node(scene.headless.scene, image.astype(np.int16), MATRIX, "Other"), small


def test_a_3d_brush_preview_made_on_another_volume_is_refused_at_apply_and_writes_nothing(scene):
    logic = scene.brush_preview()
    other, _ = other_ball_volume(scene)
    scene.session.logic.SetSourceVolumeNode(other)
    with pytest.raises(BridgeError, match="source volume changed"):
        logic.apply()
    assert not scene.mask().any() and not scene.session.logic.CanUndo()
    assert logic.preview is None


def test_a_3d_brush_preview_made_for_another_segment_is_refused_at_apply(scene):
    logic = scene.brush_preview()
    scene.session.select_segment(scene.ids[1])
    with pytest.raises(BridgeError, match="selected segment"):
        logic.apply()
    assert np.array_equal(scene.mask(1), scene.b_drawn) and not scene.mask(0).any()


def test_a_3d_brush_stroke_after_the_source_volume_changed_starts_a_new_preview(scene):
    logic = scene.brush_preview()
    other, small = other_ball_volume(scene)
    scene.session.logic.SetSourceVolumeNode(other)
    plane = scene.axial(6)
    stroke = ndimage.binary_erosion(plane.sample(small, MATRIX, order=0) > 0, iterations=1)
    preview = logic.add_stroke(plane, stroke)
    assert not preview.mask_kji[scene.ball].any(), "the preview on the other volume kept the first volume's ball"
    logic.apply()
    assert scene.mask().any() and not scene.mask()[scene.ball].any()


def test_a_3d_brush_stroke_on_a_segmentation_of_another_geometry_starts_over_on_its_grid(scene):
    logic = scene.brush_preview()
    finer = MATRIX.copy()
    finer[:3, :3] *= 0.5  # the segmentation's reference grid: half the spacing of the volume's
    reference = add_volume_node(scene.headless.scene, np.zeros((40, 64, 64), np.int16), finer, "Finer grid")
    scene.segmentation.SetReferenceImageGeometryParameterFromVolumeNode(reference)
    work = scene.bridge.work_volume()
    assert work.shape == (40, 64, 64)
    plane = SlicePlane.for_anatomical_axis("axial", 20, work.index_to_ras, work.shape)
    truth = plane.sample(ball((40, 64, 64), radius=16), work.index_to_ras, order=0) > 0
    preview = logic.add_stroke(plane, ndimage.binary_erosion(truth, iterations=6))
    assert preview.mask_kji.shape == work.shape
    logic.apply()
    assert scene.mask().any()


# --- the same tool object, two segmentations of one volume ---------------------------------------------------------
def test_a_tool_never_takes_back_voxels_of_another_segmentation_whose_segment_has_the_same_id(scene):
    """Slicer names the first segment of every segmentation Segment_1: a tool's memory of what it wrote is per
    segmentation, so voxels another segmentation's user drew where this tool wrote are not the tool's."""
    other, other_ids = add_segmentation(scene.headless, scene.volume, ("A", "B"))
    assert other_ids[0] == scene.ids[0]
    edits = ToolEdits("a tool")
    block = np.zeros(SHAPE, bool)
    block[5:15, 8:24, 8:24] = True
    scene.bridge.write_decision(edits, (0, 0, 0), add=block)  # the tool writes into the first segmentation
    rater = np.zeros(SHAPE, bool)
    rater[5:15, 8:24, 8:24] = True  # another rater drew the same voxels in the second segmentation
    replace_segment_from_mask(other, other_ids[0], rater, MATRIX)
    scene.session.logic.SetSegmentationNode(other)
    scene.session.logic.SetCurrentSegmentID(other_ids[0])
    result = scene.bridge.write_decision(edits, (0, 0, 0), retract=np.ones(SHAPE, bool))
    assert not result.changed
    assert np.array_equal(scene.mask(segmentation=other), rater), "the other segmentation's voxels were taken back"


# --- Smart Regions in 3D -------------------------------------------------------------------------------------------
def regions_logic(scene):
    from SmartRegionsLib.regions_options import RegionsOptions
    from SmartRegionsLib.smart_regions_logic import SmartRegionsLogic
    return SmartRegionsLogic(scene.bridge, RegionsOptions(mode="3d", region_size_mm=6.0))


def centre_pixel(plane):
    return tuple(int(v) for v in np.argwhere(plane.sample(ball(), MATRIX, order=0) > 0).mean(0))


@pytest.mark.parametrize("overwrite", ["OverwriteAllSegments", "OverwriteNone"])
def test_a_3d_regions_click_changes_the_other_segment_only_where_it_added(scene, overwrite):
    scene.session.editor_node.SetOverwriteMode(getattr(EditorNode, overwrite))
    logic = regions_logic(scene)
    plane = scene.axial(9)
    a_before, b_before = scene.both()
    logic.click(plane, centre_pixel(plane))
    a_after, b_after = scene.both()
    added = a_after & ~a_before
    assert (added & b_before).any(), "the click should reach B's slab for the test to mean something"
    expected_b = b_before if overwrite == "OverwriteNone" else b_before & ~added
    assert np.array_equal(b_after, expected_b)


def test_a_3d_regions_remove_click_keeps_the_users_voxels_beyond_the_clicked_region(scene):
    logic = regions_logic(scene)
    plane = scene.axial(10)
    logic.click(plane, centre_pixel(plane))
    taken = scene.mask()
    user = np.zeros(SHAPE, bool)
    user[2:5, 2:6, 2:6] = True  # the user's own voxels far away
    scene.bridge.write_blocks((0, 0, 0), add=user)
    labels = logic.volume_labels()
    pixel = centre_pixel(plane)
    index = tuple(np.round(plane.pixel_to_index_kji([pixel], MATRIX)[0]).astype(int))
    logic.click(plane, pixel, add=False)
    after = scene.mask()
    assert after[user].all()
    assert not after[labels == labels[index]].any()
    assert not (after & ~(taken | user)).any()


def test_a_3d_regions_drag_is_one_undo_step_restoring_both_segments(scene):
    logic = regions_logic(scene)
    plane = scene.axial(10)
    row, col = centre_pixel(plane)
    before = scene.both()
    logic.drag(plane, [(row, col - 4), (row, col), (row, col + 4)])
    assert scene.mask().any()
    assert scene.session.undo()
    after = scene.both()
    assert np.array_equal(after[0], before[0]) and np.array_equal(after[1], before[1])
    assert not scene.session.logic.CanUndo()


def test_a_3d_regions_click_that_fails_leaves_no_voxel_no_undo_step_and_no_remembered_click(scene):
    import copy
    logic = regions_logic(scene)
    plane = scene.axial(10)
    logic.volume_labels()
    memory = copy.deepcopy(logic.click_memory.__dict__)
    fails_in_the_editor(scene, logic.click, plane, centre_pixel(plane))
    assert not scene.mask().any() and not scene.session.logic.CanUndo()
    remembered = {name: logic.click_memory.__dict__[name] for name in ("_clicks", "_examples")}
    assert remembered == {name: memory[name] for name in ("_clicks", "_examples")}, \
        "a click that wrote nothing is remembered as an example"


# --- Smart Propagation: apply, re-propagate, end here --------------------------------------------------------------
def propagation(scene):
    from SmartPropagationLib.propagation_options import PropagationOptions
    from SmartPropagationLib.smart_propagation_logic import SmartPropagationLogic
    seed = np.zeros(SHAPE, bool)
    seed[10] = scene.ball[10]
    scene.bridge.write_blocks((0, 0, 0), add=seed)
    return SmartPropagationLogic(scene.bridge, PropagationOptions(strategy="registration", max_slices=6))


def test_a_propagation_preview_made_for_another_segment_is_not_written_into_the_selected_one(scene):
    logic = propagation(scene)
    logic.compute_preview(scene.axial(10))
    scene.session.select_segment(scene.ids[1])
    before = scene.both()
    with pytest.raises(BridgeError, match="selected segment"):
        logic.apply()
    after = scene.both()
    assert np.array_equal(after[0], before[0]) and np.array_equal(after[1], before[1])
    assert logic.preview is None


def test_a_propagation_preview_made_on_another_source_volume_is_refused(scene):
    logic = propagation(scene)
    logic.compute_preview(scene.axial(10))
    other, _ = other_ball_volume(scene)
    scene.session.logic.SetSourceVolumeNode(other)
    before = scene.mask()
    with pytest.raises(BridgeError, match="source volume"):
        logic.apply()
    assert np.array_equal(scene.mask(), before)


def test_end_here_takes_back_only_propagations_voxels_in_one_undo_step(scene):
    from SmartPropagationLib.propagation_corrections import end_here
    logic = propagation(scene)
    logic.compute_preview(scene.axial(10))
    logic.apply()
    user = np.zeros(SHAPE, bool)
    user[14, 2:5, 2:5] = True  # the user's own voxels on a propagated slice beyond the end
    scene.bridge.write_blocks((0, 0, 0), add=user)
    before = scene.both()
    result = end_here(logic, scene.axial(13))
    after = scene.mask()
    assert result.removed > 0 and after[user].all()
    assert np.array_equal(after[13:], user[13:])
    assert np.array_equal(after[:13], before[0][:13])
    assert scene.session.undo()
    restored = scene.both()
    assert np.array_equal(restored[0], before[0]) and np.array_equal(restored[1], before[1])


def test_repropagation_keeps_the_users_erasure_on_a_propagated_slice(scene):
    logic = propagation(scene)
    logic.compute_preview(scene.axial(10))
    logic.apply()
    k, j, i = np.indices(SHAPE)
    erased = scene.mask() & (k == 12) & (i < 16)
    assert erased.any()
    scene.bridge.write_blocks((0, 0, 0), remove=erased)  # the user erases part of a propagated slice
    logic.compute_preview(scene.axial(10))
    logic.apply()
    assert not scene.mask()[erased].any()
    logic.repropagate_from(scene.axial(11))
    logic.apply()
    assert not scene.mask()[erased].any()


def test_end_here_that_fails_leaves_the_segment_the_undo_history_and_the_pending_preview(scene):
    from SmartPropagationLib.propagation_corrections import end_here
    logic = propagation(scene)
    logic.compute_preview(scene.axial(10))
    logic.apply()
    preview = logic.compute_preview(scene.axial(10))  # pending again
    before = scene.both()
    fails_in_the_editor(scene, end_here, logic, scene.axial(13))
    after = scene.both()
    assert np.array_equal(after[0], before[0]) and np.array_equal(after[1], before[1])
    assert logic.preview is preview


@pytest.mark.parametrize("tool", ["brush3d", "propagation"])
def test_a_preview_is_not_applied_to_the_same_segment_id_of_another_segmentation(scene, tool):
    logic = scene.brush_preview() if tool == "brush3d" else propagation(scene)
    if tool == "propagation":
        logic.compute_preview(scene.axial(10))
    other, other_ids = add_segmentation(scene.headless, scene.volume, ("A", "B"))
    assert other_ids[0] == scene.ids[0]
    scene.session.logic.SetSegmentationNode(other)
    scene.session.logic.SetCurrentSegmentID(other_ids[0])
    with pytest.raises(BridgeError, match="selected segment"):
        logic.apply()
    assert not scene.mask(segmentation=other).any()

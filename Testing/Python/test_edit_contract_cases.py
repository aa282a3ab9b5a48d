"""The data-loss cases found by trying the tools on segments that already hold work, each as a regression test."""
import numpy as np
import pytest
from conftest import GEOMETRIES, add_segmentation

from MVABridgeLib.editor_session import SegmentEditorSession
from MVABridgeLib.segments import replace_segment_from_mask, segment_mask_in_volume
from MVABridgeLib.slice_geometry import SlicePlane
from MVABridgeLib.volumes import add_volume_node
from MVAEvaluationLib.simulated_user import dab_mask
from SegmentAnythingLib.algorithms.sam_engine import SamEngine
from SegmentAnythingLib.algorithms.sam_models import build_tiny_sam
from SegmentAnythingLib.segment_anything_logic import SegmentAnythingLogic
from SmartBrushLib.smart_brush_logic import SmartBrushLogic
from SmartPropagationLib.algorithms.propagation_errors import EmptySeedMaskError
from SmartPropagationLib.propagation_options import PropagationOptions
from SmartPropagationLib.smart_propagation_logic import SmartPropagationLogic
from SmartRegionsLib.smart_regions_logic import SmartRegionsLogic

MATRIX = GEOMETRIES["lps_anisotropic"]
SHAPE = (12, 40, 40)


@pytest.fixture
def disc_case(headless):
    """A bright disc through slices 2..9, and segments A (selected) and B."""
    k, j, i = np.indices(SHAPE)
    disc = ((j - 20) ** 2 + (i - 20) ** 2 < 10 ** 2) & (k >= 2) & (k <= 9)
    image = (np.where(disc, 250, 40) + np.random.default_rng(0).normal(0, 6, SHAPE)).astype(np.int16)
    volume = add_volume_node(headless.scene, image, MATRIX)
    segmentation, ids = add_segmentation(headless, volume, ("A", "B"))
    session = SegmentEditorSession(volume, segmentation, ids[0], headless.scene)
    return session, volume, segmentation, ids, disc


def segment(case, index=0):
    session, volume, segmentation, ids, _ = case
    return segment_mask_in_volume(segmentation, ids[index], volume).astype(bool)


def axial(k):
    return SlicePlane.for_anatomical_axis("axial", k, MATRIX, SHAPE)


def pixel_of(plane, index_kji):
    pixel, _ = plane.index_kji_to_pixel([index_kji], MATRIX)
    return tuple(np.round(pixel[0]).astype(int))


def draw(case, mask, index=0):
    session, volume, segmentation, ids, _ = case
    replace_segment_from_mask(segmentation, ids[index], mask, MATRIX)


def blob(k, j, i, radius=2):
    kk, jj, ii = np.indices(SHAPE)
    return (kk == k) & ((jj - j) ** 2 + (ii - i) ** 2 <= radius ** 2)


def test_brush_erase_only_stroke_erases_the_stroke_not_the_slice(disc_case):
    session, _, _, _, disc = disc_case
    draw(disc_case, disc)
    before = segment(disc_case)
    logic = SmartBrushLogic(session.bridge)
    plane = axial(5)
    stroke = dab_mask(plane.shape, pixel_of(plane, (5, 20, 20)))
    logic.add_stroke(plane, stroke, erase=True)
    result = logic.apply()
    after = segment(disc_case)
    erased = plane.mask_to_volume(stroke, MATRIX, SHAPE)[0].full(SHAPE)
    assert after[5].sum() > before[5].sum() * 0.8  # was: the whole slice cleared
    assert np.array_equal(after, before & ~erased)
    assert result.removed == int((before & erased).sum()) and result.added == 0


def test_brush_apply_keeps_a_separate_blob_drawn_before(disc_case):
    session, *_ = disc_case
    separate = blob(5, 4, 4, radius=1)
    draw(disc_case, separate)
    logic = SmartBrushLogic(session.bridge)
    plane = axial(5)
    logic.add_stroke(plane, dab_mask(plane.shape, pixel_of(plane, (5, 20, 20))))
    logic.add_stroke(plane, dab_mask(plane.shape, pixel_of(plane, (5, 36, 36))), erase=True)
    logic.apply()
    assert np.all(segment(disc_case)[separate])


def test_brush_predict_3d_keeps_other_structures_inside_its_box(disc_case):
    session, *_, disc = disc_case
    other = blob(7, 5, 5, radius=1)
    draw(disc_case, other)
    logic = SmartBrushLogic(session.bridge)
    plane = axial(5)
    logic.add_stroke(plane, dab_mask(plane.shape, pixel_of(plane, (5, 20, 20))))
    logic.add_stroke(plane, dab_mask(plane.shape, pixel_of(plane, (5, 3, 3))), erase=True)
    patch = logic.predict_volume(plane, margin_voxels=20)
    predicted = patch.full(SHAPE)
    assert predicted[other].sum() == 0 and predicted.any()  # the box covers the structure, does not predict it
    logic.apply_volume(patch)
    assert np.array_equal(segment(disc_case), other | predicted)  # was: the box replaced by the prediction


def test_brush_correction_takes_back_its_own_voxels(disc_case):
    session, *_, disc = disc_case
    logic = SmartBrushLogic(session.bridge)
    plane = axial(5)
    logic.add_stroke(plane, dab_mask(plane.shape, pixel_of(plane, (5, 20, 20))))
    logic.preview.mask_2d[:] = True  # a bad first prediction: the whole slice
    logic.apply()
    assert segment(disc_case)[5].all()
    erase = dab_mask(plane.shape, pixel_of(plane, (5, 3, 3)))
    preview = logic.add_stroke(plane, erase, erase=True)
    logic.apply()
    expected = plane.mask_to_volume(preview.mask_2d & ~erase, MATRIX, SHAPE)[0].full(SHAPE)
    assert np.array_equal(segment(disc_case), expected)  # its own wrong voxels taken back, nothing else


def test_propagation_never_replaces_a_slice_painted_after_the_preview(disc_case):
    session, *_, disc = disc_case
    seed = np.zeros(SHAPE, bool)
    seed[5] = disc[5]
    draw(disc_case, seed)
    logic = SmartPropagationLogic(session.bridge, PropagationOptions(strategy="registration"))
    preview = logic.compute_preview(axial(5))
    assert 7 in preview.masks
    painted = blob(7, 30, 30, radius=2)  # painted on slice 7 between preview and Apply
    session.bridge.apply_slice_mask(axial(7), painted[7], "add")
    before7 = segment(disc_case)[7].copy()
    logic.apply()
    after = segment(disc_case)
    assert np.array_equal(after[7], before7)
    assert after[6].sum() > 0  # the other slices are written


def test_a_failed_preview_on_an_empty_slice_leaves_no_drawn_slice(disc_case):
    session, *_, disc = disc_case
    drawn = np.zeros(SHAPE, bool)
    drawn[3], drawn[8] = disc[3], disc[8]
    draw(disc_case, drawn)
    logic = SmartPropagationLogic(session.bridge, PropagationOptions(strategy="registration"))
    with pytest.raises(EmptySeedMaskError):
        logic.compute_preview(axial(10))  # nothing drawn there
    assert logic.drawn_slices(0) == {3, 8}
    logic.options.strategy = "auto"
    preview = logic.compute_preview(axial(3))
    assert preview.strategy == "interpolation" and max(preview.masks) == 8  # not filled up to slice 10


def test_repropagation_replaces_its_own_slices_but_not_corrected_ones(disc_case):
    session, *_, disc = disc_case
    seed = np.zeros(SHAPE, bool)
    seed[5] = disc[5]
    draw(disc_case, seed)
    logic = SmartPropagationLogic(session.bridge, PropagationOptions(strategy="registration"))
    logic.compute_preview(axial(5))
    logic.apply()
    assert logic.drawn_slices(0) == {5}  # propagated slices are propagation's own
    session.bridge.apply_slice_mask(axial(7), blob(7, 20, 20, radius=3)[7], "remove")  # the user corrects slice 7
    assert logic.drawn_slices(0) == {5, 7}
    corrected = segment(disc_case)[7].copy()
    logic.repropagate_from(axial(7))
    logic.apply()
    assert np.array_equal(segment(disc_case)[7], corrected)


@pytest.fixture(scope="module")
def engine():
    return SamEngine(build_tiny_sam(seed=0))


def test_sam_next_prompt_keeps_touch_ups_and_erasures_made_in_between(disc_case, engine):
    session, *_ = disc_case
    logic = SegmentAnythingLogic(session.bridge, engine, "tiny", window_level=(400.0, 150.0))
    plane = axial(5)
    logic.add_point(plane, pixel_of(plane, (5, 20, 20)))
    first = segment(disc_case)
    assert first[5].any()
    touch_up = blob(5, 36, 36, radius=1) & ~first
    ours = np.argwhere(first[5])
    erased = np.zeros(SHAPE, bool)
    erased[5, ours[0][0], ours[0][1]] = True
    session.bridge.apply_slice_mask(plane, plane.sample(touch_up, MATRIX, order=0) > 0, "add")
    session.bridge.apply_slice_mask(plane, plane.sample(erased, MATRIX, order=0) > 0, "remove")
    for _ in range(3):
        logic.add_point(plane, pixel_of(plane, (5, 8, 30)), positive=False)
        logic.cycle_candidate()
        after = segment(disc_case)
        assert np.all(after[touch_up]) and not np.any(after[erased])


def test_sam_new_object_never_takes_back_the_previous_object(disc_case, engine):
    session, *_ = disc_case
    logic = SegmentAnythingLogic(session.bridge, engine, "tiny", window_level=(400.0, 150.0))
    plane = axial(5)
    logic.add_point(plane, pixel_of(plane, (5, 20, 20)))
    first = segment(disc_case)
    logic.reset()
    for candidate in range(3):
        logic.add_point(plane, pixel_of(plane, (5, 3, 3)), positive=bool(candidate % 2))
        assert np.all(segment(disc_case)[first])


def test_regions_click_just_inside_a_sharp_edge_writes_or_says_why(disc_case):
    session, *_, disc = disc_case
    logic = SmartRegionsLogic(session.bridge)
    plane = axial(5)
    edge = np.argwhere(disc[5] & ~np.roll(disc[5], 2, axis=1))  # 1-2 voxels inside the disc's left edge
    for j, i in edge[:: max(1, len(edge) // 6)]:
        result = logic.click(plane, pixel_of(plane, (5, j, i)))
        assert result.changed or "Nothing changed" in result.message
        assert segment(disc_case)[5, j, i], "the clicked voxel itself is taken"


def test_a_failed_action_leaves_no_undo_step(disc_case):
    session, *_, disc = disc_case
    session.bridge.apply_slice_mask(axial(5), disc[5], "add")  # the user's first action
    logic = SmartBrushLogic(session.bridge)
    plane = axial(6)
    logic.add_stroke(plane, dab_mask(plane.shape, pixel_of(plane, (6, 20, 20))))
    logic.add_stroke(plane, dab_mask(plane.shape, pixel_of(plane, (6, 3, 3))), erase=True)
    draw_before = segment(disc_case)
    backend = session.bridge.backend
    original, calls = backend.modify, []

    def failing(*args, **kwargs):
        calls.append(args[1])
        if len(calls) == 2:
            raise RuntimeError("crash in the second write")
        original(*args, **kwargs)
    backend.modify = failing
    with pytest.raises(RuntimeError):
        session.bridge.write_decision(logic.edits, (5, 0, 0), add=np.ones((1, 40, 40), bool),
                                      erase=blob(5, 20, 20)[5:6])
    backend.modify = original
    assert len(calls) == 3  # the remove went through, the add raised, the rollback put the voxels back
    assert np.array_equal(segment(disc_case), draw_before)
    assert session.undo()  # the one undo step is the user's paint, not the failed action
    assert segment(disc_case).sum() == 0

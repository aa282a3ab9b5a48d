"""SAM 2 propagation conditioned by the user's prompts (points, box) as well as by drawn masks."""
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import GEOMETRIES
from controller_scene import finish_jobs, make_scene, slice_node
from test_sam2_propagation import NO_STOP, ball_volume, fresh_engine, make_case, slab

from MVABridgeLib.segments import replace_segment_from_mask, segment_mask_in_volume
from MVABridgeLib.slice_geometry import SlicePlane
from MVAComputeLib.propagation_operation import propagation_request, run_from_request
from MVAControllersLib.background_jobs import JobRunner
from MVAControllersLib.smart_propagation_controller import PropagationToolOptions, SmartPropagationController
from SegmentAnythingLib.segment_anything_logic import SegmentAnythingLogic
from SmartPropagationLib.propagation_prompts import PlanePrompts, prompts_of_sam_session
from SmartPropagationLib.smart_propagation_logic import PropagationOptions, SmartPropagationLogic

from SegmentAnythingLib.algorithms.sam2_models import build_tiny_sam2
from SegmentAnythingLib.sam2_propagation import run_sam2_propagation, sam2_tracker_factory
from SmartPropagationLib.algorithms import PropagationInputError, StopReason
from SmartPropagationLib.algorithms import sam2_video
from SmartPropagationLib.algorithms.sam2_video import SlicePrompts


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny_model():
    return build_tiny_sam2(seed=0, image_size=64)


class PromptOracle:
    """The tracker interface with known answers: a prompted slice's mask is its box (or a disk at its first
    positive point); tracked slices are the bright voxels."""

    def __init__(self, image_kji, threshold=150.0):
        self.image, self.threshold = image_kji, threshold
        self.conditioned, self.prompted, self.tracked = {}, {}, []

    def condition(self, k, mask_2d):
        self.conditioned[k] = np.asarray(mask_2d, bool)

    def condition_prompts(self, k, points_xy, labels, box_xyxy, mask_2d=None):
        self.prompted[k] = SimpleNamespace(points_xy=points_xy, labels=labels, box_xyxy=box_xyxy, mask_2d=mask_2d)
        rows, cols = np.indices(self.image.shape[1:])
        if box_xyxy is not None:
            x0, y0, x1, y1 = box_xyxy
            mask = (cols >= x0 - 0.5) & (cols < x1 + 0.5) & (rows >= y0 - 0.5) & (rows < y1 + 0.5)
        else:
            x, y = next(p for p, label in zip(points_xy, labels) if label == 1)
            mask = (cols - x) ** 2 + (rows - y) ** 2 <= 9
        return SimpleNamespace(mask=mask, iou=0.9, object_score=5.0)

    def begin_pass(self, direction):
        pass

    def track(self, k, direction):
        self.tracked.append(k)
        return SimpleNamespace(mask=self.image[k] > self.threshold, iou=0.95, object_score=8.0)


# --- the algorithm, with the oracle ------------------------------------------------------------------------------
def test_prompts_alone_condition_the_seed_and_their_mask_is_the_seed_slice_of_the_result():
    image, inside = ball_volume()
    tracker = PromptOracle(image)
    prompts = {8: SlicePrompts(((16.0, 14.0),), (1,))}
    result = sam2_video.propagate_video(tracker, image.shape, 8, {}, "both", 2, (2, 1, 1), NO_STOP, prompts=prompts)
    assert tracker.prompted[8].points_xy == ((16.0, 14.0),) and tracker.prompted[8].mask_2d is None
    assert not tracker.conditioned and sorted(result.masks) == [6, 7, 8, 9, 10]
    assert result.masks[8].sum() == 29 and result.masks[8][14, 16] and result.quality[8] == pytest.approx(0.9)


def test_a_mask_on_one_slice_and_prompts_on_another_both_condition_and_the_drawing_stays_as_drawn():
    image, inside = ball_volume()
    drawn_5 = inside[5].copy()
    drawn_5[:, :16] = False
    tracker = PromptOracle(image)
    prompts = {8: SlicePrompts((), (), (10.0, 8.0, 22.0, 20.0)), 5: SlicePrompts(((15.0, 14.0),), (0,),
                                                                                   (9.0, 9.0, 20.0, 19.0))}
    result = sam2_video.propagate_video(tracker, image.shape, 8, {5: drawn_5, 11: inside[11]}, "both", 20,
                                        (2, 1, 1), NO_STOP, prompts=prompts)
    assert set(tracker.conditioned) == {11} and set(tracker.prompted) == {5, 8}
    assert tracker.prompted[5].mask_2d is not None and np.array_equal(tracker.prompted[5].mask_2d, drawn_5)
    assert np.array_equal(result.masks[5], drawn_5) and np.array_equal(result.masks[11], inside[11])
    assert result.masks[8].sum() == 13 * 13 and 5 not in tracker.tracked and 11 not in tracker.tracked


@pytest.mark.parametrize("prompts, message", [
    (SlicePrompts(((40.0, 3.0),), (1,)), "outside"),
    (SlicePrompts(((4.0, 3.0), (5.0, 5.0)), (1,)), "one label"),
    (SlicePrompts((), (), (9.0, 9.0, 3.0, 19.0)), "x_min"),
    (SlicePrompts(((4.0, 3.0),), (0,)), "no drawing and no positive prompt"),
])
def test_prompts_that_cannot_say_where_the_object_is_are_refused_with_a_message(prompts, message):
    image, _ = ball_volume()
    with pytest.raises(PropagationInputError, match=message):
        sam2_video.propagate_video(PromptOracle(image), image.shape, 8, {}, 1, 3, prompts={8: prompts})


def test_a_tracker_without_prompt_support_refuses_prompts_instead_of_ignoring_them():
    image, inside = ball_volume()
    tracker = SimpleNamespace(condition=lambda k, m: None, begin_pass=lambda d: None, track=None)
    with pytest.raises(PropagationInputError, match="takes no prompts"):
        sam2_video.propagate_video(tracker, image.shape, 8, {8: inside[8]}, 1, 3,
                                   prompts={8: SlicePrompts(((16.0, 14.0),), (1,))})


def test_a_prompted_slice_predicting_nothing_ends_the_object_there():
    image, inside = ball_volume()
    tracker = PromptOracle(image)
    tracker.condition_prompts = lambda k, *a, **kw: SimpleNamespace(mask=np.zeros(image.shape[1:], bool), iou=0.1,
                                                                     object_score=-4.0)
    result = sam2_video.propagate_video(tracker, image.shape, 8, {8: inside[8]}, 1, 20, (2, 1, 1), NO_STOP,
                                        prompts={11: SlicePrompts(((16.0, 14.0),), (1,))})
    assert result.stops[1].slice_k == 11 and result.stops[1].reason == StopReason.VANISHED
    assert sorted(result.masks) == [8, 9, 10]


# --- the tiny random SAM 2 -----------------------------------------------------------------------------------------
def test_sam2_prompts_reach_a_slice_three_away_through_the_memory_alone(tiny_model):
    image, inside = ball_volume()
    factory = sam2_tracker_factory(fresh_engine(tiny_model), (400.0, 150.0))

    def track_three(**prompt):
        tracker = factory(image, (2.0, 1.0, 1.0))
        seed = tracker.condition_prompts(8, **prompt)
        tracker.begin_pass(1)
        return seed, [tracker.track(k, 1) for k in (9, 10, 11)][-1]

    centre = dict(points_xy=[(16, 14)], labels=[1])
    (seed_a, first), (_, repeat) = track_three(**centre), track_three(**centre)
    seed_b, other = track_three(points_xy=[(16, 14), (25, 6)], labels=[1, 0], box_xyxy=(4, 3, 28, 25))
    assert seed_a.mask.shape == inside[8].shape and seed_a.mask.dtype == bool
    assert not np.array_equal(seed_a.mask, seed_b.mask)
    # Bit-for-bit deterministic, so any difference comes from the prompts; random weights make it small.
    assert np.array_equal(first.lowres_logits, repeat.lowres_logits)
    assert np.abs(first.lowres_logits - other.lowres_logits).max() > 1e-5


def test_sam2_prompts_on_a_drawn_slice_refine_the_drawing_in_memory_only(tiny_model):
    image, inside = ball_volume()
    engine = fresh_engine(tiny_model)
    prompts = {8: SlicePrompts(((16.0, 14.0),), (1,))}
    drawn = {8: inside[8]}
    with_prompts = run_sam2_propagation(image, (2.0, 1.0, 1.0), 8, drawn, 1, 3, NO_STOP, (400.0, 150.0),
                                        engine=engine, prompts=prompts)
    mask_only = run_sam2_propagation(image, (2.0, 1.0, 1.0), 8, drawn, 1, 3, NO_STOP, (400.0, 150.0), engine=engine)
    prompts_only = run_sam2_propagation(image, (2.0, 1.0, 1.0), 8, {}, 1, 3, NO_STOP, (400.0, 150.0), engine=engine,
                                        prompts=prompts)
    assert np.array_equal(with_prompts.masks[8], inside[8]) and with_prompts.slices == [8, 9, 10, 11]
    assert not np.array_equal(prompts_only.masks[8], inside[8]) and prompts_only.slices == [8, 9, 10, 11]
    assert any(not np.array_equal(with_prompts.masks[k], mask_only.masks[k]) for k in (9, 10, 11))


# --- through the logic: geometry and drawn slices -------------------------------------------------------------------
def oracle_strategy(monkeypatch, trackers, make=PromptOracle):
    monkeypatch.setitem(sam2_video._VIDEO_STRATEGIES, "sam2",
                        lambda image_kji, spacing: trackers.append(make(image_kji)) or trackers[-1])


@pytest.mark.parametrize("geometry", sorted(GEOMETRIES))
def test_a_box_and_a_point_on_the_view_land_on_the_voxels_under_them_on_oblique_lps_and_anisotropic_volumes(
        headless, monkeypatch, geometry):
    image, inside = ball_volume()
    ijk_to_ras = GEOMETRIES[geometry]
    volume, segmentation, segment_id, session = make_case(headless, image, ijk_to_ras)
    plane = SlicePlane.for_anatomical_axis("axial", 5, ijk_to_ras, image.shape)
    work = session.bridge.work_volume()
    (r0, c0), (r1, c1), point_rc = (3, 4), (plane.shape[0] - 6, plane.shape[1] - 3), (5, 7)
    trackers = []
    oracle_strategy(monkeypatch, trackers)
    logic = SmartPropagationLogic(session.bridge, PropagationOptions(strategy="sam2", max_slices=0, stop_rule=NO_STOP))
    preview = logic.compute_preview(plane, prompts=PlanePrompts(plane, ((c0, r0),), (1,), (c0, r0, c1, r1)))
    logic.apply()
    rows, cols = np.mgrid[r0:r1 + 1, c0:c1 + 1]
    expected = np.zeros(image.shape, bool)
    expected[tuple(plane.pixel_voxels_kji(np.stack([rows.ravel(), cols.ravel()], 1), work.index_to_ras).T)] = True
    assert preview.strategy == "sam2" and np.array_equal(
        segment_mask_in_volume(segmentation, segment_id, volume).astype(bool), expected)
    remaining = [a for a in range(3) if a != plane.aligned_axis]
    clicked = plane.pixel_voxels_kji([point_rc], work.index_to_ras)[0]
    logic.compute_preview(plane, prompts=PlanePrompts(plane, ((point_rc[1], point_rc[0]),), (1,)))
    received = trackers[1].prompted[plane.slice_index].points_xy[0]
    assert np.allclose(received, (clicked[remaining[1]], clicked[remaining[0]]))


def test_prompts_in_another_orientation_are_left_out_with_a_note(headless, monkeypatch):
    image, inside = ball_volume()
    ijk_to_ras = GEOMETRIES["identity"]
    volume, segmentation, segment_id, session = make_case(headless, image, ijk_to_ras)
    replace_segment_from_mask(segmentation, segment_id, slab(inside, 0, 8), ijk_to_ras)
    trackers = []
    oracle_strategy(monkeypatch, trackers)
    logic = SmartPropagationLogic(session.bridge, PropagationOptions(strategy="sam2", max_slices=1, stop_rule=NO_STOP))
    coronal = SlicePlane.for_anatomical_axis("coronal", 14, ijk_to_ras, image.shape)
    logic.compute_preview(SlicePlane.for_anatomical_axis("axial", 8, ijk_to_ras, image.shape),
                          prompts=[PlanePrompts(coronal, ((10.0, 5.0),), (1,))])
    assert trackers[0].prompted == {} and "another view orientation" in logic.notes[-1]


def test_tiny_sam2_from_prompts_on_one_slice_and_a_drawing_on_another_keeps_the_drawing(headless, monkeypatch,
                                                                                        tiny_model):
    image, inside = ball_volume()
    ijk_to_ras = GEOMETRIES["lps_anisotropic"]
    volume, segmentation, segment_id, session = make_case(headless, image, ijk_to_ras)
    axis = SlicePlane.for_anatomical_axis("axial", 0, ijk_to_ras, image.shape).aligned_axis
    drawn_k, seed = 6, 9
    drawing = slab(inside, axis, drawn_k)
    replace_segment_from_mask(segmentation, segment_id, drawing, ijk_to_ras)
    monkeypatch.setitem(sam2_video._VIDEO_STRATEGIES, "sam2",
                        sam2_tracker_factory(fresh_engine(tiny_model), (400.0, 150.0)))
    logic = SmartPropagationLogic(session.bridge, PropagationOptions(strategy="sam2", max_slices=4, stop_rule=NO_STOP))
    plane = SlicePlane.for_anatomical_axis("axial", seed, ijk_to_ras, image.shape)
    preview = logic.compute_preview(plane, prompts=PlanePrompts(plane, ((16.0, 14.0),), (1,), (6.0, 5.0, 26.0, 22.0)))
    assert seed in preview.masks and preview.masks[seed].any() and drawn_k in preview.drawn
    logic.apply()
    written = np.moveaxis(segment_mask_in_volume(segmentation, segment_id, volume).astype(bool), axis, 0)
    assert np.array_equal(written[drawn_k], np.moveaxis(drawing, axis, 0)[drawn_k])  # the drawing, untouched
    assert np.array_equal(written[seed], preview.masks[seed])
    assert all(np.array_equal(written[k], preview.masks[k]) for k in preview.masks if k != drawn_k)


# --- the desktop / browser controller path --------------------------------------------------------------------------
def test_the_controller_takes_the_segment_anything_objects_prompts_and_they_survive_the_worker_wire(
        headless, monkeypatch, tiny_model):
    scene = make_scene(headless, GEOMETRIES["lps_anisotropic"], names=("A", "B"))
    node = slice_node("axial", scene.centre_ras())
    controller = SmartPropagationController(scene.bridge, JobRunner(threaded=False), options=PropagationToolOptions(
        strategy="sam2", max_slices=0, stop_rule=NO_STOP))
    plane = controller.plane_of(node)
    sam = SegmentAnythingLogic(scene.bridge, fresh_engine(tiny_model), "sam2_tiny", window_level=(400.0, 150.0))
    sam.add_point(plane, (plane.shape[0] // 2, plane.shape[1] // 2))
    segment_a = scene.bridge.backend.selected_segment_id()
    assert prompts_of_sam_session(sam.session, "another segment") is None
    controller.prompt_source = lambda: prompts_of_sam_session(sam.session, segment_a)
    trackers = []
    oracle_strategy(monkeypatch, trackers)
    reaction = controller.preview(node)
    assert not reaction.message, reaction.message
    finish_jobs(controller)
    (received,) = trackers[0].prompted.values()
    assert received.labels == (1,) and received.mask_2d is not None  # SAM wrote there: the prompts refine it
    run = controller.logic.plan_preview(plane, prompts=controller.prompt_source())
    again = run_from_request(*propagation_request(run, {"name": "sam2_tiny"})[1:])
    assert again.prompts == run.prompts and len(run.prompts) == 1


def test_stale_prompts_on_a_slice_the_user_erased_since_are_not_used_and_the_object_ends_there(headless,
                                                                                               monkeypatch):
    from MVABridgeLib.edit_backend import EditMode
    image, inside = ball_volume()
    ijk_to_ras = GEOMETRIES["identity"]
    volume, segmentation, segment_id, session = make_case(headless, image, ijk_to_ras)
    replace_segment_from_mask(segmentation, segment_id, slab(inside, 0, 8), ijk_to_ras)
    trackers = []
    oracle_strategy(monkeypatch, trackers)
    logic = SmartPropagationLogic(session.bridge, PropagationOptions(strategy="sam2", max_slices=5, stop_rule=NO_STOP))
    seed_plane = SlicePlane.for_anatomical_axis("axial", 8, ijk_to_ras, image.shape)
    logic.compute_preview(seed_plane)
    logic.apply()
    erased_plane = SlicePlane.for_anatomical_axis("axial", 11, ijk_to_ras, image.shape)
    session.bridge.apply_slice_mask(erased_plane, np.ones(erased_plane.shape, bool), EditMode.REMOVE)
    preview = logic.compute_preview(seed_plane, prompts=PlanePrompts(erased_plane, ((16.0, 14.0),), (1,)))
    assert trackers[-1].prompted == {} and "erased" in logic.notes[-1]
    forward = next(stop for stop in preview.stops if stop.direction == 1)
    assert forward.slice_k == 11 and forward.reason == StopReason.VANISHED

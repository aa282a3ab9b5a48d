"""SAM 2 video propagation: the tiny random SAM 2 end to end through the bridge, memory, stop rule, geometry."""
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import GEOMETRIES, add_segmentation

from MVABridgeLib.edit_backend import EditMode
from MVABridgeLib.editor_session import SegmentEditorSession
from MVABridgeLib.segments import replace_segment_from_mask, segment_mask_in_volume
from MVABridgeLib.slice_geometry import SlicePlane
from MVABridgeLib.volumes import add_volume_node
from SegmentAnythingLib.algorithms.sam2_engine import Sam2Engine
from SegmentAnythingLib.algorithms.sam2_models import build_tiny_sam2
from SegmentAnythingLib.algorithms.sam_embedding_cache import EmbeddingCache
from SegmentAnythingLib.sam2_propagation import run_sam2_propagation, sam2_tracker_factory
from SmartPropagationLib.algorithms import PropagationCancelled, StopReason, StopRule
from SmartPropagationLib.algorithms import sam2_video
from SmartPropagationLib.smart_propagation_logic import PropagationOptions, SmartPropagationLogic

NO_STOP = StopRule(min_area_mm2=None, area_ratio_band=None, min_quality=None, box_margin_mm=None,
                   min_object_score=None)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny_model():
    return build_tiny_sam2(seed=0, image_size=64)


def fresh_engine(model, cache_mb=64):
    engine = Sam2Engine(model, EmbeddingCache(max_memory_mb=cache_mb))
    engine.model_name = "sam2_tiny"
    return engine


def ball_volume(shape=(16, 28, 32), center=(8, 14, 16), radius=(6, 9, 10), seed=0):
    rng = np.random.default_rng(seed)
    k, j, i = np.indices(shape)
    inside = (((k - center[0]) / radius[0]) ** 2 + ((j - center[1]) / radius[1]) ** 2
              + ((i - center[2]) / radius[2]) ** 2) <= 1.0
    image = (rng.normal(0.0, 10.0, shape) + 300.0 * inside).astype(np.int16)
    return image, inside


class OracleTracker:
    """The tracker interface with known answers: the bright voxels of the frame, and scheduled scores."""

    def __init__(self, image_kji, threshold=150.0, object_scores=None, ious=None):
        self.image = image_kji
        self.threshold = threshold
        self.object_scores = object_scores or {}
        self.ious = ious or {}
        self.conditioned, self.tracked = {}, []

    def condition(self, k, mask_2d):
        self.conditioned[k] = np.asarray(mask_2d, bool)

    def begin_pass(self, direction):
        pass

    def track(self, k, direction):
        self.tracked.append(k)
        return SimpleNamespace(mask=self.image[k] > self.threshold, iou=self.ious.get(k, 0.95),
                               object_score=self.object_scores.get(k, 8.0))


def make_case(headless, image, ijk_to_ras):
    volume = add_volume_node(headless.scene, image, ijk_to_ras, "Volume")
    segmentation, (segment_id,) = add_segmentation(headless, volume, ("Object",))
    return volume, segmentation, segment_id, SegmentEditorSession(volume, segmentation, segment_id, headless.scene)


def axis_and_plane(ijk_to_ras, shape, index):
    plane = SlicePlane.for_anatomical_axis("axial", index, ijk_to_ras, shape)
    return plane.aligned_axis, plane


def slab(mask, axis, index):
    taken = np.zeros_like(mask)
    where = [slice(None)] * 3
    where[axis] = index
    taken[tuple(where)] = mask[tuple(where)]
    return taken


# --- the stop rule and drawn slices, with an oracle --------------------------------------------------------------
def test_propagation_stops_where_the_object_score_or_predicted_iou_says_the_object_ended():
    image, inside = ball_volume()
    seed = 8
    tracker = OracleTracker(image, object_scores={12: -3.0}, ious={4: 0.2})
    result = sam2_video.propagate_video(tracker, image.shape, seed, {seed: inside[seed]}, "both", 20, (2, 1, 1),
                                        StopRule(area_ratio_band=None, box_margin_mm=None))
    assert result.stops[1].slice_k == 12 and result.stops[1].reason == StopReason.OBJECT_ABSENT
    assert result.stops[-1].slice_k == 4 and result.stops[-1].reason == StopReason.LOW_QUALITY
    assert result.slices == list(range(5, 12))
    unstopped = sam2_video.propagate_video(OracleTracker(image, object_scores={12: -3.0}), image.shape, seed,
                                           {seed: inside[seed]}, 1, 20, (2, 1, 1),
                                           StopRule(area_ratio_band=None, box_margin_mm=None, min_object_score=None))
    assert unstopped.stops[1].reason == StopReason.VANISHED and unstopped.stops[1].slice_k == 14  # a 1-voxel cap


def test_drawn_slices_condition_the_tracker_are_kept_as_drawn_and_an_erased_one_ends_the_object():
    image, inside = ball_volume()
    drawn_10 = inside[10].copy()
    drawn_10[:, :16] = False  # the user's own shape, unlike the oracle's
    drawn = {8: inside[8], 10: drawn_10, 5: np.zeros_like(inside[5])}
    tracker = OracleTracker(image)
    result = sam2_video.propagate_video(tracker, image.shape, 8, drawn, "both", 20, (2, 1, 1), NO_STOP)
    assert set(tracker.conditioned) == {5, 8, 10}
    assert 10 not in tracker.tracked and 5 not in tracker.tracked
    assert np.array_equal(result.masks[10], drawn_10)
    assert result.stops[-1].slice_k == 5 and result.stops[-1].reason == StopReason.VANISHED
    assert min(result.masks) == 6 and max(result.masks) == 14


# --- geometry through the bridge, with the oracle -------------------------------------------------------------
@pytest.mark.parametrize("geometry", sorted(GEOMETRIES))
def test_the_oracle_tracker_lands_on_the_right_voxels_on_oblique_lps_and_anisotropic_volumes(
        headless, monkeypatch, geometry):
    image, inside = ball_volume()
    ijk_to_ras = GEOMETRIES[geometry]
    volume, segmentation, segment_id, session = make_case(headless, image, ijk_to_ras)
    axis, plane = axis_and_plane(ijk_to_ras, image.shape, 0)
    middle = int(np.argmax(inside.sum(axis=tuple(a for a in range(3) if a != axis))))
    plane = SlicePlane.for_anatomical_axis("axial", middle, ijk_to_ras, image.shape)
    replace_segment_from_mask(segmentation, segment_id, slab(inside, axis, middle), ijk_to_ras)
    trackers = []
    monkeypatch.setitem(sam2_video._VIDEO_STRATEGIES, "sam2",
                        lambda image_kji, spacing: trackers.append(OracleTracker(image_kji)) or trackers[-1])
    logic = SmartPropagationLogic(session.bridge, PropagationOptions(strategy="sam2", max_slices=40,
                                                                     stop_rule=NO_STOP))
    preview = logic.compute_preview(plane)
    assert preview.strategy == "sam2" and set(trackers[0].conditioned) == {middle}
    logic.apply()
    assert np.array_equal(segment_mask_in_volume(segmentation, segment_id, volume).astype(bool), inside)


def test_without_a_sam2_model_propagation_falls_back_to_registration_and_says_so(headless, monkeypatch):
    image, inside = ball_volume()
    ijk_to_ras = GEOMETRIES["identity"]
    volume, segmentation, segment_id, session = make_case(headless, image, ijk_to_ras)
    replace_segment_from_mask(segmentation, segment_id, slab(inside, 0, 8), ijk_to_ras)
    monkeypatch.delitem(sam2_video._VIDEO_STRATEGIES, "sam2", raising=False)
    logic = SmartPropagationLogic(session.bridge, PropagationOptions(strategy="sam2", max_slices=2))
    preview = logic.compute_preview(SlicePlane.for_anatomical_axis("axial", 8, ijk_to_ras, image.shape))
    assert preview.strategy == "registration" and "SAM 2" in logic.notes[-1]


# --- the tiny random SAM 2, end to end ------------------------------------------------------------------------
def test_tiny_sam2_propagates_both_ways_through_the_bridge_and_repropagates_from_a_correction(
        headless, monkeypatch, tiny_model):
    image, inside = ball_volume()
    ijk_to_ras = GEOMETRIES["lps_anisotropic"]
    volume, segmentation, segment_id, session = make_case(headless, image, ijk_to_ras)
    axis, _ = axis_and_plane(ijk_to_ras, image.shape, 0)
    seed = 8
    plane = SlicePlane.for_anatomical_axis("axial", seed, ijk_to_ras, image.shape)
    replace_segment_from_mask(segmentation, segment_id, slab(inside, axis, seed), ijk_to_ras)
    factory = sam2_tracker_factory(fresh_engine(tiny_model), (400.0, 150.0))
    trackers = []
    monkeypatch.setitem(sam2_video._VIDEO_STRATEGIES, "sam2",
                        lambda image_kji, spacing: trackers.append(factory(image_kji, spacing)) or trackers[-1])
    logic = SmartPropagationLogic(session.bridge, PropagationOptions(strategy="sam2", max_slices=3,
                                                                     stop_rule=NO_STOP))
    preview = logic.compute_preview(plane)
    slice_shape = np.moveaxis(image, axis, 0).shape[1:]
    assert sorted(preview.masks) == list(range(seed - 3, seed + 4))
    assert all(mask.shape == slice_shape and mask.dtype == bool for mask in preview.masks.values())
    assert all(stop.reason == StopReason.MAX_SLICES for stop in preview.stops)
    logic.apply()
    after_apply = np.moveaxis(segment_mask_in_volume(segmentation, segment_id, volume).astype(bool), axis, 0)
    assert np.array_equal(after_apply[seed], np.moveaxis(inside, axis, 0)[seed])  # the drawn slice is untouched
    assert all(np.array_equal(after_apply[k], preview.masks[k]) for k in preview.masks if k != seed)

    corrected_index = seed + 2
    correction = np.zeros(slice_shape, bool)
    correction[4:12, 6:20] = True
    corrected_plane = SlicePlane.for_anatomical_axis("axial", corrected_index, ijk_to_ras, image.shape)
    session.bridge.apply_slice_mask(corrected_plane, correction, EditMode.REPLACE)
    again = logic.repropagate_from(corrected_plane)
    assert set(trackers[-1].conditioning_frames) == {seed, corrected_index}
    assert sorted(again.masks) == [corrected_index + 1, corrected_index + 2, corrected_index + 3]
    logic.apply()
    final = np.moveaxis(segment_mask_in_volume(segmentation, segment_id, volume).astype(bool), axis, 0)
    assert np.array_equal(final[corrected_index], correction) and np.array_equal(final[seed], after_apply[seed])
    assert np.array_equal(final[seed - 3:seed], after_apply[seed - 3:seed])  # the other side is kept


def test_segment_anything_clicks_work_with_a_sam2_engine_through_the_bridge(headless, tiny_model):
    from SegmentAnythingLib.segment_anything_logic import SegmentAnythingLogic
    image, inside = ball_volume()
    ijk_to_ras = GEOMETRIES["oblique_anisotropic"]
    volume, segmentation, segment_id, session = make_case(headless, image, ijk_to_ras)
    plane = SlicePlane.for_anatomical_axis("axial", 8, ijk_to_ras, image.shape)
    logic = SegmentAnythingLogic(session.bridge, fresh_engine(tiny_model), "sam2_tiny", window_level=(400.0, 150.0))
    prediction = logic.add_point(plane, (14, 16))
    assert len(prediction) == 3 and prediction.mask(0).shape == plane.shape
    written = segment_mask_in_volume(segmentation, segment_id, volume).astype(bool)
    on_plane = plane.sample(written.astype(np.float32), ijk_to_ras, order=0) > 0.5
    assert np.array_equal(on_plane, prediction.mask(0))
    assert not np.delete(np.moveaxis(written, plane.aligned_axis, 0), 8, axis=0).any()  # only the clicked slice
    assert logic.cycle_candidate() == 1


def test_cancelling_a_sam2_propagation_writes_nothing(headless, monkeypatch, tiny_model):
    image, inside = ball_volume()
    ijk_to_ras = GEOMETRIES["identity"]
    volume, segmentation, segment_id, session = make_case(headless, image, ijk_to_ras)
    axis, _ = axis_and_plane(ijk_to_ras, image.shape, 0)
    replace_segment_from_mask(segmentation, segment_id, slab(inside, axis, 8), ijk_to_ras)
    monkeypatch.setitem(sam2_video._VIDEO_STRATEGIES, "sam2",
                        sam2_tracker_factory(fresh_engine(tiny_model), (400.0, 150.0)))
    logic = SmartPropagationLogic(session.bridge, PropagationOptions(strategy="sam2", stop_rule=NO_STOP))
    fractions = []
    with pytest.raises(PropagationCancelled):
        logic.compute_preview(SlicePlane.for_anatomical_axis("axial", 8, ijk_to_ras, image.shape),
                              progress=fractions.append, cancel=lambda: len(fractions) >= 2)
    assert len(fractions) == 2 and logic.preview is None
    assert np.array_equal(segment_mask_in_volume(segmentation, segment_id, volume).astype(bool), slab(inside, axis, 8))


def test_the_conditioning_mask_reaches_a_slice_three_away_through_the_memory_alone(tiny_model):
    image, inside = ball_volume()
    factory = sam2_tracker_factory(fresh_engine(tiny_model), (400.0, 150.0))
    wide = inside[8].copy()
    narrow = np.zeros_like(wide)
    narrow[10:18, 12:20] = True

    def track_three(mask):
        tracker = factory(image, (2.0, 1.0, 1.0))
        tracker.condition(8, mask)
        tracker.begin_pass(1)
        return [tracker.track(k, 1) for k in (9, 10, 11)][-1]

    first, repeat, other = track_three(wide), track_three(wide), track_three(narrow)
    assert np.array_equal(first.lowres_logits, repeat.lowres_logits)  # deterministic: the mask is the only change
    assert np.abs(first.lowres_logits - other.lowres_logits).max() > 1e-3
    assert not np.array_equal(first.mask, other.mask)


@pytest.mark.slow
def test_the_memory_held_while_tracking_300_slices_is_that_of_30(tiny_model):
    peaks = {}
    for count in (30, 300):
        rng = np.random.default_rng(count)
        image = rng.normal(0.0, 50.0, (count, 24, 24)).astype(np.float32)
        seed_mask = np.zeros((24, 24), bool)
        seed_mask[6:18, 6:18] = True
        engine = fresh_engine(tiny_model, cache_mb=0.05)  # about 12 slices of features
        tracker = sam2_tracker_factory(engine, (200.0, 0.0))(image, (1.0, 1.0, 1.0))
        peak = [0]

        def sample(done, total):
            peak[0] = max(peak[0], tracker.memory_bytes() + engine.cache.memory_bytes)

        result = sam2_video.propagate_video(tracker, image.shape, 0, {0: seed_mask}, 1, count, (1.0, 1.0, 1.0),
                                            NO_STOP, sample)
        assert len(result.masks) == count
        assert len(tracker.memory_frames()) <= tracker.keep_frames + 1
        peaks[count] = peak[0]
    assert peaks[300] <= 1.05 * peaks[30]


def test_the_plain_worker_function_propagates_and_repropagates_on_arrays(tiny_model):
    image, inside = ball_volume()
    engine = fresh_engine(tiny_model)
    first = run_sam2_propagation(image, (2.0, 1.0, 1.0), 8, {8: inside[8]}, "both", 2, NO_STOP, (400.0, 150.0),
                                 engine=engine)
    assert first.slices == [6, 7, 8, 9, 10]
    correction = inside[9] & False
    correction[8:20, 8:24] = True
    again = run_sam2_propagation(image, (2.0, 1.0, 1.0), 9, {8: inside[8], 9: correction}, max_slices=2,
                                 stop_rule=NO_STOP, window_level=(400.0, 150.0), engine=engine, corrected_from=first)
    assert again.slices == [6, 7, 8, 9, 10, 11] and np.array_equal(again.masks[9], correction)
    assert np.array_equal(again.masks[7], first.masks[7])

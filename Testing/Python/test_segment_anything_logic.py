"""Segment Anything plumbing through the bridge with a tiny random SAM: prompts, undo, candidates, prefetch."""
import numpy as np
import pytest
from conftest import GEOMETRIES, add_segmentation

from MVABridgeLib.editor_session import SegmentEditorSession
from MVABridgeLib.errors import OutsideVolumeError
from MVABridgeLib.segments import replace_segment_from_mask, segment_mask_in_volume
from MVABridgeLib.slice_geometry import SlicePlane
from MVABridgeLib.volumes import add_volume_node
from SegmentAnythingLib.algorithms.sam_engine import SamEngine
from SegmentAnythingLib.algorithms.sam_models import build_tiny_sam
from SegmentAnythingLib.algorithms.sam_prefetch import EmbeddingPrefetcher
from SegmentAnythingLib.segment_anything_logic import SegmentAnythingLogic

MATRIX = GEOMETRIES["lps_anisotropic"]


@pytest.fixture(scope="module")
def engine():
    return SamEngine(build_tiny_sam(seed=0))


@pytest.fixture
def sam_case(headless, engine):
    k, j, i = np.mgrid[0:8, 0:48, 0:40]
    image = np.where((j - 24) ** 2 + (i - 20) ** 2 < 100, 300, 0).astype(np.int16)
    volume = add_volume_node(headless.scene, image, MATRIX)
    segmentation, (segment_id,) = add_segmentation(headless, volume)
    session = SegmentEditorSession(volume, segmentation, segment_id, headless.scene)
    logic = SegmentAnythingLogic(session.bridge, engine, "tiny", window_level=(400.0, 100.0))
    plane = SlicePlane.for_anatomical_axis("axial", 3, MATRIX, image.shape)
    return logic, plane, session, volume, segmentation, segment_id


def segment(case):
    logic, plane, session, volume, segmentation, segment_id = case
    return segment_mask_in_volume(segmentation, segment_id, volume).astype(bool)


def test_a_point_writes_the_best_candidate_on_that_slice_only(sam_case):
    logic, plane, session, *_ = sam_case
    prediction = logic.add_point(plane, (24, 20), positive=True)
    assert len(prediction) == 3 and prediction.scores.shape == (3,)
    result = segment(sam_case)
    on_plane = plane.sample(result, MATRIX, order=0) > 0
    assert np.array_equal(on_plane, prediction.mask(0))
    assert result.sum() == on_plane.sum()  # nothing off the slice


def test_each_prompt_is_one_undo_step_and_cycling_shows_the_other_candidates(sam_case):
    logic, plane, session, *_ = sam_case
    logic.add_point(plane, (24, 20))
    first = segment(sam_case)
    second_prediction = logic.add_point(plane, (5, 5), positive=False)
    logic.set_box(plane, (10, 8), (38, 32))
    index = logic.cycle_candidate()
    assert index == 1
    cycled = plane.sample(segment(sam_case), MATRIX, order=0) > 0
    assert np.array_equal(cycled, logic.session.prediction.mask(1))
    for _ in range(3):
        assert session.undo()
    assert np.array_equal(segment(sam_case), first)
    assert second_prediction is not None


def test_what_the_slice_held_before_the_prompts_is_kept(sam_case):
    logic, plane, session, volume, segmentation, segment_id = sam_case
    drawn = np.zeros((8, 48, 40), bool)
    drawn[3, 0:3, 0:3] = True
    drawn[5, 10:20, 10:20] = True
    replace_segment_from_mask(segmentation, segment_id, drawn, MATRIX)
    logic.add_point(plane, (24, 20), positive=False)
    result = segment(sam_case)
    assert result[3, 0:3, 0:3].all() and result[5, 10:20, 10:20].all()


def test_point_outside_the_slice_raises_and_changes_nothing(sam_case):
    logic, plane, *_ = sam_case
    with pytest.raises(OutsideVolumeError):
        logic.add_point(plane, (-10, 5))
    assert segment(sam_case).sum() == 0


def test_prefetch_computes_neighbouring_embeddings_in_the_background(sam_case, engine):
    logic, plane, *_ = sam_case
    engine.cache.clear()
    logic.prefetcher = EmbeddingPrefetcher(engine)
    try:
        logic.prefetch_around(plane, count=2)
        assert logic.prefetcher.wait_idle(timeout_s=30)
        for step in (-2, -1, 0, 1, 2):
            assert engine.has_embedding(logic.slice_key(plane.neighbour(step)))
        status = logic.status()
        assert "5 embeddings cached" in status and "at 256 px" in status, status
    finally:
        logic.prefetcher.stop()


def test_an_embedding_job_reads_the_slice_now_and_runs_the_model_in_a_worker(sam_case, engine):
    import threading
    logic, plane, *_ = sam_case
    engine.cache.clear()
    job = logic.embedding_job(plane)
    assert job is not None and not engine.has_embedding(logic.slice_key(plane))
    worker = threading.Thread(target=job)
    worker.start()
    worker.join(timeout=30)
    assert engine.has_embedding(logic.slice_key(plane)) and logic.embedding_job(plane) is None
    logic.add_point(plane, (24, 20))  # the click then needs no encoding
    assert segment(sam_case).any()


class RequestLog:
    """Records what the logic asks a prefetcher for (the order is what matters here)."""

    def __init__(self):
        self.requests = []

    def request(self, items):
        self.requests.append([key for key, _ in items])


def test_prefetch_embeds_ahead_of_the_scrolling_direction_first(sam_case):
    logic, plane, *_ = sam_case  # axial slice 3 of 8
    log = RequestLog()
    logic.prefetcher = log

    def order(request):
        return [next(step for step in range(-7, 8) if logic.slice_key(plane.neighbour(step)) == key) for key in request]

    logic.prefetch_around(plane, count=2)
    assert order(log.requests[-1]) == [0, 1, -1, 2, -2]  # first visit: nearest first
    logic.prefetch_around(plane.neighbour(1), count=2)  # scrolled up to 4
    assert order(log.requests[-1]) == [1, 2, 3, 0, -1]
    logic.prefetch_around(plane, count=2)  # back down to 3
    assert order(log.requests[-1]) == [0, -1, -2, 1, 2]


def test_window_level_decides_what_the_model_sees(sam_case):
    logic, plane, *_ = sam_case
    image = logic.slice_image(plane)
    assert image.dtype == np.uint8 and image.shape == plane.shape + (3,)
    # window 400 / level 100 maps [-100, 300] to [0, 255]: background 0 -> 63, the disc 300 -> 255
    assert image.max() == 255 and image.min() == 63
    logic.window_level = (4000.0, 2000.0)
    assert logic.slice_image(plane).max() < 255


def test_sam_strategy_propagates_through_smart_propagation_and_falls_back_without_a_model(sam_case, engine):
    from SegmentAnythingLib.sam_propagation import register_sam_propagation
    from SmartPropagationLib.algorithms import slice_predictors
    from SmartPropagationLib.smart_propagation_logic import PropagationOptions, SmartPropagationLogic
    logic, plane, session, volume, segmentation, segment_id = sam_case
    disc = np.zeros((8, 48, 40), bool)
    k, j, i = np.mgrid[0:8, 0:48, 0:40]
    disc[3] = ((j - 24) ** 2 + (i - 20) ** 2 < 100)[3]
    replace_segment_from_mask(segmentation, segment_id, disc, MATRIX)
    saved = dict(slice_predictors._STRATEGIES)
    try:
        slice_predictors._STRATEGIES.pop("sam", None)
        fallback = SmartPropagationLogic(session.bridge, PropagationOptions(strategy="sam", max_slices=2))
        fallback.compute_preview(plane)
        assert fallback.preview.strategy == "registration" and "No Segment Anything model" in fallback.notes[0]
        register_sam_propagation(engine, (400.0, 100.0))
        with_sam = SmartPropagationLogic(session.bridge, PropagationOptions(strategy="sam", max_slices=2))
        preview = with_sam.compute_preview(plane)
        assert preview.strategy == "sam" and preview.masks[3].any()
    finally:
        slice_predictors._STRATEGIES.clear()
        slice_predictors._STRATEGIES.update(saved)


def test_an_auto_input_engine_prompts_and_propagates_through_the_bridge(sam_case):
    from SegmentAnythingLib.sam_propagation import register_sam_propagation
    from SmartPropagationLib.algorithms import slice_predictors
    from SmartPropagationLib.smart_propagation_logic import PropagationOptions, SmartPropagationLogic
    _, plane, session, volume, segmentation, segment_id = sam_case
    auto = SamEngine(build_tiny_sam(seed=0), input_size="auto")  # 48 x 40 slices: encoded at 128 px
    logic = SegmentAnythingLogic(session.bridge, auto, "tiny", window_level=(400.0, 100.0))
    first = logic.add_point(plane, (24, 20))
    refined = logic.add_point(plane, (2, 2), positive=False)
    assert auto.last_embedding[1] == 128 and first.lowres(0).shape == (32, 32)
    written = segment(sam_case)
    assert np.array_equal(plane.sample(written, MATRIX, order=0) > 0, refined.mask(0))
    assert written.sum() == written[3].sum()  # that slice only
    saved = dict(slice_predictors._STRATEGIES)
    try:
        register_sam_propagation(auto, (400.0, 100.0))
        cached = len(auto.cache)
        preview = SmartPropagationLogic(session.bridge, PropagationOptions(strategy="sam", max_slices=2)).compute_preview(plane)
        # The random model's quality may stop it early, but neighbours were embedded at 128 px and decoded.
        assert preview.strategy == "sam" and len(auto.cache) > cached and auto.last_embedding[1] == 128
    finally:
        slice_predictors._STRATEGIES.clear()
        slice_predictors._STRATEGIES.update(saved)

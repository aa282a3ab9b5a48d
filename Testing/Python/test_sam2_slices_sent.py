"""A sam2 propagation plan holds (and its compute request carries) only the slices tracking can reach and the
conditioning slices, by their index in the volume; tracking on them equals tracking on the whole stack."""
import dataclasses

import numpy as np
import pytest
from conftest import GEOMETRIES
from test_sam2_propagation import NO_STOP, ball_volume, fresh_engine, make_case, slab

from MVABridgeLib.segments import replace_segment_from_mask
from MVABridgeLib.slice_geometry import SlicePlane
from MVABridgeLib.windowing import (
    auto_window_level, sampled_auto_window_level, window_stack_to_uint8, window_to_uint8)
from MVAComputeLib.compute_errors import ComputeError
from MVAComputeLib.propagation_operation import propagation_request, run_from_request
from SegmentAnythingLib.algorithms.sam2_models import build_tiny_sam2
from SegmentAnythingLib.sam2_propagation import sam2_tracker_factory
from SmartPropagationLib.algorithms import PropagationInputError
from SmartPropagationLib.algorithms.video_frames import SliceStack
from SmartPropagationLib.propagation_prompts import PlanePrompts
from SmartPropagationLib.propagation_run import run_propagation
from SmartPropagationLib.smart_propagation_logic import PropagationOptions, SmartPropagationLogic


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def planned_case(headless, geometry="identity", max_slices=2):
    """A ball volume, the seed slice 8 and a far slice 1 drawn, a point prompted on slice 14: a sam2 plan from 8."""
    image, inside = ball_volume()
    ijk_to_ras = GEOMETRIES[geometry]
    volume, segmentation, segment_id, session = make_case(headless, image, ijk_to_ras)
    plane = SlicePlane.for_anatomical_axis("axial", 8, ijk_to_ras, image.shape)
    axis = plane.aligned_axis
    far = slab(inside, axis, 8) | slab(np.roll(inside, -4, axis=axis), axis, 1)  # the user's shape on slice 1
    replace_segment_from_mask(segmentation, segment_id, far, ijk_to_ras)
    logic = SmartPropagationLogic(session.bridge, PropagationOptions(strategy="sam2", max_slices=max_slices,
                                                                     stop_rule=NO_STOP))
    prompted = SlicePlane.for_anatomical_axis("axial", 14, ijk_to_ras, image.shape)
    centre = (prompted.shape[1] // 2, prompted.shape[0] // 2)
    run = logic.plan_preview(plane, remote_strategies=("sam2",), prompts=PlanePrompts(prompted, (centre,), (1,)))
    whole = np.moveaxis(session.bridge.work_volume().array, axis, 0)
    return run, whole


def test_a_sam2_plan_and_its_request_hold_the_reachable_slices_and_every_conditioning_slice_only(headless):
    run, whole = planned_case(headless)
    seed, count = run.seed_k, whole.shape[0]
    assert seed == 8 and set(run.masks) == {1, 8} and set(run.prompts) == {14} and run.masks[1].any()
    expected = [1, 6, 7, 8, 9, 10, 14]
    assert list(run.frames) == expected and run.frame_count == count and run.low == 0
    assert np.array_equal(run.image, whole[expected])
    assert run.window_level == auto_window_level(whole)  # a small volume: the whole volume's exact window
    op, params, arrays = propagation_request(run, {"name": "sam2_tiny"})
    assert arrays["image"].shape[0] == len(expected) < count
    again = run_from_request(params, arrays)
    assert again.frames == run.frames and again.frame_count == count and arrays["image"].dtype == np.uint8
    assert np.array_equal(again.image, window_to_uint8(run.image, *run.window_level))  # as SAM 2 sees them
    assert window_to_uint8(again.image, *again.window_level).tobytes() == again.image.tobytes()
    with pytest.raises(PropagationInputError, match="not in this stack"):
        SliceStack(run.frames, run.image, count)[seed + 3]


def test_a_request_whose_frame_indices_do_not_match_its_slices_is_refused(headless):
    run, _ = planned_case(headless)
    op, params, arrays = propagation_request(run, {"name": "sam2_tiny"})
    with pytest.raises(ComputeError, match="frame indices"):
        run_from_request({**params, "frames": params["frames"][:-1]}, arrays)
    with pytest.raises(PropagationInputError, match="distinct"):
        SliceStack((1, 1, 2), np.zeros((3, 4, 4)), 5)


def test_tiny_sam2_on_the_planned_slices_equals_tracking_on_the_whole_stack_also_through_the_wire(headless):
    run, whole = planned_case(headless, max_slices=3)
    tiny = build_tiny_sam2(seed=0, image_size=64)

    def propagated(planned):
        return run_propagation(planned, tracker_factory=sam2_tracker_factory(fresh_engine(tiny), planned.window_level))

    sent = propagated(run)
    on_the_whole = propagated(dataclasses.replace(run, image=whole, frames=(), frame_count=0))
    wired = propagated(run_from_request(*propagation_request(run, {"name": "sam2_tiny"})[1:]))
    assert sorted(sent.masks) == sorted(on_the_whole.masks) == sorted(wired.masks)
    assert set(range(run.seed_k - 3, run.seed_k + 4)) <= set(sent.masks)
    for result in (on_the_whole, wired):
        assert all(np.array_equal(sent.masks[k], result.masks[k]) for k in sent.masks)
        assert sent.quality == result.quality and sent.stops == result.stops
    without_far = dataclasses.replace(run, masks={k: m for k, m in run.masks.items() if k != 1})
    unconditioned = propagated(without_far)  # the far drawn slice conditions the memory: it has to be sent
    assert any(not np.array_equal(sent.masks[k], unconditioned.masks[k]) for k in sent.masks if k not in run.masks)


def test_the_sampled_automatic_window_is_exact_on_small_volumes_and_close_on_large_ones():
    rng = np.random.default_rng(0)
    small = rng.normal(40.0, 300.0, (6, 50, 60)).astype(np.int16)
    assert sampled_auto_window_level(small) == auto_window_level(small)
    large = rng.normal(40.0, 300.0, (40, 100, 100)).astype(np.int16)
    window, level = sampled_auto_window_level(large, max_values=20_000)
    exact_window, exact_level = auto_window_level(large)
    assert abs(window - exact_window) < 0.05 * exact_window and abs(level - exact_level) < 0.02 * exact_window


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int16, np.uint16, np.float32, np.float64])
def test_windowing_a_stack_through_its_lookup_table_gives_window_to_uint8s_values(dtype):
    info = np.iinfo(dtype) if np.dtype(dtype).kind in "iu" else None
    low, high = (info.min, info.max) if info else (-2000.0, 3000.0)
    values = np.random.default_rng(1).uniform(low, high, (3, 20, 30)).astype(dtype)
    if info is None:
        values[0, 0, :5] = (np.nan, np.inf, -np.inf, 3e38, -3e38)
    for window, level in ((400.0, 40.0), (2.5, float(values.mean())), (1e5, -7.0)):
        assert np.array_equal(window_stack_to_uint8(values, window, level), window_to_uint8(values, window, level))

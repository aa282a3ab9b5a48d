"""Smart Propagation through the bridge on a real scene: preview, apply as one undo step, annotated slices kept."""
import numpy as np
import pytest
from conftest import add_segmentation

from MVABridgeLib.editor_session import SegmentEditorSession
from MVABridgeLib.segments import replace_segment_from_mask, segment_mask_in_volume
from MVABridgeLib.slice_geometry import SlicePlane, slice_to_ras_for
from MVABridgeLib.volumes import add_volume_node
from MVAEvaluationLib.phantom import make_ct_phantom
from SmartPropagationLib.smart_propagation_logic import (
    PropagationOptions, PropagationPlaneError, SmartPropagationLogic)


@pytest.fixture
def nodule_case(headless):
    phantom = make_ct_phantom(shape_kji=(40, 80, 80), seed=3)
    volume = add_volume_node(headless.scene, phantom.image, phantom.ijk_to_ras, "CT")
    segmentation, (segment_id,) = add_segmentation(headless, volume, ("Nodule",))
    session = SegmentEditorSession(volume, segmentation, segment_id, headless.scene)
    nodule = phantom.mask("nodule").astype(bool)
    return phantom, volume, segmentation, segment_id, session, nodule


def seed_on_largest_slice(phantom, segmentation, segment_id, nodule):
    k = int(np.argmax(nodule.sum(axis=(1, 2))))
    seed = np.zeros_like(nodule)
    seed[k] = nodule[k]
    replace_segment_from_mask(segmentation, segment_id, seed, phantom.ijk_to_ras)
    return k


def test_propagation_preview_apply_and_single_undo(nodule_case):
    phantom, volume, segmentation, segment_id, session, nodule = nodule_case
    k = seed_on_largest_slice(phantom, segmentation, segment_id, nodule)
    logic = SmartPropagationLogic(session.bridge, PropagationOptions(strategy="registration"))
    plane = SlicePlane.for_anatomical_axis("axial", k, phantom.ijk_to_ras, phantom.image.shape)
    preview = logic.compute_preview(plane)
    assert segment_mask_in_volume(segmentation, segment_id, volume).sum() == nodule[k].sum()  # nothing written yet
    assert len(preview.stops) == 2 and all(preview.stop_messages())
    first, last = phantom.nodule_slices
    assert abs(min(preview.masks) - first) <= 2 and abs(max(preview.masks) - last) <= 2
    logic.apply()
    result = segment_mask_in_volume(segmentation, segment_id, volume).astype(bool)
    assert np.array_equal(result[k], nodule[k])  # the user's slice is untouched
    dice = 2 * (result & nodule).sum() / (result.sum() + nodule.sum())
    assert dice > 0.8
    assert session.undo()
    assert segment_mask_in_volume(segmentation, segment_id, volume).sum() == nodule[k].sum()


def test_interpolation_between_two_annotated_slices_keeps_them_and_fills_between(nodule_case):
    phantom, volume, segmentation, segment_id, session, nodule = nodule_case
    first, last = phantom.nodule_slices
    a, b = first + 1, last - 1
    drawn = np.zeros_like(nodule)
    drawn[a], drawn[b] = nodule[a], nodule[b]
    replace_segment_from_mask(segmentation, segment_id, drawn, phantom.ijk_to_ras)
    logic = SmartPropagationLogic(session.bridge)
    preview = logic.compute_preview(SlicePlane.for_anatomical_axis("axial", b, phantom.ijk_to_ras,
                                                                   phantom.image.shape))
    assert preview.strategy == "interpolation"
    logic.apply()
    result = segment_mask_in_volume(segmentation, segment_id, volume).astype(bool)
    assert np.array_equal(result[a], nodule[a]) and np.array_equal(result[b], nodule[b])
    between = result[a + 1:b]
    assert all(between[i].any() for i in range(len(between)))
    assert not result[:a].any() and not result[b + 1:].any()


def test_oblique_view_is_refused_with_a_clear_message(nodule_case):
    phantom, volume, segmentation, segment_id, session, nodule = nodule_case
    seed_on_largest_slice(phantom, segmentation, segment_id, nodule)
    center = (phantom.ijk_to_ras @ np.append((np.array(phantom.image.shape[::-1]) - 1) / 2, 1))[:3]
    slice_to_ras = slice_to_ras_for("axial", center)
    c, s = np.cos(0.5), np.sin(0.5)
    slice_to_ras[:3, :3] = np.array([[1, 0, 0], [0, c, -s], [0, s, c]]) @ slice_to_ras[:3, :3]
    plane = SlicePlane.voxel_aligned(slice_to_ras, phantom.ijk_to_ras, phantom.image.shape)
    with pytest.raises(PropagationPlaneError, match="aligned"):
        SmartPropagationLogic(session.bridge).compute_preview(plane)


def test_apply_without_preview_and_empty_seed_raise(nodule_case):
    phantom, volume, segmentation, segment_id, session, nodule = nodule_case
    logic = SmartPropagationLogic(session.bridge)
    with pytest.raises(ValueError, match="preview"):
        logic.apply()
    plane = SlicePlane.for_anatomical_axis("axial", 5, phantom.ijk_to_ras, phantom.image.shape)
    with pytest.raises(ValueError, match="empty|Empty"):
        logic.compute_preview(plane)
    assert segment_mask_in_volume(segmentation, segment_id, volume).sum() == 0


def test_repropagation_after_a_correction_changes_only_slices_beyond_it(nodule_case):
    phantom, volume, segmentation, segment_id, session, _ = nodule_case
    liver = phantom.mask("liver").astype(bool)
    k = seed_on_largest_slice(phantom, segmentation, segment_id, liver)
    logic = SmartPropagationLogic(session.bridge, PropagationOptions(strategy="registration"))
    plane = SlicePlane.for_anatomical_axis("axial", k, phantom.ijk_to_ras, phantom.image.shape)
    logic.compute_preview(plane)
    logic.apply()
    corrected_k = k + 3
    corrected = segment_mask_in_volume(segmentation, segment_id, volume).astype(bool)
    corrected[corrected_k] = liver[corrected_k]
    replace_segment_from_mask(segmentation, segment_id, corrected, phantom.ijk_to_ras)
    preview = logic.repropagate_from(plane.neighbour(3))
    assert preview.masks and min(preview.masks) == corrected_k + 1
    logic.apply()
    after = segment_mask_in_volume(segmentation, segment_id, volume).astype(bool)
    assert np.array_equal(after[:corrected_k + 1], corrected[:corrected_k + 1])
    assert session.undo()
    assert np.array_equal(segment_mask_in_volume(segmentation, segment_id, volume).astype(bool), corrected)


def test_seed_on_the_first_slice_of_the_volume_propagates_one_way(headless):
    image = np.zeros((10, 30, 30), np.int16)
    image[:6, 10:20, 10:20] = 200
    volume = add_volume_node(headless.scene, image, np.diag([-0.8, -0.8, 2.5, 1.0]))
    segmentation, (segment_id,) = add_segmentation(headless, volume)
    seed = np.zeros(image.shape, bool)
    seed[0] = image[0] > 100
    replace_segment_from_mask(segmentation, segment_id, seed, np.diag([-0.8, -0.8, 2.5, 1.0]))
    session = SegmentEditorSession(volume, segmentation, segment_id, headless.scene)
    logic = SmartPropagationLogic(session.bridge)
    preview = logic.compute_preview(SlicePlane.for_anatomical_axis("axial", 0, np.diag([-0.8, -0.8, 2.5, 1.0]),
                                                                   image.shape))
    assert min(preview.masks) == 0 and 4 <= max(preview.masks) <= 7
    assert any("end of the volume" in message for message in preview.stop_messages())


def test_single_slice_volume_is_refused_before_anything_changes(headless):
    from MVABridgeLib.errors import InvalidVolumeError
    volume = add_volume_node(headless.scene, np.ones((1, 20, 20), np.int16), np.eye(4))
    segmentation, (segment_id,) = add_segmentation(headless, volume)
    session = SegmentEditorSession(volume, segmentation, segment_id, headless.scene)
    with pytest.raises(InvalidVolumeError, match="single slice"):
        SmartPropagationLogic(session.bridge).compute_preview(
            SlicePlane.for_anatomical_axis("axial", 0, np.eye(4), (1, 20, 20)))

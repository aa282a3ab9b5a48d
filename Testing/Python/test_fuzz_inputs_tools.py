"""Fuzz suite, tool inputs through the public logic APIs: clicks outside the slice, wrong-shape strokes, actions
before anything to apply, no segment selected, broken volumes, empty segments, hostile segment names. Each bad
input raises its own error class and leaves segments, undo history and scene as they were."""
import numpy as np
import pytest
from conftest import add_segmentation
from fuzz_support import MATRIX, Work, disc_image

from MVABridgeLib.errors import (InvalidGeometryError, InvalidMaskError, InvalidSegmentationError,
                                 InvalidVolumeError, NothingToApplyError, OutsideVolumeError)
from MVABridgeLib.node_io import load_segmentation_node, save_segmentation_node
from MVABridgeLib.segments import replace_segment_from_mask, segment_mask_in_volume
from MVABridgeLib.slice_geometry import SlicePlane, slice_to_ras_for
from MVAEvaluationLib.simulated_user import dab_mask
from SmartBrushLib.smart_brush_logic import SmartBrushLogic
from SmartPropagationLib.algorithms.propagation_errors import EmptySeedMaskError
from SmartPropagationLib.smart_propagation_logic import PropagationPlaneError, SmartPropagationLogic
from SmartRegionsLib.smart_regions_logic import SmartRegionsLogic


@pytest.fixture
def work(headless):
    return Work(headless)


@pytest.fixture(scope="module")
def tiny_engine():
    from SegmentAnythingLib.engine_factory import create_engine
    return create_engine("tiny", device="cpu")


def axial(index=3, shape=None):
    return SlicePlane.for_anatomical_axis("axial", index, MATRIX, shape or disc_image().shape)


def oblique():
    center_ras = (MATRIX @ np.append((np.array(disc_image().shape[::-1]) - 1) / 2, 1))[:3]
    slice_to_ras = slice_to_ras_for("axial", center_ras)
    c, s = np.cos(0.5), np.sin(0.5)
    slice_to_ras[:3, :3] = np.array([[1, 0, 0], [0, c, -s], [0, s, c]]) @ slice_to_ras[:3, :3]
    return SlicePlane.voxel_aligned(slice_to_ras, MATRIX, disc_image().shape)


def refuses(work, error_class, action, match=None):
    before = work.snapshot()
    with pytest.raises(error_class, match=match) as raised:
        action()
    assert type(raised.value) is error_class
    work.assert_unchanged(before)


def sam_logic(work, engine):
    from SegmentAnythingLib.segment_anything_logic import SegmentAnythingLogic
    return SegmentAnythingLogic(work.bridge, engine, "tiny")


# --- Smart Brush --------------------------------------------------------------------------------------------------
def test_brush_stroke_of_another_shape_than_the_slice(work):
    refuses(work, InvalidMaskError, lambda: SmartBrushLogic(work.bridge).add_stroke(axial(), np.ones((3, 3), bool)),
            "differs from the slice shape")


def test_brush_apply_before_any_stroke(work):
    refuses(work, NothingToApplyError, SmartBrushLogic(work.bridge).apply, "paint a stroke first")


def test_brush_predict_3d_before_any_stroke(work):
    refuses(work, NothingToApplyError, lambda: SmartBrushLogic(work.bridge).predict_volume(axial()), "paint")


def test_brush_stroke_with_no_segment_selected(work):
    work.session.logic.SetCurrentSegmentID("")
    plane = axial()
    refuses(work, InvalidSegmentationError,
            lambda: SmartBrushLogic(work.bridge).add_stroke(plane, dab_mask(plane.shape, (12, 12))), "No segment")


def test_brush_stroke_on_a_volume_with_nan_voxels(headless):
    image = disc_image(np.float32)
    image[0, 0, 0] = np.nan
    work = Work(headless, image)
    plane = axial()
    refuses(work, InvalidVolumeError,
            lambda: SmartBrushLogic(work.bridge).add_stroke(plane, dab_mask(plane.shape, (12, 12))), "NaN")


def test_brush_stroke_on_a_single_slice_volume(headless):
    work = Work(headless, disc_image()[:1])
    plane = axial(0, (1, 24, 24))
    refuses(work, InvalidVolumeError,
            lambda: SmartBrushLogic(work.bridge).add_stroke(plane, dab_mask(plane.shape, (12, 12))), "single slice")


# --- Smart Regions ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, pixel", [("above_the_slice", (-5, 3)), ("far_right", (3, 1000)),
                                         ("nan_row", (np.nan, 3)), ("infinite_column", (3, np.inf))])
def test_regions_click_outside_the_slice(work, name, pixel):
    refuses(work, OutsideVolumeError, lambda: SmartRegionsLogic(work.bridge).click(axial(), pixel), "outside")


def test_regions_drag_over_no_pixel(work):
    refuses(work, InvalidMaskError, lambda: SmartRegionsLogic(work.bridge).drag(axial(), []), "at least one pixel")


def test_regions_remove_click_on_an_empty_segment_changes_nothing_and_says_so(work):
    work.session.select_segment(work.ids[2])
    before = work.snapshot()
    result = SmartRegionsLogic(work.bridge).click(axial(), (12, 12), add=False)
    assert result.added == 0 and result.removed == 0 and "Nothing changed" in result.message
    work.assert_unchanged(before)


def test_regions_click_with_no_segment_selected(work):
    work.session.logic.SetCurrentSegmentID("")
    refuses(work, InvalidSegmentationError, lambda: SmartRegionsLogic(work.bridge).click(axial(), (12, 12)),
            "No segment")


# --- Smart Propagation --------------------------------------------------------------------------------------------
def test_propagation_from_an_empty_slice(work):
    work.session.select_segment(work.ids[2])
    refuses(work, EmptySeedMaskError, lambda: SmartPropagationLogic(work.bridge).compute_preview(axial()), "empty")


def test_propagation_apply_before_a_preview(work):
    refuses(work, NothingToApplyError, SmartPropagationLogic(work.bridge).apply, "compute a preview first")


def test_propagation_in_an_oblique_view(work):
    refuses(work, PropagationPlaneError, lambda: SmartPropagationLogic(work.bridge).compute_preview(oblique()),
            "aligned")


def test_propagation_on_a_zero_spacing_volume(work):
    work.volume.SetSpacing(0.0, 1.0, 1.0)
    refuses(work, InvalidGeometryError, lambda: SmartPropagationLogic(work.bridge).compute_preview(axial()),
            "spacing")


# --- Segment Anything ---------------------------------------------------------------------------------------------
def test_sam_point_outside_the_slice(work, tiny_engine):
    refuses(work, OutsideVolumeError, lambda: sam_logic(work, tiny_engine).add_point(axial(), (-1, 5)), "outside")


def test_sam_box_corner_outside_the_slice(work, tiny_engine):
    refuses(work, OutsideVolumeError, lambda: sam_logic(work, tiny_engine).set_box(axial(), (2, 2), (50, 50)),
            "outside")


def test_sam_cycle_before_any_prompt(work, tiny_engine):
    refuses(work, NothingToApplyError, sam_logic(work, tiny_engine).cycle_candidate, "click on a slice first")


def test_sam_point_with_no_segment_selected(work, tiny_engine):
    work.session.logic.SetCurrentSegmentID("")
    refuses(work, InvalidSegmentationError, lambda: sam_logic(work, tiny_engine).add_point(axial(), (12, 12)),
            "No segment")


def test_sam_point_on_a_zero_spacing_volume(work, tiny_engine):
    work.volume.SetSpacing(1.0, 0.0, 1.0)
    refuses(work, InvalidGeometryError, lambda: sam_logic(work, tiny_engine).add_point(axial(), (12, 12)),
            "spacing")


# --- names ----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["../../etc/passwd", "<script>alert(1)</script>", "'; DROP TABLE segments;--",
                                  "Tumör 腫瘍 🙂", "x" * 500, " "])
def test_hostile_segment_names_survive_an_edit_and_a_file_round_trip(headless, tmp_path, name):
    volume_matrix, image = MATRIX, disc_image()
    from MVABridgeLib.volumes import add_volume_node
    volume = add_volume_node(headless.scene, image, volume_matrix)
    segmentation, (segment_id,) = add_segmentation(headless, volume, (name,))
    mask = (image > 100).astype(np.uint8)
    replace_segment_from_mask(segmentation, segment_id, mask, volume_matrix)
    path = save_segmentation_node(headless.scene, segmentation, tmp_path / "Segmentation.seg.nrrd")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Segmentation.seg.nrrd"]
    loaded = load_segmentation_node(headless.scene, path)
    loaded_id = loaded.GetSegmentation().GetNthSegmentID(0)
    assert loaded.GetSegmentation().GetSegment(loaded_id).GetName() == name
    assert np.array_equal(segment_mask_in_volume(loaded, loaded_id, volume), mask)


# --- planes and masks handed to the bridge ------------------------------------------------------------------------
def test_slice_mask_of_another_shape_than_the_plane(work):
    refuses(work, InvalidMaskError, lambda: work.bridge.apply_slice_mask(axial(), np.ones((5, 5), bool)),
            "differs from the slice shape")


def test_oblique_view_that_misses_the_volume(work):
    slice_to_ras = slice_to_ras_for("axial", (500.0, 500.0, 500.0))
    c, s = np.cos(0.5), np.sin(0.5)
    slice_to_ras[:3, :3] = np.array([[1, 0, 0], [0, c, -s], [0, s, c]]) @ slice_to_ras[:3, :3]
    refuses(work, OutsideVolumeError, lambda: SlicePlane.voxel_aligned(slice_to_ras, MATRIX, disc_image().shape),
            "does not cut the volume")

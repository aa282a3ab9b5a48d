"""Smart Brush through the bridge: strokes -> preview -> Apply (one undo step), assist mode, 3D scope, oblique."""
import numpy as np
import pytest
from conftest import GEOMETRIES, add_segmentation, rotation

from MVABridgeLib.editor_session import SegmentEditorSession
from MVABridgeLib.segments import segment_mask_in_volume
from MVABridgeLib.slice_geometry import SlicePlane, slice_to_ras_for
from MVABridgeLib.volumes import add_volume_node
from MVAEvaluationLib.simulated_user import dab_mask
from SmartBrushLib.smart_brush_logic import SmartBrushLogic

MATRIX = GEOMETRIES["lps_anisotropic"]


@pytest.fixture
def brush_case(headless):
    k, j, i = np.mgrid[0:12, 0:40, 0:40]
    disc = (j - 20) ** 2 + (i - 20) ** 2 < 12 ** 2
    rng = np.random.default_rng(1)
    image = (np.where(disc, 220, 40) + rng.normal(0, 8, disc.shape)).astype(np.int16)
    volume = add_volume_node(headless.scene, image, MATRIX)
    segmentation, ids = add_segmentation(headless, volume, ("Disc", "Other"))
    session = SegmentEditorSession(volume, segmentation, ids[0], headless.scene)
    return SmartBrushLogic(session.bridge), session, volume, segmentation, ids, disc


def assert_matches(predicted, expected):
    """Two dabs (one in, one out) label most of the disc and nothing outside it."""
    precision = (predicted & expected).sum() / max(predicted.sum(), 1)
    recall = (predicted & expected).sum() / expected.sum()
    assert precision > 0.95 and recall > 0.5, (precision, recall)


def pixel_of(plane, index_kji):
    pixel, _ = plane.index_kji_to_pixel([index_kji], MATRIX)
    return tuple(np.round(pixel[0]).astype(int))


def test_two_strokes_preview_the_disc_and_apply_writes_it_as_one_undo_step(brush_case):
    logic, session, volume, segmentation, ids, disc = brush_case
    plane = SlicePlane.for_anatomical_axis("axial", 6, MATRIX, disc.shape)
    logic.add_stroke(plane, dab_mask(plane.shape, pixel_of(plane, (6, 20, 20))))
    preview = logic.add_stroke(plane, dab_mask(plane.shape, pixel_of(plane, (6, 3, 3))), erase=True)
    expected = plane.sample(disc, MATRIX, order=0) > 0
    assert_matches(preview.mask_2d, expected)
    assert segment_mask_in_volume(segmentation, ids[0], volume).sum() == 0  # nothing before Apply
    logic.apply()
    written = segment_mask_in_volume(segmentation, ids[0], volume).astype(bool)
    assert written[6].sum() == preview.mask_2d.sum() and written.sum() == written[6].sum()
    assert session.undo() and segment_mask_in_volume(segmentation, ids[0], volume).sum() == 0


def test_strokes_on_one_slice_train_the_prediction_on_another(brush_case):
    logic, session, volume, segmentation, ids, disc = brush_case
    plane = SlicePlane.for_anatomical_axis("axial", 2, MATRIX, disc.shape)
    logic.add_stroke(plane, dab_mask(plane.shape, pixel_of(plane, (2, 20, 20))))
    logic.add_stroke(plane, dab_mask(plane.shape, pixel_of(plane, (2, 3, 3))), erase=True)
    other = plane.neighbour(7)
    preview = logic.predict(other)
    assert_matches(preview.mask_2d, other.sample(disc, MATRIX, order=0) > 0)


def test_assist_mode_keeps_the_brush_inside_the_edge(brush_case):
    logic, session, volume, segmentation, ids, disc = brush_case
    plane = SlicePlane.for_anatomical_axis("axial", 6, MATRIX, disc.shape)
    logic.add_stroke(plane, dab_mask(plane.shape, pixel_of(plane, (6, 20, 20))))
    logic.add_stroke(plane, dab_mask(plane.shape, pixel_of(plane, (6, 3, 3))), erase=True)
    edge = pixel_of(plane, (6, 20, 27))  # inside the disc, 5 voxels from its edge; the footprint crosses it
    footprint = dab_mask(plane.shape, edge, radius=8)
    assert (footprint & ~(plane.sample(disc, MATRIX, order=0) > 0)).sum() > 10
    logic.paint_assisted(plane, footprint, edge)
    written = segment_mask_in_volume(segmentation, ids[0], volume).astype(bool)
    assert written.sum() > 10
    assert not (written & ~disc).any()


def test_3d_scope_predicts_a_box_around_the_strokes(brush_case):
    from scipy import ndimage
    logic, session, volume, segmentation, ids, disc = brush_case
    plane = SlicePlane.for_anatomical_axis("axial", 6, MATRIX, disc.shape)
    on_plane = plane.sample(disc, MATRIX, order=0) > 0
    logic.add_stroke(plane, ndimage.binary_erosion(on_plane, iterations=4))
    ring = ndimage.binary_dilation(on_plane, iterations=6) & ~ndimage.binary_dilation(on_plane, iterations=3)
    logic.add_stroke(plane, ring, erase=True)
    fractions = []
    patch = logic.predict_volume(plane, margin_voxels=3, progress=fractions.append)
    assert_matches(patch.full(disc.shape)[3:10], disc[3:10])
    assert fractions and fractions[-1] == pytest.approx(1.0)


def test_oblique_view_gets_its_own_plane_model(brush_case):
    logic, session, volume, segmentation, ids, disc = brush_case
    center = (MATRIX @ np.array([20, 20, 6, 1.0]))[:3]
    slice_to_ras = slice_to_ras_for("axial", center)
    slice_to_ras[:3, :3] = rotation(0, 25) @ slice_to_ras[:3, :3]
    plane = SlicePlane.voxel_aligned(slice_to_ras, MATRIX, disc.shape)
    inside = pixel_of(plane, (6, 20, 20))
    image = plane.sample(disc.astype(float), MATRIX, order=0)
    outside = tuple(np.argwhere(image == 0)[0])
    logic.add_stroke(plane, dab_mask(plane.shape, inside))
    preview = logic.add_stroke(plane, dab_mask(plane.shape, outside), erase=True)
    assert preview.mask_2d[inside] and not preview.mask_2d[outside]
    logic.apply()
    assert segment_mask_in_volume(segmentation, ids[0], volume).sum() > 0


def test_apply_before_painting_raises_and_changes_nothing(brush_case):
    logic, session, volume, segmentation, ids, disc = brush_case
    with pytest.raises(ValueError, match="paint"):
        logic.apply()
    assert segment_mask_in_volume(segmentation, ids[0], volume).sum() == 0


def test_only_one_class_painted_previews_similar_connected_tissue(brush_case):
    logic, session, volume, segmentation, ids, disc = brush_case
    plane = SlicePlane.for_anatomical_axis("axial", 6, MATRIX, disc.shape)
    preview = logic.add_stroke(plane, dab_mask(plane.shape, pixel_of(plane, (6, 20, 20))))
    assert_matches(preview.mask_2d, plane.sample(disc, MATRIX, order=0) > 0)


def test_masking_and_overwrite_settings_are_honoured_on_apply(brush_case):
    import slicer
    from MVABridgeLib.segments import replace_segment_from_mask
    logic, session, volume, segmentation, ids, disc = brush_case
    left = np.zeros(disc.shape, bool)
    left[:, :, :20] = True
    replace_segment_from_mask(segmentation, ids[1], left, MATRIX)
    session.editor_node.SetMaskMode(slicer.vtkMRMLSegmentationNode.EditAllowedInsideSingleSegment)
    session.editor_node.SetMaskSegmentID(ids[1])
    session.editor_node.SetOverwriteMode(slicer.vtkMRMLSegmentEditorNode.OverwriteNone)
    plane = SlicePlane.for_anatomical_axis("axial", 6, MATRIX, disc.shape)
    logic.add_stroke(plane, dab_mask(plane.shape, pixel_of(plane, (6, 20, 20))))
    logic.add_stroke(plane, dab_mask(plane.shape, pixel_of(plane, (6, 3, 3))), erase=True)
    logic.apply()
    written = segment_mask_in_volume(segmentation, ids[0], volume).astype(bool)
    assert written.any() and not (written & ~left).any()  # only inside the mask segment
    assert np.array_equal(segment_mask_in_volume(segmentation, ids[1], volume).astype(bool), left)  # kept


def test_volume_with_nan_voxels_is_refused_before_any_stroke(headless):
    from MVABridgeLib.errors import InvalidVolumeError
    image = np.ones((4, 10, 10), np.float32)
    image[1, 1, 1] = np.nan
    volume = add_volume_node(headless.scene, image, MATRIX)
    segmentation, ids = add_segmentation(headless, volume)
    logic = SmartBrushLogic(SegmentEditorSession(volume, segmentation, ids[0], headless.scene).bridge)
    plane = SlicePlane.for_anatomical_axis("axial", 1, MATRIX, image.shape)
    with pytest.raises(InvalidVolumeError, match="NaN"):
        logic.add_stroke(plane, np.ones(plane.shape, bool))
    assert segment_mask_in_volume(segmentation, ids[0], volume).sum() == 0

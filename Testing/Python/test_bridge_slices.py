"""Slice planes: extraction in standard and oblique views, and masks written back from each view."""
import numpy as np
import pytest
import SimpleITK as sitk
from conftest import GEOMETRIES, add_segmentation, ijk_to_ras_matrix, rotation

import slicer
from MVABridgeLib.edit_backend import EditMode
from MVABridgeLib.editor_session import SegmentEditorSession
from MVABridgeLib.errors import OutsideVolumeError
from MVABridgeLib.image_data import matrix_to_array
from MVABridgeLib.segments import segment_mask_in_volume
from MVABridgeLib.slice_geometry import SlicePlane, slice_to_ras_for
from MVABridgeLib.volume_io import LPS_TO_RAS
from MVABridgeLib.volumes import add_volume_node

ORIENTATIONS = ("axial", "coronal", "sagittal")


def smooth_volume(shape=(12, 16, 20)):
    k, j, i = np.mgrid[0:shape[0], 0:shape[1], 0:shape[2]].astype(float)
    return 100 * np.sin(i / 3.0) + 50 * np.cos(j / 4.0) + 20 * k


def independent_resample(volume, index_to_ras, plane):
    """SimpleITK's linear resampling of `volume` onto the plane's pixel grid (LPS geometry)."""
    image = sitk.GetImageFromArray(volume.astype(np.float64))
    ijk_to_lps = LPS_TO_RAS @ index_to_ras
    spacing = np.linalg.norm(ijk_to_lps[:3, :3], axis=0)
    image.SetSpacing(spacing.tolist())
    image.SetDirection((ijk_to_lps[:3, :3] / spacing).ravel().tolist())
    image.SetOrigin(ijk_to_lps[:3, 3].tolist())
    pixel_to_lps = LPS_TO_RAS @ plane.pixel_to_ras_matrix
    reference = sitk.Image(plane.shape[1], plane.shape[0], 1, sitk.sitkFloat64)
    axes = pixel_to_lps[:3, :3].copy()
    axes[:, 2] = np.cross(axes[:, 0], axes[:, 1])
    axes[:, 2] *= np.linalg.norm(axes[:, 0]) / np.linalg.norm(axes[:, 2])
    ref_spacing = np.linalg.norm(axes, axis=0)
    reference.SetSpacing(ref_spacing.tolist())
    reference.SetDirection((axes / ref_spacing).ravel().tolist())
    reference.SetOrigin(pixel_to_lps[:3, 3].tolist())
    resampled = sitk.Resample(image, reference, sitk.Transform(), sitk.sitkLinear, -1e9)
    return sitk.GetArrayFromImage(resampled)[0]


def center_ras(index_to_ras, shape_kji):
    return (index_to_ras @ np.append((np.array(shape_kji[::-1]) - 1) / 2.0, 1))[:3]


@pytest.mark.parametrize("orientation", ORIENTATIONS)
def test_axial_coronal_sagittal_slices_are_exact_voxel_slices_of_a_ras_volume(orientation):
    volume = np.arange(4 * 5 * 6).reshape(4, 5, 6)
    matrix = ijk_to_ras_matrix((1, 1, 1))
    plane = SlicePlane.for_anatomical_axis(orientation, 2, matrix, volume.shape)
    expected = {"axial": volume[2][::-1, ::-1], "coronal": volume[:, 2, :][::-1, ::-1],
                "sagittal": volume[:, :, 2][::-1, ::-1]}[orientation]
    assert plane.is_voxel_aligned
    assert np.array_equal(plane.sample(volume, matrix), expected)


@pytest.mark.parametrize("geometry", sorted(GEOMETRIES))
@pytest.mark.parametrize("orientation", ORIENTATIONS + ("oblique",))
def test_slice_extraction_matches_an_independent_resampling(geometry, orientation):
    matrix = GEOMETRIES[geometry]
    volume = smooth_volume()
    if orientation == "oblique":
        slice_to_ras = slice_to_ras_for("axial", center_ras(matrix, volume.shape))
        slice_to_ras[:3, :3] = rotation(0, 25) @ rotation(1, -35) @ slice_to_ras[:3, :3]
    else:
        slice_to_ras = slice_to_ras_for(orientation, center_ras(matrix, volume.shape))
    plane = SlicePlane.voxel_aligned(slice_to_ras, matrix, volume.shape)
    ours = plane.sample(volume, matrix, order=1, fill=-1e9)
    theirs = independent_resample(volume, matrix, plane)
    inside = (theirs > -1e8) & (ours > -1e8)
    assert inside.sum() > 100
    assert np.allclose(ours[inside], theirs[inside], atol=1e-6)
    # the plane's pixels keep the slice orientation: columns along slice x, rows along -slice y
    unit = plane.pixel_to_ras_matrix[:3, :3] / np.linalg.norm(plane.pixel_to_ras_matrix[:3, :3], axis=0)
    assert unit[:, 0] @ slice_to_ras[:3, 0] > 0.7 and unit[:, 1] @ -slice_to_ras[:3, 1] > 0.7


def test_view_pixel_grid_matches_slicer_xy_to_ras():
    node = slicer.vtkMRMLSliceNode()
    node.SetOrientationToCoronal()
    node.SetDimensions(64, 48, 1)
    node.SetFieldOfView(128.0, 96.0, 1.0)
    node.UpdateMatrices()
    plane = SlicePlane.from_slice_view(matrix_to_array(node.GetXYToRAS()), (64, 48))
    for x, y in [(0, 0), (10, 20), (63, 47)]:
        ras = [0.0, 0.0, 0.0]
        slicer.vtkSlicerSegmentEditorLogic.XyToRas([x, y], ras, node)
        row, col = 47 - y, x
        assert np.allclose(plane.pixel_to_ras([[row, col]])[0], ras)
        back, distance = plane.ras_to_pixel([ras])
        assert np.allclose(back[0], [row, col]) and abs(distance[0]) < 1e-9


def session_for(headless, volume, matrix):
    node = add_volume_node(headless.scene, volume, matrix)
    segmentation, (segment_id,) = add_segmentation(headless, node)
    return node, segmentation, segment_id, SegmentEditorSession(node, segmentation, segment_id, headless.scene)


@pytest.mark.parametrize("geometry", sorted(GEOMETRIES))
@pytest.mark.parametrize("orientation", ORIENTATIONS)
def test_mask_written_from_a_standard_view_lands_on_exactly_one_voxel_slice(headless, geometry, orientation):
    matrix = GEOMETRIES[geometry]
    volume = smooth_volume((8, 10, 12)).astype(np.int16)
    node, segmentation, segment_id, session = session_for(headless, volume, matrix)
    plane = SlicePlane.for_anatomical_axis(orientation, 3, matrix, volume.shape)
    mask_2d = np.zeros(plane.shape, bool)
    mask_2d[1:4, 2:6] = True
    mask_2d[-1, -1] = True
    session.bridge.apply_slice_mask(plane, mask_2d, EditMode.ADD)
    written = segment_mask_in_volume(segmentation, segment_id, node)
    rows, cols = np.nonzero(mask_2d)
    expected = np.zeros(volume.shape, np.uint8)
    index = np.round(plane.pixel_to_index_kji(np.stack([rows, cols], 1), matrix)).astype(int)
    expected[index[:, 0], index[:, 1], index[:, 2]] = 1
    assert written.sum() == mask_2d.sum()
    assert np.array_equal(written, expected)
    # and reading the plane back gives the mask
    assert np.array_equal(plane.sample(written, matrix) > 0, mask_2d)


def test_mask_written_from_an_oblique_view_holds_the_voxel_under_each_pixel_and_no_holes(headless):
    matrix = GEOMETRIES["lps_anisotropic"]
    volume = smooth_volume((10, 14, 16)).astype(np.int16)
    node, segmentation, segment_id, session = session_for(headless, volume, matrix)
    # through a point off every voxel face, so no pixel centre sits on one
    slice_to_ras = slice_to_ras_for("axial", center_ras(matrix, volume.shape) + [0.123, 0.271, 0.0917])
    slice_to_ras[:3, :3] = rotation(0, 30) @ slice_to_ras[:3, :3]
    plane = SlicePlane.voxel_aligned(slice_to_ras, matrix, volume.shape)
    assert not plane.is_voxel_aligned
    rows, cols = np.mgrid[0:plane.shape[0], 0:plane.shape[1]]
    center = np.array(plane.shape) / 2
    mask_2d = (rows - center[0]) ** 2 + (cols - center[1]) ** 2 < 8 ** 2
    session.bridge.apply_slice_mask(plane, mask_2d, EditMode.ADD)
    written = segment_mask_in_volume(segmentation, segment_id, node).astype(bool)
    # the voxel containing each mask pixel's centre (index from the matrix, rounded as Slicer's XyzToIjk)
    centres_ras = plane.pixel_to_ras(np.argwhere(mask_2d))
    ijk = (np.linalg.inv(matrix) @ np.column_stack([centres_ras, np.ones(len(centres_ras))]).T).T[:, :3]
    under_pixels = {tuple(v) for v in np.floor(ijk + 0.5).astype(int)[:, ::-1]}
    assert under_pixels <= {tuple(v) for v in np.argwhere(written)}
    assert np.array_equal(plane.sample(written, matrix, order=0)[mask_2d], np.ones(mask_2d.sum(), bool))
    # every other voxel written is one the plane cuts, inside the disc, holding no pixel centre
    extra = np.array([v for v in map(tuple, np.argwhere(written)) if v not in under_pixels])
    assert len(extra) < 0.2 * len(under_pixels)
    if len(extra):
        pixel, distance = plane.index_kji_to_pixel(extra, matrix)
        assert np.all(np.abs(distance) <= 0.5 * np.abs(matrix[:3, :3].T @ plane.normal_ras).sum() + 1e-9)
        assert np.all(np.linalg.norm(pixel - center, axis=1) < 8)
    # no holes: dense points of the disc's inner part all lie in written voxels
    rng = np.random.default_rng(0)
    angle, radius = rng.uniform(0, 2 * np.pi, 5000), 6.5 * np.sqrt(rng.uniform(0, 1, 5000))
    points_rc = center + np.stack([radius * np.sin(angle), radius * np.cos(angle)], 1)
    inside = plane.pixel_voxels_kji(points_rc, matrix)
    assert written[tuple(inside.T)].all()


def test_slice_outside_the_volume_raises():
    matrix = ijk_to_ras_matrix((1, 1, 1))
    with pytest.raises(OutsideVolumeError, match="outside"):
        SlicePlane.for_anatomical_axis("axial", 9, matrix, (4, 5, 6))
    slice_to_ras = slice_to_ras_for("axial", (0, 0, 50.0))
    with pytest.raises(OutsideVolumeError):
        SlicePlane.voxel_aligned(slice_to_ras, matrix, (4, 5, 6))
    plane = SlicePlane.for_anatomical_axis("axial", 1, matrix, (4, 5, 6))
    with pytest.raises(OutsideVolumeError, match="outside the slice"):
        plane.check_pixel((2, 40))


def test_a_plane_as_a_one_slice_volume_puts_each_pixel_where_the_plane_has_it():
    matrix = GEOMETRIES["oblique_anisotropic"]
    slice_to_ras = slice_to_ras_for("coronal", center_ras(matrix, (12, 16, 20)))
    slice_to_ras[:3, :3] = rotation(2, 15) @ slice_to_ras[:3, :3]
    plane = SlicePlane.voxel_aligned(slice_to_ras, matrix, (12, 16, 20))
    ijk_to_ras = plane.as_one_slice_volume()
    for row, col in [(0, 0), (3, 7), (plane.shape[0] - 1, plane.shape[1] - 1)]:
        assert np.allclose(ijk_to_ras @ np.array([col, row, 0, 1.0]), np.append(plane.pixel_to_ras([[row, col]])[0], 1))
    assert abs(np.linalg.det(ijk_to_ras[:3, :3])) > 1e-6


@pytest.mark.parametrize("orientation", ORIENTATIONS)
def test_a_voxel_slice_array_is_arranged_as_the_plane_shows_it(orientation):
    matrix = GEOMETRIES["lps_anisotropic"]
    volume = smooth_volume((8, 10, 12))
    plane = SlicePlane.for_anatomical_axis(orientation, 4, matrix, volume.shape)
    voxel_slice = np.take(volume, 4, axis=plane.aligned_axis)
    assert np.array_equal(plane.voxel_slice_to_plane(voxel_slice, matrix), plane.sample(volume, matrix))

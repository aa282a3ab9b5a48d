"""A slice view's pixel -> the voxel under it, checked against Slicer's own XyToIjk through a real
vtkMRMLSliceNode with random zoom, pan and rotation: on aligned, oblique, LPS and anisotropic volumes, in axial,
coronal, sagittal and oblique views, and with the segmentation under a linear parent transform. For points more
than 1e-3 voxel from a voxel face: the function gives the oracle's voxel, a one-pixel edit writes exactly that
voxel, and a Smart Regions click takes that voxel's region. Run with -s to see the hit rate per view."""
import os
import zlib

import numpy as np
import pytest
import vtk
from conftest import GEOMETRIES, add_segmentation, ijk_to_ras_matrix, rotation

import slicer
from MVABridgeLib.edit_backend import EditMode
from MVABridgeLib.editor_session import SegmentEditorSession
from MVABridgeLib.errors import OutsideVolumeError
from MVABridgeLib.image_data import array_to_matrix, array_view, matrix_to_array
from MVABridgeLib.image_data import index_to_ras as image_index_to_ras
from MVABridgeLib.slice_geometry import slice_to_ras_for
from MVABridgeLib.view_geometry import (NonLinearTransformError, check_index_kji, cursor_pixel,
                                        index_kji_to_view_xy, tool_plane, view_plane, view_xy_to_index_kji)
from MVABridgeLib.volumes import add_volume_node
from SmartRegionsLib.smart_regions_logic import RegionsOptions, SmartRegionsLogic

SHAPE_KJI = (12, 17, 21)
FACE_MARGIN = 1e-3
VIEWS_PER_CASE = int(os.environ.get("MVA_GEOMETRY_VIEWS", "2"))  # more for a measurement: MVA_GEOMETRY_VIEWS=10
POINTS_PER_VIEW = 40  # checked against the oracle (and written together as one mask)
EDITS_PER_VIEW = 6  # one-pixel edits and region clicks, each written and undone on its own
VOLUMES = {
    "aligned": ijk_to_ras_matrix((1.0, 1.0, 1.0), (-8.0, 3.0, -5.0)),
    "lps_anisotropic": GEOMETRIES["lps_anisotropic"],
    "oblique_anisotropic": GEOMETRIES["oblique_anisotropic"],
}
CASES = [(volume, False) for volume in VOLUMES] + [("aligned", True), ("oblique_anisotropic", True)]
ORIENTATIONS = ("axial", "coronal", "sagittal", "oblique")
HIT_RATES = {}


@pytest.fixture(scope="module", autouse=True)
def hit_rate_table():
    yield
    if HIT_RATES:
        print("\nview geometry hit rates (points > 1e-3 voxel from a face; oracle: Slicer XyToIjk)")
        print(f"{'volume':<40} {'view':<9} {'points':>6} {'function':>9} {'read':>6} {'edits':>6} {'one-pixel':>9} "
              f"{'mask':>6} {'regions':>8}")
        for (volume, view), r in sorted(HIT_RATES.items()):
            print(f"{volume:<40} {view:<9} {r['points']:>6} {r['function']:>9.3f} {r['read']:>6.3f} {r['edits']:>6} "
                  f"{r['one_pixel']:>9.3f} {r['mask']:>6.3f} {r['regions']:>8.3f}")


def linear_transform_node(scene, rng):
    node = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "Moved")
    matrix = np.eye(4)
    matrix[:3, :3] = rotation(0, rng.uniform(-40, 40)) @ rotation(1, rng.uniform(-40, 40)) @ \
        rotation(2, rng.uniform(-40, 40))
    matrix[:3, 3] = rng.uniform(-6, 6, 3)
    node.SetMatrixTransformToParent(array_to_matrix(matrix))
    return node


def random_view(slice_node, orientation, volume_ijk_to_world, rng):
    """Set `slice_node` to a random rotation, zoom and pan of `orientation`, through a point of the volume."""
    # Slicer's presets (a bare slice node has none registered: SetOrientationToAxial would fail)
    slice_to_ras = slice_to_ras_for("axial" if orientation == "oblique" else orientation)
    if orientation == "oblique":
        turn = rotation(0, rng.uniform(15, 60)) @ rotation(1, rng.uniform(-50, 50)) @ rotation(2, rng.uniform(0, 360))
    else:  # a turn about the view's normal keeps it parallel to the same anatomical plane
        normal = slice_to_ras[:3, 2]
        angle = np.radians(rng.uniform(0, 360))
        cross = np.array([[0, -normal[2], normal[1]], [normal[2], 0, -normal[0]], [-normal[1], normal[0], 0]])
        turn = np.eye(3) + np.sin(angle) * cross + (1 - np.cos(angle)) * cross @ cross
    slice_to_ras[:3, :3] = turn @ slice_to_ras[:3, :3]
    through_ijk = rng.uniform(1.5, np.array(SHAPE_KJI[::-1]) - 2.5)
    slice_to_ras[:3, 3] = (volume_ijk_to_world @ np.append(through_ijk, 1.0))[:3]
    slice_node.GetSliceToRAS().DeepCopy(array_to_matrix(slice_to_ras))
    width, height = (int(v) for v in rng.integers(90, 220, 2))
    fov_x = rng.uniform(6.0, 60.0)  # from about 20 view pixels per voxel (zoomed in) to 0.25
    slice_node.SetDimensions(width, height, 1)
    slice_node.SetFieldOfView(fov_x, fov_x * height / width, 1.0)
    slice_node.SetXYZOrigin(*(rng.uniform(-0.3, 0.3, 2) * fov_x), 0.0)
    slice_node.UpdateMatrices()


def oracle_voxels(slice_node, xy_points, image, transform_node, shape_kji, count):
    """The first `count` view pixels whose point lies inside the volume, more than FACE_MARGIN voxel from every
    voxel face (continuous index from VTK's own matrices), with Slicer's XyToIjk voxel for each as 0-based
    (k, j, i)."""
    extent_start = np.array(image.GetExtent()[0::2])
    world_to_image = vtk.vtkMatrix4x4()
    image.GetImageToWorldMatrix(world_to_image)
    world_to_image.Invert()
    world_to_parent = vtk.vtkMatrix4x4()
    if transform_node is not None:
        transform_node.GetMatrixTransformFromWorld(world_to_parent)
    xy_to_image = vtk.vtkMatrix4x4()
    vtk.vtkMatrix4x4.Multiply4x4(world_to_parent, slice_node.GetXYToRAS(), xy_to_image)
    vtk.vtkMatrix4x4.Multiply4x4(world_to_image, xy_to_image, xy_to_image)
    xy_points = np.asarray(xy_points)
    homogeneous = np.column_stack([xy_points, np.zeros(len(xy_points)), np.ones(len(xy_points))])
    continuous = (matrix_to_array(xy_to_image) @ homogeneous.T).T[:, :3] - extent_start
    from_face = np.abs(continuous - np.floor(continuous) - 0.5)  # 0.5 at a face, 0 at a centre
    inside = np.all((continuous >= -0.5) & (continuous < np.array(shape_kji[::-1]) - 0.5), axis=1)
    usable = xy_points[inside & np.all(from_face < 0.5 - FACE_MARGIN, axis=1)][:count]
    voxels = []
    for x, y in usable:
        ijk = [0, 0, 0]
        slicer.vtkSlicerSegmentEditorLogic.XyToIjk([int(x), int(y)], ijk, slice_node, image, transform_node)
        voxels.append((np.array(ijk) - extent_start)[::-1])
    return usable, np.array(voxels)


def written_voxels(segmentation, segment_id, index_to_ras):
    """{(k, j, i)} of the work grid that the segment holds, read from its own labelmap (segmentation frame)."""
    labelmap = slicer.vtkOrientedImageData()
    slicer.vtkSlicerSegmentationsModuleLogic.GetSegmentBinaryLabelmapRepresentation(segmentation, segment_id,
                                                                                    labelmap, False)
    if labelmap.IsEmpty() or labelmap.GetPointData().GetScalars() is None:
        return set()
    values = array_view(labelmap)
    label = segmentation.GetSegmentation().GetSegment(segment_id).GetLabelValue()
    ijk = np.argwhere(values == label)[:, ::-1]
    to_work = np.linalg.solve(index_to_ras, image_index_to_ras(labelmap))
    work_ijk = (to_work @ np.column_stack([ijk, np.ones(len(ijk))]).T).T[:, :3]
    return {tuple(int(v) for v in index[::-1]) for index in np.round(work_ijk)}


@pytest.mark.parametrize("orientation", ORIENTATIONS)
@pytest.mark.parametrize("volume_name,moved", CASES, ids=[f"{v}{'_moved' if m else ''}" for v, m in CASES])
def test_a_view_pixel_maps_edits_and_clicks_the_voxel_slicer_puts_under_it(headless, volume_name, moved, orientation):
    rng = np.random.default_rng(zlib.crc32(f"{volume_name} {moved} {orientation}".encode()))
    image = np.random.default_rng(3).integers(0, 1000, SHAPE_KJI).astype(np.int16)
    volume_node = add_volume_node(headless.scene, image, VOLUMES[volume_name])
    segmentation, (segment_id,) = add_segmentation(headless, volume_node)
    transform_node = linear_transform_node(headless.scene, rng) if moved else None
    if transform_node is not None:
        segmentation.SetAndObserveTransformNodeID(transform_node.GetID())
    session = SegmentEditorSession(volume_node, segmentation, segment_id, headless.scene)
    bridge = session.bridge
    volume = bridge.work_volume()
    source_image = session.logic.GetAlignedSourceVolume()
    # volume corners in world RAS: the views are placed through points of the volume as the user sees it
    to_world = np.eye(4)
    if transform_node is not None:
        matrix = vtk.vtkMatrix4x4()
        transform_node.GetMatrixTransformToWorld(matrix)
        to_world = matrix_to_array(matrix)
    options = RegionsOptions(region_size_mm=3.0, merge_tolerance=None, rim_deviations=None, split_clicked_region=False,
                             tissue_refinement=False)
    regions = SmartRegionsLogic(bridge, options)
    labels = regions.volume_labels()
    counts = dict(points=0, function=0, read=0, edits=0, one_pixel=0, mask=0, regions=0)
    slice_node = slicer.vtkMRMLSliceNode()
    for _ in range(VIEWS_PER_CASE):
        random_view(slice_node, orientation, to_world @ volume.index_to_ras, rng)
        width, height = slice_node.GetDimensions()[:2]
        candidates = np.column_stack([rng.integers(0, width, 4000), rng.integers(0, height, 4000)])
        xy, expected = oracle_voxels(slice_node, candidates, source_image, transform_node, volume.shape,
                                     POINTS_PER_VIEW)
        assert len(xy) >= 10, "the random view should show the volume"
        # (a) the function
        ours = view_xy_to_index_kji(slice_node, xy, volume.index_to_ras, segmentation)
        counts["points"] += len(xy)
        counts["function"] += int(np.all(ours == expected, axis=1).sum())
        # all points as one mask in the tool plane: exactly the oracle's voxels
        plane = tool_plane(slice_node, volume, segmentation)
        assert plane.is_voxel_aligned == (orientation != "oblique" and volume_name != "oblique_anisotropic"
                                          and not moved)
        pixels = np.array([cursor_pixel(plane, slice_node, p) for p in xy])
        # what the tools read there (the brush's and 2D regions' plane image) is that voxel's value
        seen = plane.sample(volume.array, volume.index_to_ras, order=0)[pixels[:, 0], pixels[:, 1]]
        counts["read"] += int((seen == volume.array[tuple(expected.T)]).sum())
        mask_2d = np.zeros(plane.shape, bool)
        mask_2d[pixels[:, 0], pixels[:, 1]] = True
        bridge.apply_slice_mask(plane, mask_2d, EditMode.ADD)
        written = written_voxels(segmentation, segment_id, volume.index_to_ras)
        counts["mask"] += int(written == {tuple(int(v) for v in e) for e in expected})
        session.undo()
        for number, (point_xy, voxel) in enumerate(zip(xy[:EDITS_PER_VIEW], expected[:EDITS_PER_VIEW])):
            # (b) a one-pixel edit, in the tool plane and (every other one) in the view's own pixel grid
            grid = plane if number % 2 == 0 else view_plane(slice_node, segmentation)
            pixel = cursor_pixel(grid, slice_node, point_xy)
            one = np.zeros(grid.shape, bool)
            one[pixel] = True
            bridge.apply_slice_mask(grid, one, EditMode.ADD)
            written = written_voxels(segmentation, segment_id, volume.index_to_ras)
            counts["edits"] += 1
            counts["one_pixel"] += int(written == {tuple(int(v) for v in voxel)})
            session.undo()
            # (c) a Smart Regions click takes the region of that voxel, and only it
            regions.click(plane, cursor_pixel(plane, slice_node, point_xy))
            region = {tuple(int(v) for v in index) for index in np.argwhere(labels == labels[tuple(voxel)])}
            counts["regions"] += int(written_voxels(segmentation, segment_id, volume.index_to_ras) == region)
            session.undo()
    rates = {"function": counts["function"] / counts["points"], "read": counts["read"] / counts["points"],
             "one_pixel": counts["one_pixel"] / counts["edits"],
             "regions": counts["regions"] / counts["edits"], "mask": counts["mask"] / VIEWS_PER_CASE}
    HIT_RATES[(volume_name + (" + moved segmentation" if moved else ""), orientation)] = {**counts, **rates}
    assert rates["function"] >= 0.99
    assert rates["read"] >= 0.99
    assert rates["one_pixel"] >= 0.99
    assert rates["regions"] >= 0.99
    assert rates["mask"] == 1.0


def test_a_segmentation_under_a_non_linear_transform_is_refused_with_a_message(headless):
    volume_node = add_volume_node(headless.scene, np.zeros(SHAPE_KJI, np.int16), VOLUMES["aligned"])
    segmentation, _ = add_segmentation(headless, volume_node)
    warp = headless.scene.AddNewNodeByClass("vtkMRMLTransformNode", "Warp")
    spline = vtk.vtkThinPlateSplineTransform()
    source, target = vtk.vtkPoints(), vtk.vtkPoints()
    for point in ((0, 0, 0), (10, 0, 0), (0, 10, 0), (0, 0, 10), (5, 5, 5)):
        source.InsertNextPoint(point)
        target.InsertNextPoint(point[0] + (1.0 if point == (5, 5, 5) else 0.0), point[1], point[2])
    spline.SetSourceLandmarks(source)
    spline.SetTargetLandmarks(target)
    warp.SetAndObserveTransformToParent(spline)
    segmentation.SetAndObserveTransformNodeID(warp.GetID())
    slice_node = slicer.vtkMRMLSliceNode()
    slice_node.SetDimensions(64, 64, 1)
    slice_node.UpdateMatrices()
    with pytest.raises(NonLinearTransformError, match="harden"):
        view_xy_to_index_kji(slice_node, (10, 10), VOLUMES["aligned"], segmentation)
    with pytest.raises(NonLinearTransformError):
        view_plane(slice_node, segmentation)


def test_a_point_outside_the_volume_is_reported_as_outside():
    with pytest.raises(OutsideVolumeError, match="outside the volume"):
        check_index_kji((3, -1, 2), SHAPE_KJI)
    assert tuple(check_index_kji((0, 16, 20), SHAPE_KJI)) == (0, 16, 20)


def view_of(headless, rng, orientation="oblique"):
    volume_node = add_volume_node(headless.scene, np.zeros(SHAPE_KJI, np.int16), VOLUMES["lps_anisotropic"])
    segmentation, _ = add_segmentation(headless, volume_node)
    session = SegmentEditorSession(volume_node, segmentation, segmentation.GetSegmentation().GetNthSegmentID(0),
                                   headless.scene)
    slice_node = slicer.vtkMRMLSliceNode()
    random_view(slice_node, orientation, VOLUMES["lps_anisotropic"], rng)
    return session.bridge.work_volume(), segmentation, slice_node


def test_an_oblique_tool_plane_stays_the_same_when_the_view_pans_by_whole_pixels(headless):
    volume, segmentation, slice_node = view_of(headless, np.random.default_rng(11))
    before = tool_plane(slice_node, volume, segmentation)
    pixel_mm = slice_node.GetFieldOfView()[0] / slice_node.GetDimensions()[0]
    origin = slice_node.GetXYZOrigin()
    slice_node.SetXYZOrigin(origin[0] + 7 * pixel_mm, origin[1] - 3 * pixel_mm, 0.0)  # as Slicer pans
    slice_node.UpdateMatrices()
    after = tool_plane(slice_node, volume, segmentation)
    assert not before.is_voxel_aligned
    assert before.shape == after.shape
    assert np.array_equal(before.pixel_to_ras_matrix, after.pixel_to_ras_matrix)


@pytest.mark.parametrize("orientation", ["axial", "oblique"])
def test_a_voxel_maps_to_the_view_position_it_projects_to(headless, orientation):
    volume, segmentation, slice_node = view_of(headless, np.random.default_rng(5), orientation)
    width, height = slice_node.GetDimensions()[:2]
    rng = np.random.default_rng(1)
    xy = np.column_stack([rng.uniform(0, width, 400), rng.uniform(0, height, 400)])
    voxels = view_xy_to_index_kji(slice_node, xy, volume.index_to_ras, segmentation)
    inside = np.all((voxels >= 0) & (voxels < np.array(SHAPE_KJI)), axis=1)
    voxels = voxels[inside]
    back_xy, distance = index_kji_to_view_xy(slice_node, voxels, volume.index_to_ras, segmentation)
    half_diagonal_mm = 0.5 * np.linalg.norm(volume.index_to_ras[:3, :3].sum(axis=1))
    pixel_mm = slice_node.GetFieldOfView()[0] / width
    assert len(voxels) > 5
    assert np.all(np.linalg.norm(back_xy - xy[inside], axis=1) * pixel_mm <= half_diagonal_mm + 1e-9)
    assert np.all(np.abs(distance) <= half_diagonal_mm + 1e-9)
    if orientation == "axial":  # the view is a voxel slice: a voxel's centre projects into that voxel
        assert np.array_equal(view_xy_to_index_kji(slice_node, back_xy, volume.index_to_ras, segmentation), voxels)
    one_xy, one_distance = index_kji_to_view_xy(slice_node, voxels[0], volume.index_to_ras, segmentation)
    assert one_xy.shape == (2,) and isinstance(one_distance, float)


def test_a_zoomed_in_oblique_view_gets_a_cropped_plane_that_still_holds_the_cursor_voxels(headless):
    volume, segmentation, slice_node = view_of(headless, np.random.default_rng(8))
    slice_node.SetFieldOfView(4.0, 4.0 * slice_node.GetDimensions()[1] / slice_node.GetDimensions()[0], 1.0)
    slice_node.SetXYZOrigin(0.0, 0.0, 0.0)
    slice_node.UpdateMatrices()  # about 0.03 mm per view pixel: the plane is at view resolution
    plane = tool_plane(slice_node, volume, segmentation, max_pixels=64 * 64)
    assert plane.shape[0] <= 65 and plane.shape[1] <= 65
    width, height = slice_node.GetDimensions()[:2]
    xy = np.array([(width // 2 + dx, height // 2 + dy) for dx in (-20, 0, 13) for dy in (-9, 0, 25)])
    pixels = np.array([cursor_pixel(plane, slice_node, p) for p in xy])
    assert np.array_equal(plane.pixel_voxels_kji(pixels, volume.index_to_ras),
                          view_xy_to_index_kji(slice_node, xy, volume.index_to_ras, segmentation))
    with pytest.raises(OutsideVolumeError):
        cursor_pixel(plane, slice_node, (width // 2 + 60, height // 2))


@pytest.mark.parametrize("oversampling", [1, 2, 3])
def test_every_oversampling_of_an_oblique_plane_keeps_the_cursor_pixel_on_the_cursor_voxel(headless, oversampling):
    volume, segmentation, slice_node = view_of(headless, np.random.default_rng(21))
    plane = tool_plane(slice_node, volume, segmentation, oversampling=oversampling)
    finest_mm = np.linalg.norm(volume.index_to_ras[:3, :3], axis=0).min()
    assert np.linalg.norm(plane.pixel_to_ras_matrix[:3, 0]) <= finest_mm / oversampling + 1e-9
    width, height = slice_node.GetDimensions()[:2]
    rng = np.random.default_rng(4)
    xy = np.column_stack([rng.integers(0, width, 3000), rng.integers(0, height, 3000)])
    voxels = view_xy_to_index_kji(slice_node, xy, volume.index_to_ras, segmentation)
    inside = np.all((voxels >= 0) & (voxels < np.array(SHAPE_KJI)), axis=1)
    pixels = np.array([cursor_pixel(plane, slice_node, p) for p in xy[inside][:200]])
    assert len(pixels) >= 20
    assert np.array_equal(plane.pixel_voxels_kji(pixels, volume.index_to_ras), voxels[inside][:200])

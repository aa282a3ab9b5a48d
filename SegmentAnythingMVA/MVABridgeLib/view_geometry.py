"""Slice views -> voxels: a view's XY pixel, through its vtkMRMLSliceNode and the segmentation's parent
transform, to the work volume's voxel; and the planes tools compute on for a view.

A view pixel (x, y) (as vtkRenderWindowInteractor.GetEventPosition gives it, y up) stands for the world point
XYToRAS @ (x, y, 0, 1), whatever the zoom (field of view), pan (XYZ origin) and rotation (SliceToRAS). The work
volume (`SegmentEditBridge.work_volume()`) lives in the segmentation's own coordinates, so world points first go
through the inverse of the segmentation's parent transform, as Slicer's `XyzToIjk` does. Only linear transforms
map a plane onto a plane: under a non-linear one every function here raises NonLinearTransformError (Slicer's
XyzToIjk logs an error and ignores such a transform, which lands on the wrong voxels).

Typical use in an interaction controller::

    volume = bridge.work_volume()
    segmentation = bridge.backend.segmentation_node()
    index_kji = view_xy_to_index_kji(slice_node, (x, y), volume.index_to_ras, segmentation)
    plane = tool_plane(slice_node, volume, segmentation)     # what the tool samples and edits
    row, col = cursor_pixel(plane, slice_node, (x, y))        # that same voxel, as a pixel of `plane`
"""
import numpy as np
import vtk

from MVABridgeLib.errors import BridgeError, OutsideVolumeError
from MVABridgeLib.image_data import matrix_to_array
from MVABridgeLib.slice_geometry import OBLIQUE_OVERSAMPLING, SlicePlane, aligned_volume_axis

# a zoomed-in oblique view gets a plane at view resolution cropped to about this many pixels around the view
MAX_TOOL_PLANE_PIXELS = 2048 * 2048
PLANE_DECIMALS = 9  # mm


class NonLinearTransformError(BridgeError):
    """The segmentation is under a non-linear transform: slice views cannot be mapped to its voxels exactly."""


def world_to_segmentation(segmentation_node):
    """4x4 world RAS -> the segmentation's RAS (its parent transform inverted; identity without one).

    Parameters
    ----------
    segmentation_node : vtkMRMLSegmentationNode or None
        None means no transform.

    Raises
    ------
    NonLinearTransformError
        The parent transform (or one above it) is not linear.
    """
    transform = segmentation_node.GetParentTransformNode() if segmentation_node is not None else None
    if transform is None:
        return np.eye(4)
    if not transform.IsTransformToWorldLinear():
        raise NonLinearTransformError(
            f"Segmentation '{segmentation_node.GetName()}' is under the non-linear transform "
            f"'{transform.GetName()}': harden the transform (Data module) before editing it in slice views")
    matrix = vtk.vtkMatrix4x4()
    transform.GetMatrixTransformFromWorld(matrix)
    return matrix_to_array(matrix)


def _xy_to_segmentation(slice_node, segmentation_node):
    return world_to_segmentation(segmentation_node) @ matrix_to_array(slice_node.GetXYToRAS())


def view_xy_to_ras(slice_node, xy, segmentation_node=None):
    """RAS point(s) of view pixel(s) `xy`, in the segmentation's coordinates.

    Parameters
    ----------
    slice_node : vtkMRMLSliceNode
    xy : (2,) or (N, 2) view position(s) (x, y) in view pixels, y up; fractions allowed.
    segmentation_node : vtkMRMLSegmentationNode, optional
        Its parent transform is honoured (world -> segmentation).

    Returns
    -------
    (3,) or (N, 3) float array, mm.
    """
    xy = np.asarray(xy, float)
    points = np.atleast_2d(xy)
    homogeneous = np.column_stack([points[:, :2], np.zeros(len(points)), np.ones(len(points))])
    ras = (_xy_to_segmentation(slice_node, segmentation_node) @ homogeneous.T).T[:, :3]
    return ras[0] if xy.ndim == 1 else ras


def view_xy_to_index_kji(slice_node, xy, index_to_ras, segmentation_node=None):
    """The voxel (k, j, i) of a volume that contains the RAS point of a slice view's pixel.

    The pixel goes through the slice node's XYToRAS (any zoom, pan and rotation), then through the inverse
    of the segmentation's parent transform, then into the volume grid; the voxel is the one whose box holds
    the point, rounded as Slicer's vtkSlicerSegmentEditorLogic.XyzToIjk rounds.

    Parameters
    ----------
    slice_node : vtkMRMLSliceNode
    xy : (2,) or (N, 2) view position(s) (x, y) in view pixels, y up (vtkRenderWindowInteractor's event
        position); fractions allowed.
    index_to_ras : (4, 4) array
        0-based array index (i, j, k) -> RAS of the volume, in the segmentation's coordinates
        (`SegmentEditBridge.work_volume().index_to_ras`).
    segmentation_node : vtkMRMLSegmentationNode, optional
        The segmentation edited; its parent transform is honoured. None: no transform.

    Returns
    -------
    (3,) or (N, 3) int array (k, j, i). Points outside the volume give indices outside its shape; see
    `check_index_kji`.

    Raises
    ------
    NonLinearTransformError
        The segmentation is under a non-linear transform.
    """
    ras = np.atleast_2d(view_xy_to_ras(slice_node, xy, segmentation_node))
    ijk = np.linalg.solve(np.asarray(index_to_ras, float), np.column_stack([ras, np.ones(len(ras))]).T).T[:, :3]
    index_kji = np.floor(ijk + 0.5).astype(int)[:, ::-1]
    return index_kji[0] if np.asarray(xy).ndim == 1 else index_kji


def index_kji_to_view_xy(slice_node, index_kji, index_to_ras, segmentation_node=None):
    """View position(s) (x, y) where voxel centre(s) (k, j, i) project onto the view's plane (the inverse of
    `view_xy_to_index_kji` for points on the plane), e.g. to draw a marker.

    Returns
    -------
    ((N, 2) float (x, y), (N,) float distance from the view's plane in mm), or ((2,), float) for one voxel.
    """
    index_kji = np.asarray(index_kji, float)
    ijk = np.atleast_2d(index_kji)[:, ::-1]
    ras = (np.asarray(index_to_ras, float) @ np.column_stack([ijk, np.ones(len(ijk))]).T)
    xy_to_ras = _xy_to_segmentation(slice_node, segmentation_node)
    normal = np.cross(xy_to_ras[:3, 0], xy_to_ras[:3, 1])
    frame = np.eye(4)
    frame[:3, :2], frame[:3, 2], frame[:3, 3] = xy_to_ras[:3, :2], normal / np.linalg.norm(normal), xy_to_ras[:3, 3]
    xyz = np.linalg.solve(frame, ras).T
    if index_kji.ndim == 1:
        return xyz[0, :2], float(xyz[0, 2])
    return xyz[:, :2], xyz[:, 2]


def check_index_kji(index_kji, shape_kji):
    """Raise OutsideVolumeError unless the voxel index (k, j, i) lies inside a volume of `shape_kji`."""
    index_kji = np.asarray(index_kji)
    if np.any(index_kji < 0) or np.any(index_kji >= np.asarray(shape_kji)):
        raise OutsideVolumeError(f"The point (voxel {tuple(int(v) for v in index_kji)}) is outside the volume "
                                 f"of {tuple(int(v) for v in shape_kji)} voxels")
    return index_kji


def view_plane(slice_node, segmentation_node=None):
    """The view's own pixel grid (row 0 at the top, column = x) as a SlicePlane in the segmentation's coordinates.

    Pixel (row, col) is view XY (col, height - 1 - row): a mask drawn in view pixels writes, through
    `SegmentEditBridge.apply_slice_mask`, exactly the voxels `view_xy_to_index_kji` gives for those pixels.
    """
    return SlicePlane.from_slice_view(matrix_to_array(slice_node.GetXYToRAS()), slice_node.GetDimensions()[:2],
                                      world_to_segmentation(segmentation_node))


def tool_plane(slice_node, volume, segmentation_node=None, max_pixels=MAX_TOOL_PLANE_PIXELS,
               oversampling=OBLIQUE_OVERSAMPLING):
    """The plane a tool samples and edits for a slice view, in the segmentation's coordinates.

    A view parallel to a volume axis gets that voxel slice (pixels are voxels; stable under zoom and pan).
    An oblique view gets a grid on the view's own pixel lattice, refined to at least `oversampling` pixels
    per finest voxel spacing, so every view pixel is a pixel of the plane and a one-pixel edit at the
    cursor writes the cursor's voxel; it is the same plane after a pan by whole view pixels (Slicer pans so),
    a new one after a zoom. Zoomed in beyond that resolution, the grid is the view's pixels, cropped to about
    `max_pixels` around the view.

    Parameters
    ----------
    slice_node : vtkMRMLSliceNode
    volume : WorkVolume (or any object with `index_to_ras` and `shape` (k, j, i))
    segmentation_node : vtkMRMLSegmentationNode, optional
    max_pixels : int
        Pixel budget of a zoomed-in oblique plane.
    oversampling : int
        Oblique pixels per finest voxel spacing (at least). 2 (the default) lets nearly every voxel the plane
        cuts hold a pixel centre; 1 quarters the pixels of a zoomed-out view (a Smart Brush update there is ~4x
        faster) and leaves more thin-corner voxels to the orphan fill of painted areas.

    Raises
    ------
    OutsideVolumeError
        The view's slice does not cut the volume.
    NonLinearTransformError
        The segmentation is under a non-linear transform.
    """
    to_segmentation = world_to_segmentation(segmentation_node)
    xy_to_ras = to_segmentation @ matrix_to_array(slice_node.GetXYToRAS())
    index_to_ras = np.asarray(volume.index_to_ras, float)
    shape_kji = tuple(volume.shape)
    slice_to_ras = np.eye(4)
    slice_to_ras[:3, 0], slice_to_ras[:3, 1] = xy_to_ras[:3, 0], xy_to_ras[:3, 1]
    slice_to_ras[:3, 2] = np.cross(xy_to_ras[:3, 0], xy_to_ras[:3, 1])
    slice_to_ras[:3, 3] = xy_to_ras[:3, 3]
    if aligned_volume_axis(slice_to_ras, index_to_ras, shape_kji) is not None:
        plane = SlicePlane.voxel_aligned(slice_to_ras, index_to_ras, shape_kji)
        plane.world_to_segmentation = to_segmentation
        return plane
    finest_mm = float(np.linalg.norm(index_to_ras[:3, :3], axis=0).min())
    steps = [max(1, int(np.ceil(oversampling * np.linalg.norm(xy_to_ras[:3, c]) / finest_mm - 1e-9)))
             for c in (0, 1)]
    width, height = slice_node.GetDimensions()[:2]
    focus_ras = (xy_to_ras @ np.array([width / 2.0, height / 2.0, 0.0, 1.0]))[:3]
    plane = SlicePlane.covering_grid(xy_to_ras[:3, 0] / steps[0], -xy_to_ras[:3, 1] / steps[1], xy_to_ras[:3, 3],
                                     index_to_ras, np.array(shape_kji[::-1]), max_pixels, focus_ras, to_segmentation)
    # a pan moves the lattice by whole pixels: rounding away float noise keeps the plane (and tools' caches) equal
    return SlicePlane(np.round(plane.pixel_to_ras_matrix, PLANE_DECIMALS), plane.shape,
                      world_to_segmentation=to_segmentation)


def cursor_pixel(plane, slice_node, xy, check=True):
    """(row, col) of `plane` (from `tool_plane` or `view_plane`) nearest to view position `xy`, as ints.

    On those planes this pixel's centre lies in the voxel `view_xy_to_index_kji` gives for `xy`.

    Raises
    ------
    OutsideVolumeError
        With `check`: the position lies outside the plane's image.
    """
    world = matrix_to_array(slice_node.GetXYToRAS()) @ np.array([float(xy[0]), float(xy[1]), 0.0, 1.0])
    pixel, _ = plane.world_to_pixel([world[:3]])
    if check:
        plane.check_pixel(pixel[0])
    return tuple(int(np.floor(v + 0.5)) for v in pixel[0])

"""From a slice view (its vtkMRMLSliceNode) to planes in the segmentation's own coordinates.

The work volume (`SegmentEditBridge.work_volume()`) lives in the segmentation's reference geometry, i.e. in
the coordinates of the segmentation node before its parent transform; a slice view shows world RAS. Every view
position and view plane therefore goes through world -> segmentation first, as Slicer's own effects do
(SegmentEditorIslandsEffect.py passes `segmentationNode.GetParentTransformNode()` to xyToIjk).
"""
import numpy as np
import vtk

from MVABridgeLib.errors import BridgeError, OutsideVolumeError
from MVABridgeLib.image_data import matrix_to_array
from MVABridgeLib.slice_geometry import SlicePlane


class NonLinearTransformError(BridgeError):
    """The segmentation is under a non-linear transform: slice views cannot be mapped to its voxels exactly."""


def world_to_segmentation(segmentation_node):
    """4x4 world RAS -> segmentation RAS (identity without a parent transform).

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
            f"'{transform.GetName()}': harden the transform (Data module) before editing it with this tool")
    matrix = vtk.vtkMatrix4x4()
    transform.GetMatrixTransformFromWorld(matrix)
    return matrix_to_array(matrix)


def view_name(slice_node):
    return slice_node.GetLayoutName() or slice_node.GetName()


def xy_to_ras(slice_node, xy):
    """World RAS of view position `xy` (x, y in view pixels, y up) on the view's plane."""
    xy_to_ras_matrix = matrix_to_array(slice_node.GetXYToRAS())
    return (xy_to_ras_matrix @ np.array([float(xy[0]), float(xy[1]), 0.0, 1.0]))[:3]


def ras_to_xy(slice_node, point_ras):
    """View position (x, y) of a world RAS point projected on the view's plane."""
    xy_to_ras_matrix = matrix_to_array(slice_node.GetXYToRAS())
    xyz = np.linalg.solve(xy_to_ras_matrix, np.append(np.asarray(point_ras, float), 1.0))
    return float(xyz[0]), float(xyz[1])


def tool_plane(slice_node, volume, world_to_local):
    """The plane tools compute on: the view's slice at voxel resolution of the work volume (an exact voxel
    slice when the view is parallel to a volume axis, an oblique grid otherwise), in segmentation coordinates.

    Raises
    ------
    OutsideVolumeError
        The view's slice does not cut the volume.
    """
    slice_to_local = world_to_local @ matrix_to_array(slice_node.GetSliceToRAS())
    return SlicePlane.voxel_aligned(slice_to_local, volume.index_to_ras, volume.shape)


def view_pixels(slice_node, world_to_local):
    """The view's own pixel grid (row 0 at the top) in segmentation coordinates: where overlays are drawn."""
    xy_to_local = world_to_local @ matrix_to_array(slice_node.GetXYToRAS())
    return SlicePlane.from_slice_view(xy_to_local, slice_node.GetDimensions()[:2])


def pixel_at(plane, slice_node, xy, world_to_local):
    """(row, col) of `plane` under view position `xy`.

    Raises
    ------
    OutsideVolumeError
        The position lies outside the plane's image (outside the volume).
    """
    local = world_to_local @ np.append(xy_to_ras(slice_node, xy), 1.0)
    pixel, _ = plane.ras_to_pixel([local[:3]])
    plane.check_pixel(pixel[0])
    return tuple(int(round(v)) for v in pixel[0])


def plane_mask_in_view(plane, mask_2d, view_grid):
    """A bool mask drawn on `plane` as seen in the view pixels of `view_grid` (both SlicePlanes, same frame).

    A view pixel shows the plane pixel it projects onto when it lies within half a slice of the plane.
    """
    rows, cols = np.mgrid[0:view_grid.shape[0], 0:view_grid.shape[1]]
    centres = view_grid.pixel_to_ras(np.stack([rows.ravel(), cols.ravel()], 1))
    pixel, distance = plane.ras_to_pixel(centres)
    pixel = np.round(pixel).astype(int)
    half_thickness = 0.5 * float(np.linalg.norm(plane.pixel_to_ras_matrix[:3, 2])) + 1e-6
    inside = (np.abs(distance) <= half_thickness) & (pixel[:, 0] >= 0) & (pixel[:, 0] < plane.shape[0]) \
        & (pixel[:, 1] >= 0) & (pixel[:, 1] < plane.shape[1])
    shown = np.zeros(len(pixel), bool)
    shown[inside] = np.asarray(mask_2d, bool)[pixel[inside, 0], pixel[inside, 1]]
    return shown.reshape(view_grid.shape)


def volume_mask_in_view(mask_kji, index_to_ras, view_grid):
    """A (k, j, i) mask of the work volume as it cuts the view (nearest voxel)."""
    return view_grid.sample(np.asarray(mask_kji, np.uint8), index_to_ras, order=0) > 0


__all__ = ["NonLinearTransformError", "OutsideVolumeError", "world_to_segmentation", "view_name", "xy_to_ras",
           "ras_to_xy", "tool_plane", "view_pixels", "pixel_at", "plane_mask_in_view", "volume_mask_in_view"]

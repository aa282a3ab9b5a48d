"""From a slice view (its vtkMRMLSliceNode) to the planes the controllers compute and draw on.

The geometry itself is MVABridgeLib.view_geometry (view XY -> voxel through the segmentation's parent
transform, tool planes for aligned and oblique views); this module adds what controllers need on top: view
names, the inverse XY mapping for front ends that report world points, and masks mapped into view pixels.
"""
import numpy as np

from MVABridgeLib import view_geometry
from MVABridgeLib.errors import OutsideVolumeError
from MVABridgeLib.image_data import matrix_to_array
from MVABridgeLib.view_geometry import NonLinearTransformError, world_to_segmentation


def view_name(slice_node):
    return slice_node.GetLayoutName() or slice_node.GetName()


def ras_to_xy(slice_node, point_ras):
    """View position (x, y) of a world RAS point projected on the view's plane."""
    xy_to_ras = matrix_to_array(slice_node.GetXYToRAS())
    xyz = np.linalg.solve(xy_to_ras, np.append(np.asarray(point_ras, float), 1.0))
    return float(xyz[0]), float(xyz[1])


def tool_plane(slice_node, volume, segmentation_node):
    """The plane tools compute on for the view (view_geometry.tool_plane), in segmentation coordinates.

    Raises
    ------
    OutsideVolumeError
        The view's slice does not cut the volume.
    NonLinearTransformError
        The segmentation is under a non-linear transform.
    """
    return view_geometry.tool_plane(slice_node, volume, segmentation_node)


def view_pixels(slice_node, segmentation_node):
    """The view's own pixel grid (row 0 at the top) in segmentation coordinates: where overlays are drawn."""
    return view_geometry.view_plane(slice_node, segmentation_node)


def pixel_at(plane, slice_node, xy):
    """(row, col) of `plane` under view position `xy`; raises OutsideVolumeError outside the plane's image."""
    return view_geometry.cursor_pixel(plane, slice_node, xy)


def plane_mask_in_view(plane, mask_2d, view_grid):
    """A bool mask drawn on `plane` as seen in the view pixels of `view_grid` (both SlicePlanes, same frame).

    A view pixel shows the plane pixel it projects onto when it lies within half a slice of the plane.
    """
    rows, cols = np.mgrid[0:view_grid.shape[0], 0:view_grid.shape[1]]
    centres = view_grid.pixel_to_ras(np.stack([rows.ravel(), cols.ravel()], 1))
    pixel, distance = plane.ras_to_pixel(centres)
    pixel = np.floor(pixel + 0.5).astype(int)
    half_thickness = 0.5 * float(np.linalg.norm(plane.pixel_to_ras_matrix[:3, 2])) + 1e-6
    inside = (np.abs(distance) <= half_thickness) & (pixel[:, 0] >= 0) & (pixel[:, 0] < plane.shape[0]) \
        & (pixel[:, 1] >= 0) & (pixel[:, 1] < plane.shape[1])
    shown = np.zeros(len(pixel), bool)
    shown[inside] = np.asarray(mask_2d, bool)[pixel[inside, 0], pixel[inside, 1]]
    return shown.reshape(view_grid.shape)


def volume_mask_in_view(mask_kji, index_to_ras, view_grid):
    """A (k, j, i) mask of the work volume as it cuts the view (nearest voxel)."""
    return view_grid.sample(np.asarray(mask_kji, np.uint8), index_to_ras, order=0) > 0


__all__ = ["NonLinearTransformError", "OutsideVolumeError", "world_to_segmentation", "view_name", "ras_to_xy",
           "tool_plane", "view_pixels", "pixel_at", "plane_mask_in_view", "volume_mask_in_view"]

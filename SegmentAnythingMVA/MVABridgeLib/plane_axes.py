"""Slice orientations and how a plane lies in a volume's grid (which volume axis, and whether it is one voxel
slice); re-exported by slice_geometry."""
import numpy as np

ANATOMICAL_AXES = ("axial", "coronal", "sagittal")
AXIS_ALIGNED_TOLERANCE = 1e-4
# a plane counts as one voxel slice only if its normal index drifts by less than this across the volume, so
# snapping it to the slice changes no point's voxel (except points this close to a voxel face)
ALIGNED_DRIFT_VOXELS = 1e-3


# Slicer's standard slice orientations (vtkMRMLSliceNode presets): columns are the slice x, y and normal in RAS.
SLICE_ORIENTATIONS = {
    "axial": np.array([[-1.0, 0, 0], [0, 1, 0], [0, 0, 1]]),
    "coronal": np.array([[-1.0, 0, 0], [0, 0, 1], [0, 1, 0]]),
    "sagittal": np.array([[0, 0, 1.0], [-1, 0, 0], [0, 1, 0]]),
}


def slice_to_ras_for(orientation, point_ras=(0.0, 0.0, 0.0)):
    """SliceToRAS of Slicer's 'axial', 'coronal' or 'sagittal' view through `point_ras`."""
    if orientation not in SLICE_ORIENTATIONS:
        raise ValueError(f"Unknown orientation {orientation!r}; choose one of {ANATOMICAL_AXES}")
    matrix = np.eye(4)
    matrix[:3, :3] = SLICE_ORIENTATIONS[orientation]
    matrix[:3, 3] = point_ras
    return matrix


def nearest_volume_axis(direction_ras, index_to_ras):
    """(axis, sign): the array axis in (i, j, k) numbering most parallel to `direction_ras`, and its sign."""
    axes = index_to_ras[:3, :3] / np.linalg.norm(index_to_ras[:3, :3], axis=0)
    cosines = axes.T @ (np.asarray(direction_ras, float) / np.linalg.norm(direction_ras))
    axis = int(np.argmax(np.abs(cosines)))
    return axis, (1 if cosines[axis] > 0 else -1), float(abs(cosines[axis]))


def aligned_volume_axis(slice_to_ras, index_to_ras, shape_kji):
    """The array axis in (i, j, k) numbering that the plane of `slice_to_ras` is a voxel slice of, or None.

    Nearly parallel is not enough: the plane's index along that axis must stay within ALIGNED_DRIFT_VOXELS
    over the whole volume, or a point far from the origin would land on a neighbouring slice.
    """
    slice_to_ras = np.asarray(slice_to_ras, float)
    normal_ras = np.cross(slice_to_ras[:3, 0], slice_to_ras[:3, 1])
    axis, _, cosine = nearest_volume_axis(normal_ras, index_to_ras)
    if cosine <= 1 - AXIS_ALIGNED_TOLERANCE:
        return None
    ras_to_index = np.linalg.inv(index_to_ras)
    # change of the axis index per mm along the plane's two in-plane directions, times the volume's size
    in_plane = np.stack([slice_to_ras[:3, 0] / np.linalg.norm(slice_to_ras[:3, 0]),
                         slice_to_ras[:3, 1] / np.linalg.norm(slice_to_ras[:3, 1])], 1)
    slope = ras_to_index[axis, :3] @ in_plane
    diagonal_mm = float(np.linalg.norm(index_to_ras[:3, :3] @ np.asarray(shape_kji[::-1], float)))
    return axis if float(np.abs(slope).sum()) * diagonal_mm < ALIGNED_DRIFT_VOXELS else None

"""vtkImageData / vtkOrientedImageData <-> numpy, with array-index geometry.

`index_to_ras` maps a 0-based array index (i, j, k) to RAS, whatever the image's extent start: the extent
offset is folded into the matrix so callers never handle extents.
"""
import numpy as np
import vtk
from vtk.util import numpy_support

import slicer

from MVABridgeLib.errors import InvalidGeometryError, InvalidMaskError
from MVABridgeLib.volume_checks import geometry_problem


def matrix_to_array(vtk_matrix):
    return np.array([[vtk_matrix.GetElement(r, c) for c in range(4)] for r in range(4)])


def array_to_matrix(array):
    matrix = vtk.vtkMatrix4x4()
    for r in range(4):
        for c in range(4):
            matrix.SetElement(r, c, float(array[r][c]))
    return matrix


def translation(offset):
    matrix = np.eye(4)
    matrix[:3, 3] = offset
    return matrix


def array_view(image):
    """Writable (k, j, i) numpy view of a single-component vtkImageData's scalars."""
    scalars = image.GetPointData().GetScalars()
    if scalars is None:
        return np.zeros((0, 0, 0))
    dims = image.GetDimensions()
    return numpy_support.vtk_to_numpy(scalars).reshape(dims[2], dims[1], dims[0])


def index_to_ras(oriented_image):
    """4x4 matrix: 0-based array index (i, j, k) -> RAS, for a vtkOrientedImageData."""
    image_to_world = vtk.vtkMatrix4x4()
    oriented_image.GetImageToWorldMatrix(image_to_world)
    extent = oriented_image.GetExtent()
    return matrix_to_array(image_to_world) @ translation(extent[0::2])


def oriented_image_from_array(array_kji, ijk_to_ras, extent_start_ijk=(0, 0, 0), vtk_type=vtk.VTK_UNSIGNED_CHAR):
    """A vtkOrientedImageData holding a copy of `array_kji`.

    Parameters
    ----------
    array_kji : ndarray (k, j, i)
    ijk_to_ras : (4, 4) image-to-world matrix of the *full* grid (index (0,0,0) = its first voxel).
    extent_start_ijk : where `array_kji` starts inside that grid (for sub-extent modifiers).
    """
    problem = geometry_problem(ijk_to_ras, "The image")
    if problem:  # Slicer's resampling aborts the process on a zero spacing
        raise InvalidGeometryError(problem)
    array_kji = np.ascontiguousarray(array_kji)
    if array_kji.ndim != 3:
        raise InvalidMaskError(f"A 3D (k, j, i) array is needed, got {array_kji.ndim} dimensions")
    image = slicer.vtkOrientedImageData()
    nk, nj, ni = array_kji.shape
    i0, j0, k0 = (int(v) for v in extent_start_ijk)
    image.SetExtent(i0, i0 + ni - 1, j0, j0 + nj - 1, k0, k0 + nk - 1)
    image.SetImageToWorldMatrix(array_to_matrix(ijk_to_ras))
    image.AllocateScalars(vtk_type, 1)
    array_view(image)[:] = array_kji
    image.Modified()
    return image


def geometry_of(oriented_image):
    """(shape_kji, index_to_ras) of a vtkOrientedImageData."""
    dims = oriented_image.GetDimensions()
    return (dims[2], dims[1], dims[0]), index_to_ras(oriented_image)

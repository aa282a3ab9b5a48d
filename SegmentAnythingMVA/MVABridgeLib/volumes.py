"""Scalar volume nodes <-> numpy arrays (k, j, i) with their IJK->RAS matrix."""
import numpy as np
import vtk
from vtk.util import numpy_support


from MVABridgeLib.errors import InvalidGeometryError, IntensityRangeError, InvalidVolumeError, VectorVolumeError
from MVABridgeLib.image_data import array_to_matrix, matrix_to_array
from MVABridgeLib.volume_checks import geometry_problem, intensity_problem, spacing_problem


def check_geometry(ijk_to_ras, name="volume"):
    """Raise InvalidGeometryError for a zero, negative, tiny, huge or non-finite spacing or a degenerate matrix.

    Parameters
    ----------
    ijk_to_ras : array-like, shape (4, 4)
    name : str
        How the message names the volume.
    """
    problem = geometry_problem(ijk_to_ras, name)
    if problem:
        raise InvalidGeometryError(problem)


def check_source_node(volume_node):
    """Raise before VTK or Slicer computes on a node that would crash it or be silently misread.

    Checks the node's spacing and IJK->RAS matrix (a zero spacing aborts the process in the segment
    editor's resampling) and refuses RGB/vector images (the editor would keep only their first component).

    Raises
    ------
    InvalidVolumeError
        No node or no image data.
    InvalidGeometryError
        Zero, negative, tiny, huge or NaN spacing, or a degenerate IJK->RAS matrix.
    VectorVolumeError
        More than one component per voxel.
    """
    if volume_node is None:
        raise InvalidVolumeError("No source volume is selected")
    name = f"Volume '{volume_node.GetName()}'"
    problem = spacing_problem(volume_node.GetSpacing(), name)
    if problem:
        raise InvalidGeometryError(problem)
    check_geometry(volume_ijk_to_ras(volume_node), name)
    image = volume_node.GetImageData()
    if image is None or image.GetPointData().GetScalars() is None:
        raise InvalidVolumeError(f"{name} has no image data; load or select another volume")
    components = image.GetNumberOfScalarComponents()
    if components != 1:
        raise VectorVolumeError(f"{name} has {components} components per voxel (RGB/vector); convert it to a "
                                "scalar volume first (Vector to Scalar Volume module)")


def check_source_array(array_kji, name="volume", index_to_ras=None):
    """Raise InvalidVolumeError unless `array_kji` is a 3D scalar volume at least 2 voxels along every axis, with
    finite values within the tools' range and, when given, a usable `index_to_ras` (InvalidGeometryError otherwise)."""
    array_kji = np.asarray(array_kji)
    if index_to_ras is not None:
        check_geometry(index_to_ras, name)
    if array_kji.ndim == 4:
        raise VectorVolumeError(
            f"{name} is 4D or has {array_kji.shape[-1]} components per voxel; select a 3D scalar volume")
    if array_kji.ndim != 3:
        raise InvalidVolumeError(f"{name} has {array_kji.ndim} dimensions; a 3D volume is needed")
    if min(array_kji.shape) < 1 or array_kji.size == 0:
        raise InvalidVolumeError(f"{name} is empty")
    if array_kji.shape[0] < 2:
        raise InvalidVolumeError(f"{name} has a single slice; these tools need a 3D volume with at least 2 slices")
    if min(array_kji.shape[1:]) < 2:  # a single sagittal or coronal slice stored as a volume
        raise InvalidVolumeError(f"{name} is one voxel thick along one of its axes (k, j, i = {array_kji.shape}): a "
                                 "single slice; these tools need a 3D volume with at least 2 voxels along every axis")
    if not np.issubdtype(array_kji.dtype, np.number) or np.issubdtype(array_kji.dtype, np.complexfloating):
        raise InvalidVolumeError(f"{name} has voxel type {array_kji.dtype}; a real scalar type is needed")
    if np.issubdtype(array_kji.dtype, np.floating):
        bad = int(np.count_nonzero(~np.isfinite(array_kji)))
        if bad:
            raise InvalidVolumeError(f"{name} has {bad} NaN or infinite voxels; fix or mask them before segmenting")
    problem = intensity_problem(array_kji, name)
    if problem:
        raise IntensityRangeError(problem)
    return array_kji


def volume_ijk_to_ras(volume_node):
    matrix = vtk.vtkMatrix4x4()
    volume_node.GetIJKToRASMatrix(matrix)
    return matrix_to_array(matrix)


def volume_array(volume_node, check=True):
    """(array_kji copy, ijk_to_ras) of a scalar volume node.

    Raises
    ------
    InvalidVolumeError
        No node, no image, a single slice, or NaN voxels or values beyond the tools' range (with `check`);
        its subclasses InvalidGeometryError (spacing, matrix) and VectorVolumeError (RGB/vector).
    """
    check_source_node(volume_node)
    image = volume_node.GetImageData()
    dims = image.GetDimensions()
    array = numpy_support.vtk_to_numpy(image.GetPointData().GetScalars()).reshape(dims[2], dims[1], dims[0]).copy()
    if check:
        check_source_array(array, f"Volume '{volume_node.GetName()}'")
    return array, volume_ijk_to_ras(volume_node)


def add_volume_node(scene, array_kji, ijk_to_ras, name="Volume"):
    """Add a vtkMRMLScalarVolumeNode holding a copy of `array_kji` with the given geometry."""
    array_kji = np.asarray(array_kji)
    if array_kji.ndim != 3:
        raise InvalidVolumeError(f"Volume '{name}' has {array_kji.ndim} dimensions; a 3D array (k, j, i) is needed")
    check_geometry(ijk_to_ras, f"Volume '{name}'")
    ijk_to_ras = np.asarray(ijk_to_ras, float)
    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", name)
    node.SetIJKToRASMatrix(array_to_matrix(ijk_to_ras))
    image = vtk.vtkImageData()
    image.SetDimensions(array_kji.shape[2], array_kji.shape[1], array_kji.shape[0])
    flat = np.ascontiguousarray(array_kji).ravel()
    vtk_array = numpy_support.numpy_to_vtk(flat, deep=True, array_type=numpy_support.get_vtk_array_type(flat.dtype))
    image.GetPointData().SetScalars(vtk_array)
    node.SetAndObserveImageData(image)
    node.CreateDefaultDisplayNodes()
    return node

"""Read and write image files as (array_kji, ijk_to_ras) pairs.

SimpleITK only (no Slicer import), so files can be read headless, in tests and in the CLI.
ITK stores geometry in LPS; Slicer and this project use RAS.
"""
import os

import numpy as np
import SimpleITK as sitk

from MVABridgeLib.volume_checks import geometry_problem
from MVABridgeLib.volume_file_checks import IncompleteFileError, check_file_complete

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


class VolumeFileError(ValueError):
    """A file could not be read as a scalar 3D volume."""


class TruncatedVolumeFileError(VolumeFileError):
    """The file holds fewer voxels than its header declares, or its compressed data is cut or corrupt."""


class VolumeFileGeometryError(VolumeFileError):
    """The file's spacing, origin or directions are zero, tiny, huge, NaN or degenerate."""


def ijk_to_ras_from_sitk(image):
    """4x4 IJK->RAS matrix of a 3D SimpleITK image."""
    direction = np.array(image.GetDirection(), float).reshape(3, 3)
    ijk_to_lps = np.eye(4)
    ijk_to_lps[:3, :3] = direction * np.array(image.GetSpacing(), float)
    ijk_to_lps[:3, 3] = image.GetOrigin()
    return LPS_TO_RAS @ ijk_to_lps


def sitk_from_array(array_kji, ijk_to_ras):
    """SimpleITK image with the geometry of `ijk_to_ras` (the inverse of `read_volume`)."""
    ijk_to_lps = LPS_TO_RAS @ np.asarray(ijk_to_ras, float)
    spacing = np.linalg.norm(ijk_to_lps[:3, :3], axis=0)
    image = sitk.GetImageFromArray(np.ascontiguousarray(array_kji))
    image.SetSpacing(tuple(float(s) for s in spacing))
    image.SetDirection(tuple((ijk_to_lps[:3, :3] / spacing).ravel()))
    image.SetOrigin(tuple(float(o) for o in ijk_to_lps[:3, 3]))
    return image


def check_volume_file(path, allow_vector=False, min_slices=1, scan_folder=True):
    """Raise VolumeFileError (or a subclass) unless `path` is a complete 3D scalar image, judged from its header.

    Cheap (no voxels are read except to verify a compressed stream's length), so callers can check inputs
    before slow work. A folder must hold a DICOM series (with `scan_folder`; its images are checked when read).

    Parameters
    ----------
    path : str or path-like
    allow_vector : bool
        Accept several components per voxel.
    min_slices : int
        Fewest slices (third axis) accepted; 2 refuses a single-slice "3D" file as 2D.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise VolumeFileError(f"No such file or folder: {path}")
    if os.path.isdir(path):
        if scan_folder and not sitk.ImageSeriesReader.GetGDCMSeriesFileNames(path):
            raise VolumeFileError(f"No DICOM series found in folder {path}")
        return
    if os.path.getsize(path) == 0:
        raise VolumeFileError(f"{path} is an empty file (0 bytes); choose the image file itself")
    try:
        check_file_complete(path)
    except IncompleteFileError as error:
        raise TruncatedVolumeFileError(str(error)) from None
    except OSError as error:
        raise VolumeFileError(f"Cannot read {path}: {error.strerror or error}") from None
    reader = sitk.ImageFileReader()
    reader.SetFileName(path)
    try:
        reader.ReadImageInformation()
    except RuntimeError as error:
        raise VolumeFileError(f"Cannot read {path} as an image: {_reason(error)}") from None
    _check_image(path, reader, reader.GetNumberOfComponents(), allow_vector, min_slices)


def _reason(error):
    return str(error).strip().splitlines()[-1]


def _check_image(path, image, components, allow_vector, min_slices):
    """Dimension, components, slices and geometry of a SimpleITK image or header reader."""
    if components != 1 and not allow_vector:
        raise VolumeFileError(f"{path} has {components} components per voxel (RGB/vector); a scalar volume is needed")
    size = tuple(image.GetSize())
    listed = " x ".join(map(str, size))
    if image.GetDimension() == 2 or (image.GetDimension() == 3 and size[2] < min_slices):
        raise VolumeFileError(f"{path} is a 2D image (size {listed}); a 3D volume is needed")
    if image.GetDimension() != 3:
        raise VolumeFileError(f"{path} is {image.GetDimension()}D (size {listed}); a 3D volume is needed")
    problem = geometry_problem(ijk_to_ras_from_sitk(image), str(path))
    if problem:
        raise VolumeFileGeometryError(problem)


def _read_sitk(path):
    try:
        if os.path.isdir(path):
            reader = sitk.ImageSeriesReader()
            files = reader.GetGDCMSeriesFileNames(path)
            if not files:
                raise VolumeFileError(f"No DICOM series found in folder {path}")
            reader.SetFileNames(files)
            return reader.Execute()
        return sitk.ReadImage(path)
    except RuntimeError as error:
        reason = _reason(error)
        if os.path.isfile(path) and "No such file or directory" in reason:
            # MetaImage says this both for a cut file and for a missing detached data file
            raise TruncatedVolumeFileError(f"Cannot read {path}: its voxel data is incomplete (a truncated file) or "
                                           "its separate data file is missing; export or copy it again") from None
        raise VolumeFileError(f"Cannot read {path} as an image: {reason}") from None


def read_volume(path, allow_vector=False):
    """Read a 3D scalar volume.

    Returns
    -------
    array_kji : ndarray, shape (K, J, I)
    ijk_to_ras : ndarray, shape (4, 4)

    Raises
    ------
    VolumeFileError
        Missing, empty or unreadable file, a vector (RGB) image, or an image that is not 3D; its subclasses
        TruncatedVolumeFileError (fewer voxels than the header declares, a cut or corrupt compressed stream)
        and VolumeFileGeometryError (zero, NaN, tiny or huge spacing, degenerate directions).
    """
    path = os.fspath(path)
    check_volume_file(path, allow_vector, scan_folder=False)
    image = _read_sitk(path)
    _check_image(path, image, image.GetNumberOfComponentsPerPixel(), allow_vector, 1)
    return sitk.GetArrayFromImage(image), ijk_to_ras_from_sitk(image)


def write_volume(path, array_kji, ijk_to_ras, compress=True):
    """Write (array_kji, ijk_to_ras) to any format SimpleITK writes (chosen by extension)."""
    sitk.WriteImage(sitk_from_array(array_kji, ijk_to_ras), os.fspath(path), compress)

"""Find cases on disk: volume files in a folder, or DICOM series (one case per series) in a folder tree."""
import dataclasses
import os

import numpy as np
import SimpleITK as sitk

from MVAWorkflowLib.errors import InvalidInputError

VOLUME_EXTENSIONS = (".nrrd", ".nhdr", ".nii", ".nii.gz", ".mha", ".mhd")


class UnusableCaseError(InvalidInputError):
    """A case file or series that cannot be annotated: unreadable, truncated, 2D, 4D, RGB, bad spacing."""


class GridMismatchError(InvalidInputError):
    """A labelmap whose shape or voxel geometry differs from its case's volume."""


class AddedCases(list):
    """Names of the cases added (a list, as before), with `refused`: [(path, message)] of the sources left out."""

    def __init__(self, names=(), refused=()):
        super().__init__(names)
        self.refused = list(refused)


@dataclasses.dataclass(frozen=True)
class CaseSource:
    """One case to create: `name` unique in the project; `series_uid` only for DICOM."""
    name: str
    path: str
    kind: str  # "file" or "dicom"
    series_uid: str | None = None


def _is_volume_file(name):
    lower = name.lower()
    return lower.endswith(VOLUME_EXTENSIONS) and not lower.endswith(".seg.nrrd")


def _strip_extension(name):
    lower = name.lower()
    for extension in sorted(VOLUME_EXTENSIONS, key=len, reverse=True):
        if lower.endswith(extension):
            return name[:-len(extension)]
    return name


def dicom_series(folder):
    """`[(folder, series_uid), ...]` for every DICOM series under `folder` (recursive), sorted."""
    found = []
    for current, _dirs, _files in sorted(os.walk(folder)):
        for uid in sitk.ImageSeriesReader.GetGDCMSeriesIDs(current) or ():
            found.append((current, uid))
    return found


def find_case_sources(path, dicom=None):
    """Cases found at `path`.

    Parameters
    ----------
    path : str
        A volume file, a folder of volume files, or a folder (tree) of DICOM files.
    dicom : bool, optional
        Force DICOM (True) or volume-file (False) scanning; default: volume files if any, else DICOM.

    Returns
    -------
    list of CaseSource

    Raises
    ------
    InvalidInputError
        `path` does not exist or holds no volume file and no DICOM series.
    """
    path = os.path.abspath(os.fspath(path))
    if not os.path.exists(path):
        raise InvalidInputError(f"No such file or folder: {path}")
    if os.path.isfile(path):
        if not _is_volume_file(os.path.basename(path)):
            raise InvalidInputError(f"{path} is not a volume file ({', '.join(VOLUME_EXTENSIONS)})")
        return [CaseSource(_strip_extension(os.path.basename(path)), path, "file")]
    sources = []
    if dicom is not True:
        sources = [CaseSource(_strip_extension(name), os.path.join(path, name), "file")
                   for name in sorted(os.listdir(path)) if _is_volume_file(name)]
    if not sources and dicom is not False:
        series = dicom_series(path)
        for index, (folder, uid) in enumerate(series):
            relative = os.path.relpath(folder, path)
            base = os.path.basename(path) if relative == "." else relative.replace(os.sep, "_")
            name = base if len(series) == 1 else f"{base}_{uid[-12:]}"
            sources.append(CaseSource(name, folder, "dicom", uid))
    if not sources:
        raise InvalidInputError(f"No volume files and no DICOM series found in {path}")
    return sources


def read_case_volume(source_path, source_kind, series_uid=None):
    """Read a case's image as `(array_kji, ijk_to_ras)` (DICOM: the given series only)."""
    from MVABridgeLib.volume_io import ijk_to_ras_from_sitk, read_volume
    if source_kind != "dicom":
        return read_volume(source_path)
    files = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(source_path, series_uid or "")
    if not files:
        raise InvalidInputError(f"DICOM series {series_uid} is no longer in {source_path}")
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    image = reader.Execute()
    return sitk.GetArrayFromImage(image), ijk_to_ras_from_sitk(image)


def case_problem(source):
    """Why a CaseSource cannot be annotated (judged from its header, without reading the voxels), or None."""
    from MVABridgeLib.volume_io import VolumeFileError, check_volume_file
    if source.kind == "dicom":
        files = dicom_files(source.path, source.series_uid)
        if len(files) < 2:
            return f"{source.path}: DICOM series {source.series_uid} has {len(files)} image(s); a 3D series is needed"
        return None
    if not os.path.isfile(source.path):
        return f"{source.path} is not a file"
    try:
        check_volume_file(source.path, min_slices=2)
    except VolumeFileError as error:
        return str(error)
    return None


def screen_case_sources(sources):
    """(usable sources, [(path, message)] of the others): one bad file never blocks the rest."""
    usable, refused = [], []
    for source in sources:
        problem = case_problem(source)
        if problem:
            refused.append((source.path, problem))
        else:
            usable.append(source)
    return usable, refused


def case_grid(source_path, source_kind, series_uid=None):
    """(shape_kji, ijk_to_ras) of a case's volume (file: from the header only; DICOM: the series is read)."""
    from MVABridgeLib.volume_io import ijk_to_ras_from_sitk
    if source_kind == "dicom":
        array, ijk_to_ras = read_case_volume(source_path, source_kind, series_uid)
        return array.shape, ijk_to_ras
    reader = sitk.ImageFileReader()
    reader.SetFileName(os.fspath(source_path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as error:
        raise UnusableCaseError(f"The case's volume {source_path} cannot be read any more "
                                f"({str(error).strip().splitlines()[-1]})") from None
    image = sitk.Image([1, 1, 1], sitk.sitkUInt8)
    image.SetSpacing(reader.GetSpacing())
    image.SetOrigin(reader.GetOrigin())
    image.SetDirection(reader.GetDirection())
    return tuple(int(v) for v in reader.GetSize()[::-1]), ijk_to_ras_from_sitk(image)


def check_labelmap_grid(case_name, source_path, source_kind, series_uid, labelmap):
    """Raise GridMismatchError unless `labelmap` (storage.Labelmap) lies on the case volume's voxel grid.

    Matrices may differ by a thousandth of a voxel (floating-point round trips through files).
    """
    shape, ijk_to_ras = case_grid(source_path, source_kind, series_uid)
    if tuple(labelmap.array_kji.shape) != tuple(shape):
        raise GridMismatchError(f"The labelmap has shape {tuple(labelmap.array_kji.shape)} (k, j, i) but case "
                                f"{case_name!r} has {tuple(shape)}; save a labelmap on the case's own grid "
                                "(resample it to the case volume first)")
    tolerance = 1e-3 * float(np.linalg.norm(ijk_to_ras[:3, :3], axis=0).min())
    if not np.allclose(np.asarray(labelmap.ijk_to_ras, float), ijk_to_ras, atol=tolerance):
        raise GridMismatchError(f"The labelmap's spacing, origin or directions differ from case {case_name!r}'s "
                                "volume; save a labelmap on the case's own grid (resample it to the case volume)")


def dicom_files(source_path, series_uid):
    """Sorted file names of one DICOM series."""
    return list(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(source_path, series_uid or ""))

"""Find cases on disk: volume files in a folder, or DICOM series (one case per series) in a folder tree."""
import dataclasses
import os

import SimpleITK as sitk

from MVAWorkflowLib.errors import InvalidInputError

VOLUME_EXTENSIONS = (".nrrd", ".nhdr", ".nii", ".nii.gz", ".mha", ".mhd")


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


def dicom_files(source_path, series_uid):
    """Sorted file names of one DICOM series."""
    return list(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(source_path, series_uid or ""))

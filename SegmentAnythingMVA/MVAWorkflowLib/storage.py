"""Atomic, versioned files for annotations.

Each save writes a new revision file next to the previous ones:
``<root>/project-<p>/case-<c>/user-<u>/annotation-r0003.nrrd``. The data goes to a temporary file in the
same folder, is flushed and fsync'ed, then `os.replace`d onto its final name and the folder is fsync'ed.
The database points at the new revision only after its transaction commits, so a crash at any moment
leaves the previous revision both on disk and referenced: nothing is corrupted or lost.
"""
import dataclasses
import hashlib
import os
import uuid

import numpy as np
import SimpleITK as sitk

from MVAWorkflowLib.errors import InvalidInputError, WorkflowError

LABEL_DTYPES = (np.uint8, np.uint16, np.int16, np.int32, np.uint32, np.int8)


class StorageError(WorkflowError):
    """An annotation file is missing or does not match its recorded checksum."""


@dataclasses.dataclass(frozen=True)
class Labelmap:
    """A label volume: one integer label value per voxel (0 = background).

    Attributes
    ----------
    array_kji : ndarray, shape (K, J, I), integer dtype
        Label values; axis order (slices, rows, columns).
    ijk_to_ras : ndarray, shape (4, 4)
        Voxel index (i, j, k) to RAS millimetres.
    """
    array_kji: np.ndarray
    ijk_to_ras: np.ndarray

    def __post_init__(self):
        array = np.asarray(self.array_kji)
        if array.ndim != 3:
            raise InvalidInputError(f"A labelmap must be 3D (K, J, I); got shape {array.shape}")
        if array.dtype == bool:
            array = array.astype(np.uint8)
        if not np.issubdtype(array.dtype, np.integer):
            raise InvalidInputError(f"A labelmap must hold integers; got dtype {array.dtype}")
        matrix = np.asarray(self.ijk_to_ras, float)
        if matrix.shape != (4, 4) or abs(np.linalg.det(matrix[:3, :3])) < 1e-12:
            raise InvalidInputError("ijk_to_ras must be an invertible 4x4 matrix")
        object.__setattr__(self, "array_kji", array)
        object.__setattr__(self, "ijk_to_ras", matrix)

    @classmethod
    def from_file(cls, path):
        """Read a labelmap file (NRRD, NIfTI, MHA; a `.seg.nrrd` with one layer)."""
        from MVABridgeLib.volume_io import VolumeFileError, read_volume
        try:
            array, ijk_to_ras = read_volume(path)
        except VolumeFileError as error:
            raise InvalidInputError(f"Cannot use {path} as a labelmap: {error}") from None
        return cls(array, ijk_to_ras)

    def label_values(self):
        """Sorted non-zero label values present."""
        return [int(v) for v in np.unique(self.array_kji) if v != 0]


def annotation_path(storage_root, project_id, case_id, user_id, revision):
    """Path of one revision of one annotator's annotation of one case."""
    folder = os.path.join(storage_root, f"project-{project_id}", f"case-{case_id}", f"user-{user_id}")
    return os.path.join(folder, f"annotation-r{revision:04d}.nrrd")


def _fsync_folder(folder):
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return  # folders cannot be opened on some platforms (Windows); the rename is still atomic there
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def atomic_write(path, write):
    """Write a file atomically: `write(temporary_path)`, fsync, `os.replace` onto `path`, fsync the folder.

    Parameters
    ----------
    path : str
        Final path. Its extension is kept on the temporary file (writers choose the format by extension).
    write : callable
        Called with the temporary path; must create that file.

    Returns
    -------
    str
        `path`. If anything fails, `path` is left as it was and the temporary file is removed.
    """
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    base = os.path.basename(path)
    extension = base[base.index("."):] if "." in base else ""
    temporary = os.path.join(folder, f".tmp-{uuid.uuid4().hex}{extension}")
    try:
        write(temporary)
        with open(temporary, "rb+") as stream:
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
        _fsync_folder(folder)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
    return path


def file_sha256(path):
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_labelmap(path, labelmap):
    """Atomically write `labelmap` as a compressed NRRD; returns its SHA-256."""
    from MVABridgeLib.volume_io import sitk_from_array
    image = sitk_from_array(labelmap.array_kji, labelmap.ijk_to_ras)
    atomic_write(path, lambda temporary: sitk.WriteImage(image, temporary, True))
    return file_sha256(path)


def read_labelmap(path, expected_sha256=None):
    """Read a stored labelmap, checking its checksum when one is given.

    Raises
    ------
    StorageError
        The file is missing or its bytes differ from `expected_sha256`.
    """
    if not os.path.exists(path):
        raise StorageError(f"Annotation file is missing: {path}")
    if expected_sha256 and file_sha256(path) != expected_sha256:
        raise StorageError(f"Annotation file {path} does not match its recorded checksum (changed on disk?)")
    return Labelmap.from_file(path)

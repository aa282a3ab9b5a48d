"""Atomic, versioned, private files for annotations.

Each save writes a new file under a name no other writer can use,
``<root>/project-<p>/case-<c>/user-<u>/annotation-<host>-<pid>-<random>.nrrd`` (ids only, never user-chosen
names). The data goes to a temporary file in the same folder, is flushed and fsync'ed, then `os.replace`d onto
that name and the folder is fsync'ed; the file becomes a revision only in the database transaction that wins
the version check, and a losing writer removes its file. A writer killed in between leaves a file no row points
to; `remove_unfinished_files` deletes such files once their writer process is gone. Files are created 0600 and
folders 0700: annotations are medical data.
"""
import dataclasses
import hashlib
import logging
import os
import re
import socket
import time
import uuid

import numpy as np
import SimpleITK as sitk

from MVAWorkflowLib.errors import InvalidInputError, WorkflowError

LABEL_DTYPES = (np.uint8, np.uint16, np.int16, np.int32, np.uint32, np.int8)
FILE_MODE = 0o600
FOLDER_MODE = 0o700
#: an unreferenced writer file older than this is removed even when its writer cannot be checked (another
#: machine) or its process id was reused
STALE_SECONDS = 3600
_WRITER_FILE = re.compile(r"^(?:annotation|\.tmp)-(?P<host>[0-9a-f]{8})-(?P<pid>\d+)-[0-9a-f]+(?:\.[A-Za-z.]+)?$")
_log = logging.getLogger(__name__)


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


def _host_tag():
    return hashlib.sha256(socket.gethostname().encode("utf-8")).hexdigest()[:8]


def writer_tag():
    """`<host>-<pid>`: identifies this process in the names of the files it writes."""
    return f"{_host_tag()}-{os.getpid()}"


def annotation_folder(storage_root, project_id, case_id, user_id):
    """Folder of one annotator's revisions of one case (built from ids only)."""
    return os.path.join(storage_root, f"project-{int(project_id)}", f"case-{int(case_id)}", f"user-{int(user_id)}")


def new_annotation_path(storage_root, project_id, case_id, user_id):
    """A path no other writer (process, thread or call) can choose for a new revision file."""
    return os.path.join(annotation_folder(storage_root, project_id, case_id, user_id),
                        f"annotation-{writer_tag()}-{uuid.uuid4().hex}.nrrd")


def private_folder(path):
    """Create `path` and any missing parents with mode 0700 (existing folders are left as they are)."""
    path = os.path.abspath(path)
    missing = []
    while not os.path.isdir(path):
        missing.append(path)
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    for folder in reversed(missing):
        try:
            os.mkdir(folder, FOLDER_MODE)
        except FileExistsError:
            continue  # made by a concurrent writer meanwhile
        os.chmod(folder, FOLDER_MODE)  # the umask may have removed bits; make it exactly 0700
    return missing[0] if missing else path


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
    """Write a private file atomically: `write(temporary_path)`, fsync, chmod 0600, `os.replace` onto `path`.

    Parameters
    ----------
    path : str
        Final path. Its extension is kept on the temporary file (writers choose the format by extension).
        Missing folders are created 0700.
    write : callable
        Called with the temporary path; must create that file.

    Returns
    -------
    str
        `path`. If anything fails, `path` is left as it was and the temporary file is removed.
    """
    folder = os.path.dirname(os.path.abspath(path))
    private_folder(folder)
    base = os.path.basename(path)
    extension = base[base.index("."):] if "." in base else ""
    temporary = os.path.join(folder, f".tmp-{writer_tag()}-{uuid.uuid4().hex}{extension}")
    try:
        write(temporary)
        os.chmod(temporary, FILE_MODE)
        with open(temporary, "rb+") as stream:
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
        _fsync_folder(folder)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
    return path


def _writer_gone(host, pid):
    if host != _host_tag():
        return None  # another machine: unknown
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, another account's
    return False


def unfinished_candidates(folder, now=None):
    """Paths in `folder` written by a process that is gone, or older than `STALE_SECONDS`.

    These are revision files or temporaries whose save never committed *unless* a database row points to them:
    check that after calling this (a writer that committed and then died has its row already).
    """
    now = time.time() if now is None else now
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return []
    found = []
    for name in names:
        match = _WRITER_FILE.match(name)
        if not match:
            continue
        path = os.path.join(folder, name)
        gone = _writer_gone(match["host"], int(match["pid"]))
        try:
            old = now - os.path.getmtime(path) > STALE_SECONDS
        except FileNotFoundError:
            continue
        if gone or old:  # a save takes seconds: an hour-old unfinished file is litter even if its pid is reused
            found.append(path)
    return found


def discard(path):
    """Remove a file of a save that did not commit (missing is fine)."""
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def file_sha256(path):
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_labelmap(path, labelmap):
    """Atomically write `labelmap` as a compressed NRRD (mode 0600); returns its SHA-256."""
    from MVABridgeLib.volume_io import sitk_from_array
    image = sitk_from_array(labelmap.array_kji, labelmap.ijk_to_ras)
    atomic_write(path, lambda temporary: sitk.WriteImage(image, temporary, True))
    return file_sha256(path)


def read_labelmap(path, expected_sha256=None):
    """Read a stored labelmap, checking its checksum when one is given.

    Raises
    ------
    StorageError
        The file is missing, its bytes differ from `expected_sha256`, or it cannot be read as a labelmap. The
        message does not name the file (it may reach a browser); the path is logged on the server.
    """
    if not os.path.exists(path):
        _log.warning("annotation file missing: %s", path)
        raise StorageError("The annotation file is missing from the storage folder")
    if expected_sha256 and file_sha256(path) != expected_sha256:
        _log.warning("annotation file does not match its checksum: %s", path)
        raise StorageError("The annotation file does not match its recorded checksum (changed or damaged on disk)")
    try:
        return Labelmap.from_file(path)
    except InvalidInputError:
        _log.warning("annotation file unreadable: %s", path)
        raise StorageError("The annotation file cannot be read as a labelmap") from None

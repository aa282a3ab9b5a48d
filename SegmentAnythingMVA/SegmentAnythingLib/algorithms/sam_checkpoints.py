"""Segment Anything checkpoints: the table of official files, the per-user cache folder, download.

Nothing here runs at import. :func:`ensure_checkpoint` returns the local path of a checkpoint and
downloads it on first use: streamed to ``<file>.part`` with a progress callback and a cancel callable,
resumed with an HTTP ``Range`` request, checked against the size and SHA-256 in the table, then
renamed into place atomically.

The SHA-256 values were cross-checked against several independent public listings (for example
micro-sam's model registry and download scripts that pin the same digest and byte count).
"""
from __future__ import annotations

import hashlib
import os
import sys
import urllib.error
import urllib.request
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from .sam_errors import (
    CheckpointDownloadError,
    CheckpointLoadError,
    CheckpointMissingError,
    ChecksumMismatchError,
    DownloadCancelledError,
    UnknownModelError,
    UnofficialCheckpointWarning,
)

CACHE_ENV_VAR = "SEGMENT_ANYTHING_MVA_CACHE"
APP_FOLDER_NAME = "segment-anything-mva"
CHUNK_BYTES = 1 << 20

ProgressCallback = Callable[[int, Optional[int]], None]
CancelCallable = Callable[[], bool]


@dataclass(frozen=True)
class CheckpointInfo:
    """One checkpoint: registry model type, file name, source and integrity data.

    ``url``, ``size_bytes`` and ``sha256`` are None where the file must be supplied by the user.
    """

    name: str
    model_type: str
    file_name: str
    url: Optional[str]
    size_bytes: Optional[int]
    sha256: Optional[str]
    description: str


_FB_URL = "https://dl.fbaipublicfiles.com/segment_anything/"

CHECKPOINTS = {
    "vit_h": CheckpointInfo(
        "vit_h", "vit_h", "sam_vit_h_4b8939.pth", _FB_URL + "sam_vit_h_4b8939.pth", 2564550879,
        "a7bf3b02f3ebf1267aba913ff637d9a2d5c33d3173bb679e46d9f338c26f262e",
        "SAM ViT-H (636 M parameters, 2.4 GiB), most accurate, slowest",
    ),
    "vit_l": CheckpointInfo(
        "vit_l", "vit_l", "sam_vit_l_0b3195.pth", _FB_URL + "sam_vit_l_0b3195.pth", 1249524607,
        "3adcc4315b642a4d2101128f611684e8734c41232a17c648ed1693702a49a622",
        "SAM ViT-L (308 M parameters, 1.2 GiB)",
    ),
    "vit_b": CheckpointInfo(
        "vit_b", "vit_b", "sam_vit_b_01ec64.pth", _FB_URL + "sam_vit_b_01ec64.pth", 375042383,
        "ec2df62732614e57411cdcf32a23ffdf28910380d03139ee0f4fcbe91eb8c912",
        "SAM ViT-B (91 M parameters, 358 MiB), fastest",
    ),
    "medsam_vit_b": CheckpointInfo(
        "medsam_vit_b", "vit_b", "medsam_vit_b.pth", None, None, None,
        "MedSAM (ViT-B fine-tuned on medical images); download it from "
        "https://github.com/bowang-lab/MedSAM and choose the file",
    ),
}


def checkpoint_info(name: str) -> CheckpointInfo:
    """Return the table entry for ``name`` ("vit_h", "vit_l", "vit_b", "medsam_vit_b").

    Raises
    ------
    UnknownModelError
        If the name is not in :data:`CHECKPOINTS`.
    """
    try:
        return CHECKPOINTS[name]
    except KeyError:
        raise UnknownModelError(
            f"Unknown Segment Anything model '{name}'; choose one of {', '.join(CHECKPOINTS)}."
        ) from None


def default_cache_folder() -> Path:
    """Per-user cache folder of this extension (not created here).

    ``$SEGMENT_ANYTHING_MVA_CACHE`` wins; otherwise ``%LOCALAPPDATA%`` on Windows,
    ``~/Library/Caches`` on macOS, ``$XDG_CACHE_HOME`` or ``~/.cache`` elsewhere, each followed by
    ``segment-anything-mva``.
    """
    override = os.environ.get(CACHE_ENV_VAR)
    if override:
        return Path(override).expanduser()
    if sys.platform.startswith("win"):
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / APP_FOLDER_NAME


def checkpoint_folder(cache_folder: Optional[Path] = None) -> Path:
    """Folder holding checkpoint files: ``<cache folder>/checkpoints``."""
    return Path(cache_folder or default_cache_folder()) / "checkpoints"


def ensure_checkpoint(
    name: str,
    *,
    path: Optional[os.PathLike] = None,
    cache_folder: Optional[os.PathLike] = None,
    url: Optional[str] = None,
    allow_download: bool = True,
    verify_sha256: bool = False,
    progress: Optional[ProgressCallback] = None,
    cancel: Optional[CancelCallable] = None,
) -> Path:
    """Return the local checkpoint file of model ``name``, downloading it on first use.

    Parameters
    ----------
    name : str
        Key of :data:`CHECKPOINTS`.
    path : path-like, optional
        A user-chosen file (required for MedSAM unless it sits in the checkpoint folder).
    cache_folder : path-like, optional
        Overrides :func:`default_cache_folder`; files go to ``<cache_folder>/checkpoints``.
    url : str, optional
        Overrides the table URL (mirrors, tests with local servers or ``file://``).
    allow_download : bool
        False: never touch the network, fail if the file is absent.
    verify_sha256 : bool
        Also hash a file that is already present (seconds for large files); a fresh download is
        always hashed.
    progress : callable(done_bytes, total_bytes or None), optional
    cancel : callable() -> bool, optional
        Polled between chunks; True stops the download with :class:`DownloadCancelledError`.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    UnknownModelError, CheckpointMissingError, CheckpointDownloadError, DownloadCancelledError,
    ChecksumMismatchError
    """
    info = checkpoint_info(name)
    if path is not None:
        target = Path(path).expanduser()
        if target.is_dir():
            raise CheckpointMissingError(f"Checkpoint '{target}' is a folder; choose the {info.file_name} file "
                                         f"of {info.description} (or a checkpoint of your own) inside it.")
        if not target.is_file():
            raise CheckpointMissingError(f"Checkpoint file '{target}' does not exist; choose the "
                                         f"{info.file_name} file of {info.description}.")
        _note_unofficial(info, target, verify_sha256)
        return target
    folder = checkpoint_folder(Path(cache_folder) if cache_folder else None)
    target = folder / info.file_name
    if target.is_file():
        _verify_existing(info, target, verify_sha256)
        return target
    source = url or info.url
    if source is None or not allow_download:
        how = (f"download it from {source}" if source else info.description)
        raise CheckpointMissingError(
            f"Checkpoint {info.file_name} is not in {folder}; {how} and put it in that folder "
            f"(or set ${CACHE_ENV_VAR} to a folder that has a 'checkpoints' subfolder with it)."
        )
    folder.mkdir(parents=True, exist_ok=True)
    return download_file(source, target, expected_size=info.size_bytes, sha256=info.sha256,
                         progress=progress, cancel=cancel)


def _note_unofficial(info: CheckpointInfo, target: Path, verify_sha256: bool) -> None:
    """A file the user chose is theirs (a fine-tune, a converted copy): warn when it is not the official file, never
    refuse it by size or checksum; whether it fits the model is decided when its weights are loaded."""
    if info.size_bytes is None:
        return
    size = target.stat().st_size
    differs = size != info.size_bytes
    if not differs and verify_sha256 and info.sha256 is not None:
        differs = file_sha256(target) != info.sha256
    if differs:
        warnings.warn(UnofficialCheckpointWarning(
            f"{target} is not the official {info.file_name} ({size} bytes, its checksum differs); loading it as "
            f"a {info.model_type} checkpoint of your own."), stacklevel=3)


def _verify_existing(info: CheckpointInfo, target: Path, verify_sha256: bool) -> None:
    size = target.stat().st_size
    if info.size_bytes is not None and size != info.size_bytes:
        raise ChecksumMismatchError(
            f"{target} has {size} bytes, expected {info.size_bytes} for {info.file_name}; "
            f"delete it so that it is downloaded again."
        )
    if verify_sha256 and info.sha256 is not None:
        digest = file_sha256(target)
        if digest != info.sha256:
            raise ChecksumMismatchError(
                f"{target} has SHA-256 {digest}, expected {info.sha256}; the file is corrupt, "
                f"delete it so that it is downloaded again."
            )


def check_checkpoint_file(path: os.PathLike) -> None:
    """Raise CheckpointLoadError unless `path` is a file that starts like a PyTorch checkpoint (no torch import).

    torch.save writes a zip archive (PyTorch >= 1.6) or, in the legacy format, a pickle stream (first byte 0x80).
    """
    path = Path(path)
    if path.is_dir():
        raise CheckpointLoadError(f"{path} is a folder; choose the checkpoint file (.pth) inside it.")
    try:
        with open(path, "rb") as stream:
            head = stream.read(4)
    except OSError as error:
        raise CheckpointLoadError(f"Cannot read checkpoint {path}: {error.strerror or error}.") from error
    if not head:
        raise CheckpointLoadError(f"{path.name} is empty (0 bytes); choose a SAM checkpoint (.pth), or download "
                                  "it again.")
    if not (head.startswith(b"PK") or head.startswith(b"\x80")):
        raise CheckpointLoadError(f"{path.name} is not a PyTorch checkpoint (neither a torch.save zip archive nor a "
                                  "pickle); choose a SAM checkpoint file such as sam_vit_b_01ec64.pth.")


def file_sha256(path: os.PathLike, cancel: Optional[CancelCallable] = None) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(CHUNK_BYTES), b""):
            if cancel is not None and cancel():
                raise DownloadCancelledError(f"Checksum of {path} cancelled.")
            digest.update(block)
    return digest.hexdigest()


def download_file(
    url: str,
    destination: os.PathLike,
    *,
    expected_size: Optional[int] = None,
    sha256: Optional[str] = None,
    progress: Optional[ProgressCallback] = None,
    cancel: Optional[CancelCallable] = None,
    timeout_s: float = 30.0,
) -> Path:
    """Stream ``url`` to ``destination`` via ``destination.part``, resuming a partial file.

    A ``.part`` file left by an earlier attempt is continued with ``Range: bytes=<size>-``; a server
    that answers 200 instead of 206 restarts the file. The result is checked against
    ``expected_size`` and ``sha256`` (when given) before the atomic rename; a mismatch deletes the
    partial file.

    Returns
    -------
    pathlib.Path
        ``destination``.

    Raises
    ------
    CheckpointDownloadError
        Network or HTTP failure (the partial file is kept).
    DownloadCancelledError
        ``cancel()`` returned True (the partial file is kept for resuming).
    ChecksumMismatchError
        Size or SHA-256 differ from the expected values (the partial file is deleted).
    """
    destination = Path(destination)
    part = destination.with_name(destination.name + ".part")
    done = part.stat().st_size if part.exists() else 0
    if expected_size is not None and done > expected_size:
        part.unlink()
        done = 0
    digest = hashlib.sha256()
    if done:
        with open(part, "rb") as stream:
            for block in iter(lambda: stream.read(CHUNK_BYTES), b""):
                digest.update(block)
    if expected_size is None or done < expected_size:
        done, digest = _stream(url, part, done, digest, expected_size, progress, cancel,
                               timeout_s, destination)
    if expected_size is not None and done != expected_size:
        part.unlink()
        raise ChecksumMismatchError(f"Downloaded {done} bytes of {destination.name}, expected "
                                    f"{expected_size}; the partial file was deleted, try again.")
    if sha256 is not None and digest.hexdigest() != sha256.lower():
        part.unlink()
        raise ChecksumMismatchError(
            f"{destination.name} from {url} has SHA-256 {digest.hexdigest()}, expected {sha256}; "
            f"the download was deleted. Try again, or download it by hand into {destination.parent}."
        )
    os.replace(part, destination)
    return destination


def _stream(url, part, done, digest, expected_size, progress, cancel, timeout_s, destination):
    """Append the remainder of ``url`` to ``part``; return (bytes in ``part``, its digest)."""
    request = urllib.request.Request(url, headers={"User-Agent": APP_FOLDER_NAME})
    if done:
        request.add_header("Range", f"bytes={done}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout_s)
    except urllib.error.HTTPError as error:
        if error.code == 416 and done:
            return done, digest  # the partial file holds everything; the size check decides
        raise _download_error(url, destination, f"HTTP {error.code} {error.reason}") from error
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise _download_error(url, destination, str(reason)) from error
    with response:
        status = getattr(response, "status", None)
        if done and status != 206:
            # The server (or a file:// URL) ignored the range: start again from byte 0.
            done = 0
            digest = hashlib.sha256()
        total = expected_size
        length = response.headers.get("Content-Length")
        if total is None and length is not None:
            total = done + int(length)
        mode = "ab" if done else "wb"
        with open(part, mode) as stream:
            while True:
                if cancel is not None and cancel():
                    raise DownloadCancelledError(
                        f"Download of {destination.name} cancelled after {done} bytes; "
                        f"starting it again resumes from there."
                    )
                try:
                    block = response.read(CHUNK_BYTES)
                except OSError as error:
                    raise _download_error(url, destination, str(error)) from error
                if not block:
                    break
                stream.write(block)
                digest.update(block)
                done += len(block)
                if progress is not None:
                    progress(done, total)
    return done, digest


def _download_error(url: str, destination: Path, reason: str) -> CheckpointDownloadError:
    return CheckpointDownloadError(
        f"Could not download {destination.name} from {url} ({reason}). If this computer is "
        f"offline, download the file elsewhere and put it in {destination.parent}."
    )

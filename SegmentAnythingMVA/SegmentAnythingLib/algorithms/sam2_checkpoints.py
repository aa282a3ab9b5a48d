"""SAM 2 checkpoints: the table of released files, and the local file of a model (downloaded on first use).

Downloads reuse :func:`sam_checkpoints.download_file` (``.part`` file, progress, cancel, resume with HTTP
``Range``). No SHA-256 or byte count of these files is published by their authors (facebookresearch/sam2's
``checkpoints/download_ckpts.sh`` and bowang-lab/MedSAM2's ``download.sh`` give only the URLs), so none is
pinned here; instead every file is checked structurally: it must be a complete PyTorch zip archive (a
truncated download is not), and :func:`sam2_models.build_sam2_model` checks its weights against the model.
"""
from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Optional

from .sam_checkpoints import (
    CACHE_ENV_VAR, CancelCallable, CheckpointInfo, ProgressCallback, checkpoint_folder, download_file)
from .sam_errors import CheckpointMissingError, ChecksumMismatchError, UnknownModelError

_SAM21_URL = "https://dl.fbaipublicfiles.com/segment_anything_2/092824/"
_MEDSAM2_URL = "https://huggingface.co/wanglab/MedSAM2/resolve/main/"

SAM2_CHECKPOINTS = {
    "sam2.1_tiny": CheckpointInfo("sam2.1_tiny", "sam2.1_tiny", "sam2.1_hiera_tiny.pt",
                                  _SAM21_URL + "sam2.1_hiera_tiny.pt", None, None,
                                  "SAM 2.1 Hiera-tiny (about 150 MB)"),
    "sam2.1_small": CheckpointInfo("sam2.1_small", "sam2.1_small", "sam2.1_hiera_small.pt",
                                   _SAM21_URL + "sam2.1_hiera_small.pt", None, None,
                                   "SAM 2.1 Hiera-small (about 180 MB)"),
    "sam2.1_base_plus": CheckpointInfo("sam2.1_base_plus", "sam2.1_base_plus", "sam2.1_hiera_base_plus.pt",
                                       _SAM21_URL + "sam2.1_hiera_base_plus.pt", None, None,
                                       "SAM 2.1 Hiera-base+ (about 310 MB)"),
    "sam2.1_large": CheckpointInfo("sam2.1_large", "sam2.1_large", "sam2.1_hiera_large.pt",
                                   _SAM21_URL + "sam2.1_hiera_large.pt", None, None,
                                   "SAM 2.1 Hiera-large (about 860 MB)"),
    "medsam2": CheckpointInfo("medsam2", "medsam2", "MedSAM2_latest.pt", _MEDSAM2_URL + "MedSAM2_latest.pt",
                              None, None, "MedSAM2 (SAM 2.1 Hiera-tiny fine-tuned on medical images, 512 px)"),
}


def sam2_checkpoint_info(name: str) -> CheckpointInfo:
    """The table entry of ``name``.

    Raises
    ------
    UnknownModelError
    """
    try:
        return SAM2_CHECKPOINTS[name]
    except KeyError:
        raise UnknownModelError(
            f"Unknown SAM 2 model '{name}'; choose one of {', '.join(SAM2_CHECKPOINTS)}.") from None


def ensure_sam2_checkpoint(name: str, *, path: Optional[os.PathLike] = None,
                           cache_folder: Optional[os.PathLike] = None, url: Optional[str] = None,
                           allow_download: bool = True, progress: Optional[ProgressCallback] = None,
                           cancel: Optional[CancelCallable] = None) -> Path:
    """The local checkpoint file of SAM 2 model ``name``, downloaded into the cache folder on first use.

    Parameters
    ----------
    name : str
        Key of :data:`SAM2_CHECKPOINTS`.
    path : path-like, optional
        A file the user chose instead.
    cache_folder : path-like, optional
        Files go to ``<cache_folder>/checkpoints`` (default: the extension's per-user cache).
    url : str, optional
        Overrides the table URL (a mirror, or a local server / ``file://`` in tests).
    allow_download : bool
        False: never touch the network.
    progress : callable(done_bytes, total_bytes or None), optional
    cancel : callable() -> bool, optional

    Raises
    ------
    UnknownModelError, CheckpointMissingError, CheckpointDownloadError, DownloadCancelledError
    ChecksumMismatchError
        The file is not a complete PyTorch archive (a downloaded one is deleted so that it is fetched again).
    """
    info = sam2_checkpoint_info(name)
    if path is not None:
        target = Path(path).expanduser()
        if not target.is_file():
            raise CheckpointMissingError(f"Checkpoint file '{target}' does not exist; choose the {info.file_name} "
                                         f"file of {info.description}.")
        check_archive(target)
        return target
    folder = checkpoint_folder(Path(cache_folder) if cache_folder else None)
    target = folder / info.file_name
    if not target.is_file():
        source = url or info.url
        if not allow_download:
            raise CheckpointMissingError(
                f"Checkpoint {info.file_name} is not in {folder}; download it from {source} and put it in that "
                f"folder (or set ${CACHE_ENV_VAR} to a folder that has a 'checkpoints' subfolder with it).")
        folder.mkdir(parents=True, exist_ok=True)
        download_file(source, target, progress=progress, cancel=cancel)
        try:
            check_archive(target)
        except ChecksumMismatchError:
            target.unlink()
            raise
        return target
    check_archive(target)
    return target


def check_archive(path: Path) -> None:
    """``path`` is a complete PyTorch checkpoint archive (its zip directory and pickle are there).

    Raises
    ------
    ChecksumMismatchError
    """
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError) as error:
        raise ChecksumMismatchError(
            f"{path} is not a complete PyTorch checkpoint ({error}); it was probably cut off while downloading: "
            f"delete it and download it again.") from None
    if not any(name.endswith("data.pkl") for name in names):
        raise ChecksumMismatchError(f"{path} is a zip file but not a PyTorch checkpoint; choose the .pt file.")

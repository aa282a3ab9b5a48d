"""Cases: volume files in a folder, the default MNI T1, and where a case's segmentation is saved."""
import os

VOLUME_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")
FALLBACK_OUTPUT = "mva-output"


class CaseNotFoundError(ValueError):
    """A case path that does not exist or cannot be read as a volume."""


def default_case():
    """The MNI152 T1 template shipped in nilearn's wheel."""
    from MVAEvaluationLib.datasets import mni_path
    return mni_path("t1")


def _is_volume(name):
    lower = name.lower()
    return lower.endswith(VOLUME_SUFFIXES) and not lower.endswith(".seg.nrrd")


def cases_in(folder):
    """Volume files directly inside `folder`, sorted by name (segmentations excluded)."""
    if not os.path.isdir(folder):
        raise CaseNotFoundError(f"No such cases folder: {folder}")
    paths = [os.path.join(folder, name) for name in sorted(os.listdir(folder)) if _is_volume(name)]
    if not paths:
        raise CaseNotFoundError(f"No volume files ({', '.join(VOLUME_SUFFIXES)}) in {folder}")
    return paths


def case_stem(path):
    name = os.path.basename(os.fspath(path))
    for suffix in VOLUME_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[:-len(suffix)]
    return name.split(".")[0]


def segmentation_path_for(case_path, for_writing=False):
    """`<case>.seg.nrrd` beside the case; when writing and that folder is read-only, ./mva-output/ instead."""
    if not case_path:
        raise CaseNotFoundError("Open a case first")
    folder = os.path.dirname(os.path.abspath(case_path))
    name = case_stem(case_path) + ".seg.nrrd"
    if for_writing and not os.access(folder, os.W_OK):
        os.makedirs(FALLBACK_OUTPUT, exist_ok=True)
        return os.path.abspath(os.path.join(FALLBACK_OUTPUT, name))
    return os.path.join(folder, name)


def case_items(paths):
    """Items of the case selector: {'title': file name, 'path': absolute path}."""
    return [{"title": os.path.basename(p), "path": os.path.abspath(p)} for p in paths]

"""Offline evaluation data: the MNI ICBM152 2009a template shipped in nilearn's wheel."""
import os
from dataclasses import dataclass

import numpy as np

from MVABridgeLib.volume_io import read_volume

MNI_FILES = {
    "t1": "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz",
    "gm": "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz",
    "wm": "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz",
}
MNI_STRUCTURES = ("wm", "gm", "brain")


@dataclass
class LabelledVolume:
    """An image with one binary truth mask on the same grid (arrays in (k, j, i) order)."""
    name: str
    image: np.ndarray
    truth: np.ndarray
    ijk_to_ras: np.ndarray


def mni_data_folder():
    import nilearn.datasets
    folder = os.path.join(os.path.dirname(nilearn.datasets.__file__), "data")
    if not os.path.exists(os.path.join(folder, MNI_FILES["t1"])):
        raise FileNotFoundError(f"The MNI template is missing from nilearn's data folder {folder}")
    return folder


def mni_path(kind="t1"):
    return os.path.join(mni_data_folder(), MNI_FILES[kind])


def load_mni(structure="wm"):
    """MNI T1 (uint8) with the truth of `structure`: 'wm', 'gm' (probability map > 127) or 'brain'.

    The brain mask is nilearn's definition (load_mni152_brain_mask): T1 above 0.2 of its maximum.
    """
    if structure not in MNI_STRUCTURES:
        raise ValueError(f"Unknown MNI structure {structure!r}; choose one of {MNI_STRUCTURES}")
    image, ijk_to_ras = read_volume(mni_path("t1"))
    if structure == "brain":
        truth = image > 0.2 * float(image.max())
    else:
        truth = read_volume(mni_path(structure))[0] > 127
    return LabelledVolume(f"mni_{structure}", image, truth.astype(np.uint8), ijk_to_ras)


def standard_cases():
    """The report's suite: MNI white matter, grey matter and brain mask; the CT phantom's four structures.

    Yields (case name, image, labelmap, ijk_to_ras, {structure: label}).
    """
    from MVAEvaluationLib.phantom import make_ct_phantom
    # one labelmap per structure: the brain contains white and grey matter, so they cannot share one labelmap
    for structure in MNI_STRUCTURES:
        data = load_mni(structure)
        yield f"mni_{structure}", data.image, data.truth.astype(np.uint8), data.ijk_to_ras, {structure: 1}
    phantom = make_ct_phantom(shape_kji=(64, 160, 160), seed=0)
    yield "ct_phantom", phantom.image, phantom.labelmap, phantom.ijk_to_ras, dict(phantom.labels)


def export_standard_cases(folder):
    """Write the standard suite as NIfTI files (`<case>_image.nii.gz`, `<case>_labels.nii.gz`) for `mva eval`."""
    from MVABridgeLib.volume_io import write_volume
    os.makedirs(folder, exist_ok=True)
    written = []
    for name, image, labelmap, ijk_to_ras, labels in standard_cases():
        image_path = os.path.join(folder, f"{name}_image.nii.gz")
        label_path = os.path.join(folder, f"{name}_labels.nii.gz")
        if not os.path.exists(image_path):
            write_volume(image_path, image, ijk_to_ras)
        if not os.path.exists(label_path):
            write_volume(label_path, labelmap, ijk_to_ras)
        written.append((name, image_path, label_path, labels))
    return written

"""Cases of `mva report` as files: crops that keep every voxel at its RAS position, axial slabs, NIfTI export."""
import os

import numpy as np

from MVAEvaluationLib.variants import Labelled

# Central block of the MNI template (k, j, i): most of the brain, 40 % fewer voxels (crops are allowed).
MNI_CROP = (slice(30, 150), slice(30, 200), slice(20, 170))


def crop(data, box):
    """A Labelled crop (a tuple of slices in (k, j, i)) whose IJK->RAS keeps every voxel at its RAS position."""
    box = tuple(slice(*b.indices(n)[:2]) for b, n in zip(box, data.image.shape))
    matrix = np.array(data.ijk_to_ras, float)
    start_ijk = np.array([b.start for b in box][::-1], float)
    matrix[:3, 3] += matrix[:3, :3] @ start_ijk
    return Labelled(data.name, np.ascontiguousarray(data.image[box]), np.ascontiguousarray(data.labelmap[box]),
                    matrix, dict(data.structures), data.modality)


def axial_array_axis(ijk_to_ras):
    """The array axis (0 = k, 1 = j, 2 = i) closest to the axial view's normal."""
    from MVABridgeLib.plane_axes import nearest_volume_axis, slice_to_ras_for
    axis_ijk, _, _ = nearest_volume_axis(slice_to_ras_for("axial")[:3, 2], np.asarray(ijk_to_ras, float))
    return 2 - axis_ijk


def axial_slab(data, label, half_slices):
    """`data` cut to `half_slices` slices each side of the largest axial slice of `label`.

    Returns
    -------
    slab : Labelled
    largest : int
        Index of that largest slice in the slab.
    """
    axis = axial_array_axis(data.ijk_to_ras)
    areas = (data.labelmap == label).sum(axis=tuple(a for a in range(3) if a != axis))
    largest = int(np.argmax(areas))
    low, high = max(largest - half_slices, 0), min(largest + half_slices + 1, data.image.shape[axis])
    box = [slice(None)] * 3
    box[axis] = slice(low, high)
    return crop(data, tuple(box)), largest - low


def write_case(folder, data):
    """Write `data` as `<name>_image.nii.gz` and `<name>_labels.nii.gz` in `folder`; returns both paths."""
    from MVABridgeLib.volume_io import write_volume
    image_path = os.path.join(folder, f"{data.name}_image.nii.gz")
    labels_path = os.path.join(folder, f"{data.name}_labels.nii.gz")
    write_volume(image_path, data.image, data.ijk_to_ras)
    write_volume(labels_path, data.labelmap, data.ijk_to_ras)
    return image_path, labels_path

"""Held-out variants of the standard cases: how scans differ from each other, with parameters unlike the report's
variants (`variants.FAMILIES`). Never used to choose a parameter: they only check that a tool does not depend on
what it should not (arrays in (k, j, i) order, image / labelmap / IJK->RAS kept consistent).

- intensity storage: CT stored unsigned with +1024, CT as float, CT exported through a soft-tissue window as uint8,
  MRI in [0, 1] or x4 with an offset;
- voxel grid: other voxel sizes (the same voxels called 0.4x or 2x their size; resampled to 3 mm in-plane), thick
  slices along another axis, axis order and direction (LPS vs RAS, the array transposed);
- acquisition: a bias field that only darkens, noise of other seeds and levels, a neighbour of similar intensity
  on another side, a smaller and a larger volume; another CT phantom "patient" (`other_scan`).
"""
import numpy as np
from scipy import ndimage

from MVAEvaluationLib.variants import (Labelled, VariantError, _is_mri, bias_field, gaussian_noise, rician_noise,
                                       thick_slices, touching_neighbour)


def modality(data):
    """"ct" or "mri": the case's own (`Labelled.modality`) when it says, else from its values."""
    return "mri" if _is_mri(data) else "ct"


def rescaled(data, scale=1.0, offset=0.0, dtype=None, name=None):
    """`image * scale + offset` stored as `dtype` (default: the image's own): a scan's storage convention."""
    dtype = np.dtype(dtype or data.image.dtype)
    image = np.asarray(data.image, np.float64) * float(scale) + float(offset)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        if image.min() < info.min or image.max() > info.max:
            raise VariantError(f"x{scale} {offset:+} does not fit in {dtype.name}")
        image = np.round(image)
    return _copy(data, name or f"x{scale:g}{offset:+g}{dtype.name}", image.astype(dtype))


def windowed(data, low, high):
    """The image clipped to the window [low, high] and stored as uint8 0..255, as a CT exported through a display
    window (slices saved as pictures, some public data sets)."""
    if not high > low:
        raise VariantError(f"The window must be (low, high) with low < high, got ({low}, {high})")
    image = (np.clip(np.asarray(data.image, np.float32), low, high) - low) * (255.0 / (high - low))
    return _copy(data, f"window{low:g}to{high:g}", np.round(image).astype(np.uint8))


def relabelled_spacing(data, factor):
    """The same voxels with every voxel size multiplied by `factor` (a smaller or larger subject; RAS scaled
    about the volume's first voxel)."""
    if not factor > 0:
        raise VariantError(f"The spacing factor must be positive, got {factor}")
    matrix = np.array(data.ijk_to_ras, float)
    matrix[:3, :3] *= float(factor)
    return _copy(data, f"spacing{factor:g}", data.image, ijk_to_ras=matrix)


def resampled(data, spacing_kji):
    """Resampled onto a grid of voxel size `spacing_kji` (mm) covering the same box: image linear, labels nearest."""
    old = np.linalg.norm(np.asarray(data.ijk_to_ras, float)[:3, :3], axis=0)[::-1]
    step = np.asarray(spacing_kji, float) / old  # old voxels per new voxel, (k, j, i)
    shape = np.maximum(np.floor((np.array(data.image.shape) - 1) / step).astype(int) + 1, 1)
    grid = np.meshgrid(*[np.arange(n) * s for n, s in zip(shape, step)], indexing="ij")
    image = ndimage.map_coordinates(np.asarray(data.image, np.float32), grid, order=1, mode="nearest")
    labels = ndimage.map_coordinates(data.labelmap, grid, order=0, mode="nearest")
    matrix = np.array(data.ijk_to_ras, float)
    matrix[:3, :3] = matrix[:3, :3] * step[::-1]
    name = "res" + "x".join(f"{s:g}" for s in spacing_kji)
    return Labelled(f"{data.name}_{name}", _cast(image, data.image.dtype), labels.astype(np.uint8), matrix,
                    dict(data.structures), data.modality)


def reoriented(data, axes=(0, 1, 2), flips=(False, False, False)):
    """The array with its axes permuted (`np.transpose(image, axes)`) then flipped where `flips` says, and
    IJK->RAS changed so that every voxel keeps its RAS position (another storage order of the same scan)."""
    if sorted(axes) != [0, 1, 2]:
        raise VariantError(f"Axes must be a permutation of (0, 1, 2), got {axes}")
    image = np.transpose(data.image, axes)
    labelmap = np.transpose(data.labelmap, axes)
    # old index (k, j, i) = permutation @ new index + offset
    permutation = np.zeros((3, 3))
    offset = np.zeros(3)
    for new_axis, old_axis in enumerate(axes):
        if flips[new_axis]:
            permutation[old_axis, new_axis] = -1
            offset[old_axis] = image.shape[new_axis] - 1
        else:
            permutation[old_axis, new_axis] = 1
    flip_axes = tuple(a for a in range(3) if flips[a])
    if flip_axes:
        image, labelmap = np.flip(image, flip_axes), np.flip(labelmap, flip_axes)
    kji = np.eye(4)
    kji[:3, :3], kji[:3, 3] = permutation, offset
    swap = np.eye(4)[[2, 1, 0, 3]]  # (i, j, k) <-> (k, j, i)
    matrix = np.asarray(data.ijk_to_ras, float) @ swap @ kji @ swap
    name = "axes" + "".join(map(str, axes)) + ("flip" + "".join(map(str, flip_axes)) if flip_axes else "")
    return Labelled(f"{data.name}_{name}", np.ascontiguousarray(image), np.ascontiguousarray(labelmap), matrix,
                    dict(data.structures), data.modality)


def darkening_bias(data, strength=0.25, seed=21):
    """A smooth field that only darkens (between 1 - strength and 1): a coil far from the structure."""
    # bias_field's field lies in [1 - s/2, 1 + s/2] around its mean; scaled down by its maximum it lies in [1 - s, 1]
    field = bias_field(_copy(data, "", np.ones(data.image.shape, np.float32)), strength / 2.0, seed=seed).image
    image = np.asarray(data.image, np.float32) * field / float(field.max())
    return _copy(data, f"darkbias{int(round(strength * 100))}", _cast(image, data.image.dtype))


def noisier(data, level, seed):
    """More noise than the standard case, another seed: Rician on MRI (level x the 99.5th percentile), Gaussian of
    `level` x 1000 HU on CT."""
    if modality(data) == "mri":
        return rician_noise(data, level, seed=seed)
    return gaussian_noise(data, level * 1000.0, seed=seed)


def resized(data, factor):
    """A crop to `factor` of each side about the structure's centre (factor < 1), or the volume padded with its
    minimum to `factor` of each side (factor > 1), RAS positions kept."""
    shape = np.array(data.image.shape)
    target = np.maximum((shape * float(factor)).astype(int), 8)
    matrix = np.array(data.ijk_to_ras, float)
    if factor < 1:
        where = np.argwhere(data.labelmap > 0)
        centre = (where.min(0) + where.max(0)) // 2 if len(where) else shape // 2
        start = np.clip(centre - target // 2, 0, shape - target)
        box = tuple(slice(int(a), int(a + n)) for a, n in zip(start, target))
        image, labelmap = data.image[box], data.labelmap[box]
    else:
        before = (target - shape) // 2
        pads = [(int(b), int(t - s - b)) for b, t, s in zip(before, target, shape)]
        image = np.pad(data.image, pads, constant_values=np.min(data.image))
        labelmap = np.pad(data.labelmap, pads)
        start = -before
    matrix[:3, 3] += matrix[:3, :3] @ np.asarray(start, float)[::-1]
    return Labelled(f"{data.name}_size{factor:g}", np.ascontiguousarray(image), np.ascontiguousarray(labelmap),
                    matrix, dict(data.structures), data.modality)


# name -> (applies to "ct", "mri" or "any", maker(data, structure label)). Parameters differ from variants.FAMILIES.
HELDOUT = {
    "ct_unsigned": ("ct", lambda d, s: rescaled(d, 1.0, 1024.0, np.uint16, "uint16plus1024")),
    "ct_float": ("ct", lambda d, s: rescaled(d, 1.0, 0.0, np.float32, "float")),
    "ct_windowed": ("ct", lambda d, s: windowed(d, -160.0, 240.0)),
    "mri_unit": ("mri", lambda d, s: rescaled(d, 1.0 / float(np.max(d.image)), 0.0, np.float32, "unit")),
    "mri_scaled": ("mri", lambda d, s: rescaled(d, 4.0, 100.0, np.int16, "x4plus100")),
    "small_voxels": ("any", lambda d, s: relabelled_spacing(d, 0.4)),
    "large_voxels": ("any", lambda d, s: relabelled_spacing(d, 2.0)),
    "coarse_inplane": ("any", lambda d, s: resampled(d, (_spacing(d)[0], 3.0, 3.0))),
    "thick_sagittal": ("any", lambda d, s: _renamed(thick_slices(d, 3, axis=2), f"{d.name}_thick3i")),
    # other storage orders that keep the order of the axial slices (the annotator's first slice is the first of
    # equal largest ones, so reversing the slices would change where a session starts, not only the storage)
    "transposed": ("any", lambda d, s: reoriented(d, (2, 0, 1), (True, False, False))),
    "other_handedness": ("any", lambda d, s: reoriented(d, (0, 1, 2), (False, True, True))),  # LPS <-> RAS
    "dark_bias": ("mri", lambda d, s: darkening_bias(d, 0.25, seed=21)),
    "noisier": ("any", lambda d, s: noisier(d, 0.1, seed=22)),
    "neighbour_other_side": ("any", lambda d, s: touching_neighbour(d, s, 0.05, radius_fraction=0.3, seed=23)),
    "smaller": ("any", lambda d, s: resized(d, 0.7)),
    "larger": ("any", lambda d, s: resized(d, 1.3)),
}


def make_heldout(data, structure_label, names=tuple(HELDOUT)):
    """(name, Labelled) for every held-out variant of `names` that applies to `data`'s modality and keeps the
    structure; the variant's name ends with the structure's label."""
    unknown = [n for n in names if n not in HELDOUT]
    if unknown:
        raise VariantError(f"Unknown held-out variants {unknown}; choose from {sorted(HELDOUT)}")
    kind = modality(data)
    out = []
    for name in names:
        applies, make = HELDOUT[name]
        if applies not in ("any", kind):
            continue
        variant = make(data, structure_label)
        if (variant.labelmap == structure_label).any():
            variant.modality = kind
            out.append((name, variant))
    return out


# Another CT "patient" scanned differently: other organ jitter and noise seed, 3 mm slices, 0.7 mm pixels, more noise.
OTHER_CT = dict(shape_kji=(56, 176, 176), spacing_kji=(3.0, 0.7, 0.7), seed=7, noise_hu=25.0)


def other_scan():
    """The CT phantom made with `OTHER_CT` instead of the 3D suite's parameters, as a Labelled."""
    from MVAEvaluationLib.phantom import make_ct_phantom
    phantom = make_ct_phantom(**OTHER_CT)
    return Labelled("ct_phantom_other", phantom.image, phantom.labelmap, phantom.ijk_to_ras, dict(phantom.labels), "ct")


def heldout_cases(standard=True):
    """The 3D suite's base cases (`report_3d.base_cases`: MNI white matter, CT liver and effusion) and their held-out
    variants, then the same CT structures on `other_scan()`: (variant name or "standard", Labelled named after case
    and structure, structure, label)."""
    import dataclasses
    from MVAEvaluationLib.report_3d import base_cases
    for data, structure, label in base_cases():
        variants = ([("standard", dataclasses.replace(data))] if standard else []) + make_heldout(data, label)
        for name, variant in variants:
            variant.name = f"{variant.name}_{structure}"
            yield name, variant, structure, label
    other = other_scan()
    for structure in ("liver", "effusion"):
        yield "other_scan", dataclasses.replace(other, name=f"{other.name}_{structure}"), structure, \
            other.structures[structure]


def export_heldout_cases(folder, standard=True):
    """Write every held-out case as NIfTI (`report_cases.write_case`) for `mva eval annotate3d`; returns
    (variant, case name, image path, labels path, structure, label) rows."""
    import os
    from MVAEvaluationLib.report_cases import write_case
    os.makedirs(folder, exist_ok=True)
    return [(name, data.name, *write_case(folder, data), structure, label)
            for name, data, structure, label in heldout_cases(standard)]


def _renamed(data, name):
    data.name = name
    return data


def _spacing(data):
    return np.linalg.norm(np.asarray(data.ijk_to_ras, float)[:3, :3], axis=0)[::-1]


def _cast(image, dtype):
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return np.clip(np.round(image), info.min, info.max).astype(dtype)
    return np.asarray(image).astype(dtype)


def _copy(data, suffix, image, ijk_to_ras=None):
    return Labelled(f"{data.name}_{suffix}", image, data.labelmap,
                    data.ijk_to_ras if ijk_to_ras is None else ijk_to_ras, dict(data.structures), data.modality)

"""Robustness variants of the standard cases, built in code (numpy / scipy only; arrays in (k, j, i) order).

Real scans are not the template: smooth MRI bias fields, Rician noise, thick and oblique slices, partial volume,
other CT windows and contrasts, neighbours of similar intensity. Each family below makes such a copy of a
labelled volume (image, labelmap and IJK->RAS stay consistent). The split into families used to choose
parameters (`TUNING_FAMILIES`) and families only reported (`REPORTED_FAMILIES`) is fixed here, so a number
measured on a reported family was never used to pick anything.
"""
from dataclasses import dataclass

import numpy as np
from scipy import ndimage


class VariantError(ValueError):
    """A variant parameter is out of range or the family is unknown."""


@dataclass
class Labelled:
    """A volume with its labelmap on the same grid."""
    name: str
    image: np.ndarray
    labelmap: np.ndarray
    ijk_to_ras: np.ndarray
    structures: dict
    modality: str = None  # "ct" or "mri" when the case's maker knows it; else guessed from the values (`_is_mri`)


def _robust_max(image):
    return float(np.percentile(image[::4, ::4, ::4], 99.5))


def bias_field(data, strength=0.2, seed=0):
    """Multiply by a smooth field between 1 - strength and 1 + strength (a random low-order polynomial)."""
    if not 0 <= strength < 1:
        raise VariantError(f"Bias strength must lie in [0, 1), got {strength}")
    rng = np.random.default_rng(seed)
    axes = [np.linspace(-1, 1, n, dtype=np.float32) for n in data.image.shape]
    k, j, i = np.meshgrid(*axes, indexing="ij", sparse=True)
    terms = [k, j, i, k * j, j * i, k * i, k * k, j * j, i * i]
    field = sum(float(c) * t for c, t in zip(rng.normal(size=len(terms)), terms))
    field = field - field.mean()
    field = 1.0 + strength * field / max(float(np.abs(field).max()), 1e-6)
    image = np.asarray(data.image, np.float32) * field
    return _replace(data, f"bias{int(round(strength * 100))}", _as_dtype(image, data.image.dtype))


def rician_noise(data, level=0.05, seed=0):
    """Magnitude of the image plus complex Gaussian noise of std `level` x the 99.5th percentile (MRI)."""
    if level < 0:
        raise VariantError(f"Noise level must be >= 0, got {level}")
    rng = np.random.default_rng(seed)
    sigma = level * _robust_max(data.image)
    real = np.asarray(data.image, np.float32) + rng.normal(0, sigma, data.image.shape).astype(np.float32)
    imaginary = rng.normal(0, sigma, data.image.shape).astype(np.float32)
    image = np.sqrt(real * real + imaginary * imaginary)
    return _replace(data, f"rician{int(round(level * 100))}", _as_dtype(image, data.image.dtype))


def gaussian_noise(data, sigma, seed=0):
    """Additive Gaussian noise of std `sigma` in image units (CT)."""
    rng = np.random.default_rng(seed)
    image = np.asarray(data.image, np.float32) + rng.normal(0, sigma, data.image.shape).astype(np.float32)
    return _replace(data, f"noise{int(round(sigma))}", _as_dtype(image, data.image.dtype))


def thick_slices(data, factor=3, axis=0):
    """Average `factor` slices along `axis` into one (partial volume across thick slices); labels by majority."""
    if int(factor) < 2:
        raise VariantError(f"The slab factor must be at least 2, got {factor}")
    factor = int(factor)
    n = (data.image.shape[axis] // factor) * factor
    image = np.take(np.asarray(data.image, np.float32), np.arange(n), axis=axis)
    shape = list(image.shape)
    shape[axis:axis + 1] = [n // factor, factor]
    image = image.reshape(shape).mean(axis=axis + 1)
    labels = np.take(data.labelmap, np.arange(n), axis=axis).reshape(shape)
    labels = np.moveaxis(labels, axis + 1, 0)
    counts = np.stack([(labels == value).sum(0) for value in range(int(data.labelmap.max()) + 1)])
    labelmap = np.argmax(counts, axis=0).astype(np.uint8)
    ijk_to_ras = np.array(data.ijk_to_ras, float)
    column = 2 - axis
    ijk_to_ras[:3, 3] += ijk_to_ras[:3, column] * (factor - 1) / 2.0
    ijk_to_ras[:3, column] *= factor
    return Labelled(f"{data.name}_thick{factor}", _as_dtype(image, data.image.dtype), labelmap, ijk_to_ras,
                    dict(data.structures), data.modality)


def oblique(data, degrees=20.0, about_axis=1):
    """Resample onto a grid rotated by `degrees` about array axis `about_axis` (same spacing, same RAS position).

    The image is interpolated linearly, the labelmap by nearest neighbour; voxels that come from outside the
    original volume take the image's minimum and label 0.
    """
    angle = np.deg2rad(float(degrees))
    a, b = [axis for axis in range(3) if axis != about_axis]
    rotation = np.eye(3)
    rotation[a, a], rotation[a, b], rotation[b, a], rotation[b, b] = (np.cos(angle), -np.sin(angle),
                                                                     np.sin(angle), np.cos(angle))
    spacing = np.linalg.norm(np.asarray(data.ijk_to_ras)[:3, :3], axis=0)[::-1]
    centre = (np.array(data.image.shape, float) - 1) / 2
    # new index -> old index, in mm so that anisotropic voxels rotate as physical space does
    matrix = np.diag(1 / spacing) @ rotation @ np.diag(spacing)
    offset = centre - matrix @ centre
    fill = float(np.min(data.image))
    image = ndimage.affine_transform(np.asarray(data.image, np.float32), matrix, offset, order=1, cval=fill)
    labelmap = ndimage.affine_transform(data.labelmap, matrix, offset, order=0, cval=0)
    # RAS of new index n: old ijk_to_ras applied to the old index (matrix @ n + offset), in (i, j, k) order
    flip = np.eye(4)[[2, 1, 0, 3]]
    kji = np.eye(4)
    kji[:3, :3], kji[:3, 3] = matrix, offset
    ijk_to_ras = np.asarray(data.ijk_to_ras, float) @ flip @ kji @ flip
    return Labelled(f"{data.name}_oblique{int(round(degrees))}", _as_dtype(image, data.image.dtype),
                    labelmap.astype(np.uint8), ijk_to_ras, dict(data.structures), data.modality)


def partial_volume(data, sigma_voxels=1.0):
    """Blur the image (Gaussian, in voxels) as a coarser acquisition would; labels stay sharp."""
    image = ndimage.gaussian_filter(np.asarray(data.image, np.float32), float(sigma_voxels))
    return _replace(data, f"blur{int(round(sigma_voxels * 10))}", _as_dtype(image, data.image.dtype))


def contrast(data, gamma=1.0, scale=1.0, offset=0.0, name="contrast"):
    """A monotone change of contrast: ((x - min) / range) ** gamma rescaled, then x * scale + offset."""
    image = np.asarray(data.image, np.float32)
    low, high = float(image.min()), float(image.max())
    image = low + (high - low) * ((image - low) / max(high - low, 1e-6)) ** float(gamma)
    return _replace(data, name, image * float(scale) + float(offset), keep_dtype=False)


def ct_enhancement(data, label, delta_hu):
    """Contrast phase on CT: the structure `label` becomes `delta_hu` brighter (other tissue unchanged)."""
    image = np.asarray(data.image, np.float32).copy()
    inside = ndimage.gaussian_filter((data.labelmap == label).astype(np.float32), 0.7)
    image += float(delta_hu) * inside
    return _replace(data, f"enhanced{int(round(delta_hu))}", _as_dtype(image, data.image.dtype))


def touching_neighbour(data, label, contrast_fraction=0.1, radius_fraction=0.25, seed=0):
    """Add an unlabelled blob that touches structure `label` and has nearly its intensity.

    The blob (an ellipsoid of `radius_fraction` of the structure's extent) is centred just outside the
    structure's surface; its intensity is the structure's median plus `contrast_fraction` of the
    structure-to-surroundings contrast, with the same noise as the image.
    """
    rng = np.random.default_rng(seed)
    inside = data.labelmap == label
    if not inside.any():
        raise VariantError(f"Label {label} is absent: nothing to touch")
    where = np.argwhere(inside)
    extent = where.max(0) - where.min(0) + 1
    shell = ndimage.binary_dilation(inside, iterations=2) & ~inside & (data.labelmap == 0)
    candidates = np.argwhere(shell)
    if len(candidates) == 0:
        raise VariantError(f"Structure {label} has no unlabelled surroundings to put a neighbour in")
    centre = candidates[rng.integers(len(candidates))]
    grid = np.ogrid[tuple(slice(0, n) for n in data.image.shape)]
    radii = np.maximum(radius_fraction * extent / 2, 2)
    blob = sum(((g - c) / r) ** 2 for g, c, r in zip(grid, centre, radii)) <= 1.0
    blob &= ~inside & (data.labelmap == 0)
    image = np.asarray(data.image, np.float32)
    structure = float(np.median(image[inside]))
    around = float(np.median(image[shell]))
    value = structure + contrast_fraction * (around - structure)
    residual = image - ndimage.median_filter(image, 3)
    out = image.copy()
    out[blob] = value + residual[blob]
    return _replace(data, f"neighbour{int(round(contrast_fraction * 100))}", _as_dtype(out, data.image.dtype))


def _as_dtype(image, dtype):
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return np.clip(np.round(image), info.min, info.max).astype(dtype)
    return image.astype(dtype)


def _replace(data, suffix, image, keep_dtype=True):
    return Labelled(f"{data.name}_{suffix}", image if keep_dtype else image.astype(np.float32),
                    data.labelmap, data.ijk_to_ras, dict(data.structures), data.modality)


# Each family: (applies to "mri", "ct" or both, list of variant makers). Makers take (data, structure label).
FAMILIES = {
    "bias": ("mri", [lambda d, s: bias_field(d, 0.2, seed=1), lambda d, s: bias_field(d, 0.1, seed=2)]),
    "noise": ("any", [lambda d, s: rician_noise(d, 0.03, seed=3) if _is_mri(d) else gaussian_noise(d, 35, seed=3),
                      lambda d, s: rician_noise(d, 0.08, seed=4) if _is_mri(d) else gaussian_noise(d, 60, seed=4)]),
    "partial_volume": ("any", [lambda d, s: partial_volume(d, 1.0)]),
    "anisotropic": ("any", [lambda d, s: thick_slices(d, 3, axis=0)]),
    "oblique": ("any", [lambda d, s: oblique(d, 20.0, about_axis=1)]),
    "contrast": ("any", [lambda d, s: contrast(d, gamma=0.6, name="gamma60") if _is_mri(d)
                         else ct_enhancement(d, s, 50.0)]),
    "touching": ("any", [lambda d, s: touching_neighbour(d, s, 0.1, seed=5)]),
    "combined": ("mri", [lambda d, s: oblique(thick_slices(rician_noise(bias_field(d, 0.2, seed=6), 0.05, seed=7),
                                                           2, axis=0), 15.0, about_axis=2)]),
}
# Fixed split: parameters may be chosen on these families ...
TUNING_FAMILIES = ("bias", "noise", "partial_volume")
# ... and these are only reported.
REPORTED_FAMILIES = ("anisotropic", "oblique", "contrast", "touching", "combined")


def _is_mri(data):
    """The case's own modality when it has one; else CT is what has air (below -500) in its lowest 0.5 %. Not the
    dtype or the sign: CT is often stored unsigned with +1024 or as float."""
    if data.modality:
        return data.modality == "mri"
    return float(np.percentile(np.asarray(data.image)[::4, ::4, ::4], 0.5)) >= -500


def make_variants(data, structure_label, families=REPORTED_FAMILIES):
    """The variants of `data` in the given families (those that apply to its modality), as `Labelled`.

    Raises
    ------
    VariantError
        For an unknown family.
    """
    unknown = [f for f in families if f not in FAMILIES]
    if unknown:
        raise VariantError(f"Unknown variant families {unknown}; choose from {sorted(FAMILIES)}")
    out = []
    for family in families:
        modality, makers = FAMILIES[family]
        if modality == "mri" and not _is_mri(data):
            continue
        for make in makers:
            variant = make(data, structure_label)
            out.append((family, variant))
    return out

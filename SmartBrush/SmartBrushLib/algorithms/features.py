"""Multi-scale, spacing-aware pixel features for the Smart Brush, computed per slice or per box and cached.

Arrays are in (k, j, i) order (3D) or (j, i) order (2D); spacing is in mm in the same order.
Every feature is a function of the image smoothed with a Gaussian of a given physical size (sigma in mm), so
the same settings describe the same structures on isotropic and anisotropic volumes.
"""
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .ct_units import SOFT_TISSUE_HU, hounsfield_shift, percentile_range

from .errors import SmartBrushInputError

DEFAULT_SIGMAS_MM = (0.7, 1.6, 3.5)
EDGE_FEATURES = ("gradient", "laplacian", "hessian")


@dataclass(frozen=True)
class FeatureSettings:
    """Which features to compute, at which scales.

    The default set (intensity, Gaussian smoothing at 0.7/1.6/3.5 mm, Laplacian of Gaussian at 1.6 mm) measured
    best with the kernel-density classifier on MNI white matter; gradient magnitude and Hessian eigenvalues
    are available but made its decisions noisier.

    Parameters
    ----------
    sigmas_mm : tuple of float
        Gaussian smoothing scales in mm (one smoothed-intensity feature each).
    edge_sigmas_mm : tuple of float
        Scales in mm of the edge features.
    edge_features : tuple of str
        Any of "gradient" (magnitude), "laplacian" (of Gaussian), "hessian" (eigenvalues, 2 in 2D, 3 in 3D).
    raw_intensity : bool
        Also include the unsmoothed intensity.
    """
    sigmas_mm: tuple = DEFAULT_SIGMAS_MM
    edge_sigmas_mm: tuple = (1.6,)
    edge_features: tuple = ("laplacian",)
    raw_intensity: bool = True

    def __post_init__(self):
        scales = tuple(self.sigmas_mm) + tuple(self.edge_sigmas_mm)
        if len(self.sigmas_mm) == 0 or min(scales) <= 0:
            raise SmartBrushInputError(f"Feature scales must be positive mm values, got {scales}")
        unknown = set(self.edge_features) - set(EDGE_FEATURES)
        if unknown:
            raise SmartBrushInputError(f"Unknown edge features {sorted(unknown)}; choose from {EDGE_FEATURES}")

    def names(self, ndim):
        """Feature names in the order of the last axis of `compute_features`."""
        names = ["intensity"] if self.raw_intensity else []
        names += [f"gaussian_{sigma}" for sigma in self.sigmas_mm]
        for sigma in self.edge_sigmas_mm:
            for kind in EDGE_FEATURES:
                if kind in self.edge_features:
                    count = ndim if kind == "hessian" else 1
                    names += [f"{kind}{'' if count == 1 else n}_{sigma}" for n in range(count)]
        return names

    def count(self, ndim):
        return len(self.names(ndim))

    def margin_voxels(self, spacing):
        """Voxels of context each side of a region so that border features match whole-image features."""
        largest = max(tuple(self.sigmas_mm) + tuple(self.edge_sigmas_mm))
        return tuple(int(np.ceil(3.0 * largest / s)) + 2 for s in spacing)


def intensity_normalisation(image):
    """Offset and scale mapping the 0.5-99.5 percentile range of the finite voxels of `image` to 0..1.

    Computed once per volume so that features of different slices and boxes are comparable.
    """
    bounds = percentile_range(image)
    if bounds is None:
        return 0.0, 1.0
    low, high = bounds
    return low, high - low if high > low else 1.0


# CT soft-tissue window: HU values in [low, high] get `SOFT_TISSUE_HU_PER_UNIT` HU per normalised unit, the
# rest of the range keeps the whole-range scale. Soft-tissue contrasts of 20-30 HU (fluid 10, muscle 40,
# liver 60) are then ~0.15 units, comparable to the classifier bandwidth (0.12), instead of ~0.015 on the
# 0.5-99.5 percentile scale (~1700 HU), while air/lung/bone stay far apart and lung noise (~60 HU) stays small.
SOFT_TISSUE_WINDOW_HU = SOFT_TISSUE_HU
SOFT_TISSUE_HU_PER_UNIT = 150.0


@dataclass(frozen=True)
class IntensityMap:
    """Monotone piecewise-linear intensity mapping applied before every feature.

    ``(x - offset) / scale`` everywhere, and inside the optional window [window_low, window_high] a slope of
    ``1 / window_scale`` instead, so that a window of interest (CT soft tissue) gets more of the feature range.

    Parameters
    ----------
    offset, scale : float
        Linear mapping of the whole range (scale > 0).
    window : (float, float) or None
        Input values where the steeper slope applies.
    window_scale : float or None
        Input units per normalised unit inside the window (smaller than `scale` to expand the window).
    """
    offset: float = 0.0
    scale: float = 1.0
    window: tuple = None
    window_scale: float = None

    def __post_init__(self):
        if not self.scale > 0 or (self.window is not None and not (self.window_scale or 0) > 0):
            raise SmartBrushInputError(f"Intensity map scales must be positive, got {self}")
        if self.window is not None and not self.window[0] < self.window[1]:
            raise SmartBrushInputError(f"Intensity window {self.window} must be (low, high) with low < high")

    def apply(self, image):
        """float32 mapped copy of `image`."""
        image = np.asarray(image, np.float32)
        mapped = (image - np.float32(self.offset)) / np.float32(self.scale)
        if self.window is not None:
            low, high = (np.float32(v) for v in self.window)
            extra = np.float32(1.0 / self.window_scale - 1.0 / self.scale)
            mapped += (np.clip(image, low, high) - low) * extra
        return mapped


def intensity_map(image):
    """`IntensityMap` of a volume: the 0.5-99.5 percentile range to 0..1 and, for CT in Hounsfield units
    (air in the 0.5 percentile) or stored as HU + 1024 (`ct_units.hounsfield_shift`), the soft-tissue window
    expanded (see `SOFT_TISSUE_WINDOW_HU`)."""
    offset, scale = intensity_normalisation(image)
    shift = hounsfield_shift(image, offset, offset + scale)
    if shift is None or scale <= SOFT_TISSUE_HU_PER_UNIT:
        return IntensityMap(offset, scale)
    window = tuple(float(v + shift) for v in SOFT_TISSUE_WINDOW_HU)
    return IntensityMap(offset, scale, window, SOFT_TISSUE_HU_PER_UNIT)


def sanitize(image, fill_value=None):
    """Float32 copy of `image` with NaN/inf replaced by `fill_value` (default: median of the finite voxels).

    Returns
    -------
    clean : ndarray of float32, same shape
    bad_count : int
        How many voxels were replaced.
    """
    clean = np.array(image, dtype=np.float32, copy=True)
    bad = ~np.isfinite(clean)
    bad_count = int(bad.sum())
    if bad_count:
        if fill_value is None:
            finite = clean[~bad]
            fill_value = float(np.median(finite)) if finite.size else 0.0
        clean[bad] = fill_value
    return clean, bad_count


def _derivative(array, axis, step_mm):
    """Central first difference along `axis` in intensity per mm (one-sided at the borders)."""
    return np.gradient(array, step_mm, axis=axis)


def _symmetric_eigenvalues_2d(hxx, hxy, hyy):
    half_trace = 0.5 * (hxx + hyy)
    root = np.sqrt(0.25 * (hxx - hyy) ** 2 + hxy ** 2)
    return [half_trace + root, half_trace - root]


def _symmetric_eigenvalues_3d(a, b, c, d, e, f):
    """Closed-form eigenvalues (descending) of [[a, d, e], [d, b, f], [e, f, c]] for every voxel."""
    q = (a + b + c) / 3.0
    p1 = d * d + e * e + f * f
    p2 = (a - q) ** 2 + (b - q) ** 2 + (c - q) ** 2 + 2.0 * p1
    p = np.sqrt(p2 / 6.0)
    safe_p = np.where(p > 1e-12, p, 1.0)
    ba, bb, bc = (a - q) / safe_p, (b - q) / safe_p, (c - q) / safe_p
    bd, be, bf = d / safe_p, e / safe_p, f / safe_p
    det = ba * (bb * bc - bf * bf) - bd * (bd * bc - bf * be) + be * (bd * bf - bb * be)
    phi = np.arccos(np.clip(det / 2.0, -1.0, 1.0)) / 3.0
    first = q + 2.0 * p * np.cos(phi)
    third = q + 2.0 * p * np.cos(phi + 2.0 * np.pi / 3.0)
    second = 3.0 * q - first - third
    return [first, second, third]


def compute_features(image, spacing, settings=None, normalisation=(0.0, 1.0)):
    """Feature stack of a 2D or 3D image.

    Parameters
    ----------
    image : ndarray, 2D (j, i) or 3D (k, j, i), finite values (see `sanitize`)
    spacing : sequence of float
        Voxel size in mm, one value per axis, same order as the array.
    settings : FeatureSettings or None
    normalisation : IntensityMap or (offset, scale)
        Intensity mapping from `intensity_map` (or `intensity_normalisation`), computed once per volume.

    Returns
    -------
    ndarray of float32, shape image.shape + (settings.count(image.ndim),)

    Raises
    ------
    SmartBrushInputError
        If the image is not 2D or 3D, or spacing does not match it.
    """
    settings = settings or FeatureSettings()
    image = np.asarray(image)
    if image.ndim not in (2, 3):
        raise SmartBrushInputError(f"Features need a 2D or 3D image, got {image.ndim} dimensions")
    spacing = tuple(float(s) for s in spacing)
    if len(spacing) != image.ndim or min(spacing) <= 0:
        raise SmartBrushInputError(f"Spacing {spacing} must have {image.ndim} positive mm values")
    if not isinstance(normalisation, IntensityMap):
        normalisation = IntensityMap(*normalisation)
    base = normalisation.apply(image)
    out = np.empty(image.shape + (settings.count(image.ndim),), np.float32)
    column = 0
    if settings.raw_intensity:
        out[..., 0] = base
        column = 1
    sigma_voxels = [[sigma / s for s in spacing] for sigma in _all_sigmas(settings)]
    smoothed_by_sigma = {}
    for sigma_mm, sigma_vox in zip(_all_sigmas(settings), sigma_voxels):
        smoothed_by_sigma[sigma_mm] = ndimage.gaussian_filter(base, sigma_vox, mode="nearest", truncate=3.0)
    for sigma_mm in settings.sigmas_mm:
        out[..., column] = smoothed_by_sigma[sigma_mm]
        column += 1
    for sigma_mm in settings.edge_sigmas_mm:
        for value in _edge_features(smoothed_by_sigma[sigma_mm], spacing, sigma_mm, settings.edge_features):
            out[..., column] = value
            column += 1
    return out


def _all_sigmas(settings):
    """Every distinct smoothing scale the settings need, in mm."""
    return sorted(set(settings.sigmas_mm) | set(settings.edge_sigmas_mm))


def _edge_features(smoothed, spacing, sigma_mm, kinds):
    """Gradient magnitude, Laplacian and Hessian eigenvalues of an already smoothed image, in settings order.

    Gaussian smoothing then central differences approximates Gaussian derivatives at a fraction of the cost;
    multiplying by sigma (gamma normalisation) makes the scales comparable for the classifier.
    """
    axes = range(smoothed.ndim)
    first = [_derivative(smoothed, axis, spacing[axis]) for axis in axes]
    values = []
    if "gradient" in kinds:
        values.append(np.sqrt(sum(g * g for g in first)) * np.float32(sigma_mm))
    if "laplacian" in kinds or "hessian" in kinds:
        second = {}
        for a in axes:
            for b in axes:
                if b >= a and ("hessian" in kinds or a == b):
                    second[a, b] = _derivative(first[a], b, spacing[b]) * np.float32(sigma_mm ** 2)
        if "laplacian" in kinds:
            values.append(sum(second[a, a] for a in axes))
        if "hessian" in kinds:
            if smoothed.ndim == 2:
                values += _symmetric_eigenvalues_2d(second[0, 0], second[0, 1], second[1, 1])
            else:
                values += _symmetric_eigenvalues_3d(second[0, 0], second[1, 1], second[2, 2],
                                                    second[0, 1], second[0, 2], second[1, 2])
    return values


class FeatureCache:
    """Least-recently-used cache of feature stacks keyed by region (slice index or box), bounded in bytes.

    `computed` counts the stacks actually computed, `hits` the lookups served from the cache.
    """

    def __init__(self, max_bytes=1_500_000_000):
        self.max_bytes = int(max_bytes)
        self._entries = OrderedDict()
        self.computed = 0
        self.hits = 0

    def get(self, key, compute):
        """The stack stored under `key`, calling `compute()` (and storing its result) on a miss."""
        if key in self._entries:
            self._entries.move_to_end(key)
            self.hits += 1
            return self._entries[key]
        value = compute()
        self.computed += 1
        self._entries[key] = value
        while len(self._entries) > 1 and sum(v.nbytes for v in self._entries.values()) > self.max_bytes:
            self._entries.popitem(last=False)
        return value

    def __contains__(self, key):
        return key in self._entries

    def __len__(self):
        return len(self._entries)

    def clear(self):
        self._entries.clear()

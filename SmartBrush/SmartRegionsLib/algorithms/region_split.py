"""Split regions that hold two tissues: a local refinement of the banded grid regions.

Global intensity bands cannot separate classes whose means are close compared with the full intensity
range (on CT: fluid 10 HU, soft tissue 40 HU, liver 60 HU share one band when air, lung and bone spread the
histogram). Inside one grid cell usually only two of them meet, so a region whose intensities form two
separated groups is cut at its own two-means threshold. A region is cut when the group means differ by
more than `separation` noise deviations (`noise_level`) and by more than BIMODALITY pooled within-group
deviations: one Gaussian class split at its mean gives 2.7 (stays whole), two classes well apart much
more; a linear ramp (partial volume, MRI bias) gives 3.5 and is cut when it is wide enough. Measured: on the
CT phantom the oracle Dice of effusion rose 0.63 -> 0.65-0.70 and of liver 0.90 -> 0.92-0.94, but 256^3
MNI took 3.9-4.8 s instead of 1.5-2.1 s, so SupervoxelParameters.split_separation is 0 (off) by default.
Arrays are label/intensity arrays of equal shape (2D or 3D); label 0 is never split.
"""
import numpy as np

from SmartRegionsLib.algorithms.region_errors import InvalidParameterError
from SmartRegionsLib.algorithms.region_homogeneity import BIMODALITY, typical_deviation

MIN_SPLIT_VOXELS = 16
TWO_MEANS_ITERATIONS = 5
NOISE_QUANTILE = 0.25
MIN_NOISE_FRACTION = 0.002


def noise_level(regions, values, min_voxels=MIN_SPLIT_VOXELS, quantile=NOISE_QUANTILE):
    """Typical within-region standard deviation of `values`, a noise estimate needing no model.

    Most regions hold a single tissue, but those on edges or ramps have inflated deviations, so a
    low voxel-weighted quantile of the per-region deviation is taken; constant regions (padding,
    masked background) are ignored, and the result is at least `MIN_NOISE_FRACTION` of the
    0.5-99.5 percentile range so noise-free images do not split on rounding noise.

    Returns
    -------
    float
    """
    count, _mean, std = _region_statistics(regions.ravel(), values.ravel())
    sample = values.ravel()[::max(1, values.size // 1_000_000)]
    low, high = np.percentile(sample, [0.5, 99.5])
    floor = MIN_NOISE_FRACTION * float(high - low)
    return max(typical_deviation(count, std, quantile=quantile, min_voxels=min_voxels), floor)


def split_keys(regions, values, separation, rounds=2):
    """Sub-region index of every voxel after splitting two-tissue regions (0 where nothing was cut).

    Parameters
    ----------
    regions : ndarray of int, labels 0..N (0 = outside the ROI)
    values : ndarray of float, same shape (the smoothed image)
    separation : float
        A region is cut when its two-means groups differ by more than this many noise deviations
        (see `noise_level`); 0 or less disables splitting.
    rounds : int
        Each round may cut every group once more (2 rounds: up to 4 groups per region).

    Returns
    -------
    ndarray of uint8 or None
        Group index per voxel (0 .. 2**rounds - 1); None when no region was cut. Combine it with
        `regions` and relabel connected components to get the split regions.
    """
    if regions.shape != values.shape:
        raise InvalidParameterError(f"Regions shape {regions.shape} differs from values shape {values.shape}")
    if separation <= 0:
        return None
    flat = regions.ravel()
    data = values.ravel()
    noise = noise_level(regions, values)
    group = None
    for round_index in range(int(rounds)):
        key = flat if group is None else flat.astype(np.int64) * 2 ** rounds + group
        cut = _two_means_cut(key, data, separation * noise)
        if cut is None:
            break
        index, above = cut
        if group is None:
            group = np.zeros(flat.size, np.uint8)
        group[index] |= above << round_index
    return None if group is None else group.reshape(regions.shape)


def _region_statistics(key, data):
    count = np.bincount(key)
    total = np.bincount(key, data)
    square = np.bincount(key, data.astype(np.float64) ** 2)
    safe = np.maximum(count, 1)
    mean = total / safe
    std = np.sqrt(np.maximum(square / safe - mean ** 2, 0.0))
    return count, mean, std


def _two_means_cut(key, data, min_gap):
    """Voxel indices of the regions to cut and, for each, whether it lies above its region's threshold."""
    count, mean, std = _region_statistics(key, data)
    # Two groups `min_gap` apart have a deviation of at least min_gap / 2: only those regions can qualify.
    candidate = (count >= 2 * MIN_SPLIT_VOXELS) & (std > min_gap / 2)
    candidate[0] = False
    if not candidate.any():
        return None
    index = np.flatnonzero(candidate[key])
    sub_key, sub_data = key[index], data[index]
    # Compact ids so the per-iteration bincounts stay small.
    ids = np.flatnonzero(candidate)
    n = ids.size
    local = (np.cumsum(candidate) - 1)[sub_key]
    local_count = count[ids]
    local_total = np.bincount(local, sub_data, n)
    threshold = mean[ids]
    for _ in range(TWO_MEANS_ITERATIONS):
        above = sub_data >= threshold[local]
        upper_count = np.bincount(local, above, n)
        upper_total = np.bincount(local, np.where(above, sub_data, 0.0), n)
        lower_count = local_count - upper_count
        valid = (upper_count > 0) & (lower_count > 0)
        upper_mean = np.divide(upper_total, upper_count, out=threshold.copy(), where=valid)
        lower_mean = np.divide(local_total - upper_total, lower_count, out=threshold.copy(), where=valid)
        threshold = (upper_mean + lower_mean) / 2
    above = sub_data >= threshold[local]
    upper_count = np.bincount(local, above, n)
    lower_count = local_count - upper_count
    # Pooled within-group deviation: one class (gap 2.7 of it) or a ramp (3.5) stays whole.
    square = sub_data.astype(np.float64) ** 2
    upper_square = np.bincount(local, np.where(above, square, 0.0), n)
    lower_square = np.bincount(local, square, n) - upper_square
    within = (upper_square - upper_count * upper_mean ** 2 + lower_square - lower_count * lower_mean ** 2)
    within = np.sqrt(np.maximum(within, 0.0) / np.maximum(local_count, 1))
    gap = upper_mean - lower_mean
    accept = ((gap > min_gap) & (gap > BIMODALITY * within)
              & (np.minimum(upper_count, lower_count) >= MIN_SPLIT_VOXELS))
    if not accept.any():
        return None
    keep = accept[local]
    return index[keep], above[keep].astype(np.uint8)

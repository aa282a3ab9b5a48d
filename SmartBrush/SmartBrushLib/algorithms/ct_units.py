"""Whether a volume's values are CT Hounsfield units, as they are or stored unsigned (HU + 1024), from the values
alone: tools whose method depends on the units (the brush's soft-tissue window, propagation's multiplicative gain,
which only magnitude images such as MRI have) ask here, so every tool takes a scan for the same kind."""
import numpy as np

# The soft-tissue range of CT (fat/fluid/muscle/liver), HU.
SOFT_TISSUE_HU = (-100.0, 200.0)
# An image is taken as CT in Hounsfield units when its 0.5 percentile is air (-1400..-500 HU: -1000 with noise
# up to ~150 HU) and its 99.5 percentile at least water density. Values below -1500 HU are no tissue: scanners
# pad outside the reconstructed field of view with -2048 or -3024; the air test leaves them out.
_CT_AIR_RANGE_HU = (-1400.0, -500.0)
_PADDING_BELOW_HU = -1500.0
# CT is often stored unsigned, as HU + 1024 (DICOM rescale intercept -1024). Such an image is taken as CT when,
# shifted back, its 0.5 percentile is air and the densest of its voxels above fat (-150 HU) lie in the soft-tissue
# range: air alone (any MRI with a dark background) is not enough, the body's soft tissue must sit 1000 above it.
# An MRI whose values span about 1000 above a dark background passes both tests; what CT has and such an MRI lacks
# is the gap between lung and fat: few voxels lie in -500..-200 HU (partial volume only; 4-6 % of the body's
# voxels on the CT phantom and its variants), while an MRI's grey and white matter fill it (94 % on MNI x4+100).
_STORED_CT_SHIFTS = (1024.0,)
_FAT_HU = -150.0
_LUNG_FAT_GAP_HU = (-500.0, -200.0)
_MAX_GAP_PER_BODY_VOXEL = 0.25


def percentile_range(image, max_values=1_000_000):
    """The 0.5 and 99.5 percentiles of the finite values of `image` (at most ~`max_values` evenly strided ones,
    twice that before striding), or None when it has none."""
    values = np.asarray(image).ravel()
    if values.size > 2 * max_values:
        values = values[:: values.size // max_values]
    values = values[np.isfinite(values)]
    if values.size == 0:
        return None
    low, high = np.percentile(values, [0.5, 99.5])
    return float(low), float(high)


def _strided(image, max_values=1_000_000):
    """About `max_values` evenly strided values of `image`, flattened."""
    values = np.asarray(image).ravel()
    return values[:: max(1, values.size // max_values)]


def _lowest_above(image, floor):
    """The 0.5 percentile of the (strided) values of `image` above `floor`, or None when none is."""
    values = _strided(image)
    values = values[values > floor]
    return float(np.percentile(values, 0.5)) if values.size else None


def hounsfield_shift(image, low=None, high=None):
    """How far the image's values lie above Hounsfield units (0 for HU, 1024 for CT stored as HU + 1024), or
    None when it does not look like CT (see `_CT_AIR_RANGE_HU`, `_STORED_CT_SHIFTS`); `low`, `high`: its 0.5 and
    99.5 percentiles when already known (`percentile_range`)."""
    if low is None or high is None:
        bounds = percentile_range(image)
        if bounds is None:
            return None
        low, high = bounds

    def air_below_water(shift):
        lowest = low
        if lowest - shift < _PADDING_BELOW_HU:
            lowest = _lowest_above(image, shift + _PADDING_BELOW_HU)
        return lowest is not None and _CT_AIR_RANGE_HU[0] <= lowest - shift <= _CT_AIR_RANGE_HU[1] \
            and high - shift >= 0.0

    if air_below_water(0.0):
        return 0.0
    for shift in _STORED_CT_SHIFTS:
        if not air_below_water(shift):
            continue
        values = _strided(image)
        tissue = values[values - shift >= _FAT_HU]
        gap = np.count_nonzero((values - shift >= _LUNG_FAT_GAP_HU[0]) & (values - shift < _LUNG_FAT_GAP_HU[1]))
        body = np.count_nonzero(values - shift >= _LUNG_FAT_GAP_HU[1])
        if tissue.size == 0 or gap > _MAX_GAP_PER_BODY_VOXEL * body:
            continue
        counts, edges = np.histogram(tissue - shift, bins=64, range=(_FAT_HU, _FAT_HU + 64 * 25.0))
        peak = 0.5 * (edges[np.argmax(counts)] + edges[np.argmax(counts) + 1])
        if SOFT_TISSUE_HU[0] <= peak <= SOFT_TISSUE_HU[1]:
            return shift
    return None

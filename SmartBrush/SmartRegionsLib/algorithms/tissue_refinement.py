"""The clicked tissue's voxels among the regions a click takes and their neighbours (numpy / scipy only).

Supervoxels follow global intensity bands, so where two tissues differ by little next to the image's range (fluid
and soft tissue on CT) a region's border can lie a few voxels inside either tissue: a region holds a slice of its
neighbour's tissue, and a click taking it takes that slice, or misses the part of its own tissue its neighbour
holds. `tissue_part` decides voxel by voxel near the click's regions, on local (3x3x3, in-plane 3x3 on thick
slices) means: a voxel belongs to
the clicked tissue when its local mean is closer to that tissue's value than to the value of every other tissue
beside it (the medians of the neighbouring regions that differ from the clicked tissue by more than its own noise).
That is the midpoint rule, so a partial-volume voxel goes to the tissue it is mostly made of. Only the connected
part holding the click is kept, so nothing is taken beyond an edge. Arrays are (k, j, i) or (j, i).
"""
import numpy as np
from scipy import ndimage

from SmartRegionsLib.algorithms.region_homogeneity import typical_deviation

# Another tissue differs from the clicked one by more than this many deviations of the clicked region's local means.
DISTINCT_DEVIATIONS = 3.0
MIN_REGION_VOXELS = 8
MEDIAN_SAMPLES = 500_000
# A voxel is flat (inside one tissue) when its 3x3x3 deviation is at most this many times the typical (a low
# quantile) deviation among the voxels like the clicked tissue.
FLAT_DEVIATIONS = 2.0
TYPICAL_QUANTILE = 0.25
# Slices thicker than this many times the finest spacing hold other anatomy: local means stay in-plane there.
THICK_RATIO = 2.0


def grouped_medians(values, groups, count):
    """Median of `values` per group id 0..count-1 (NaN for an empty group)."""
    order = np.argsort(values)
    order = order[np.argsort(groups[order], kind="stable")]
    sorted_groups, sorted_values = groups[order], values[order]
    starts = np.searchsorted(sorted_groups, np.arange(count), side="left")
    ends = np.searchsorted(sorted_groups, np.arange(count), side="right")
    medians = np.full(count, np.nan)
    filled = ends > starts
    low = sorted_values[(starts + (ends - starts - 1) // 2)[filled]]
    high = sorted_values[(starts + (ends - starts) // 2)[filled]]
    medians[filled] = (low + high) / 2
    return medians


def tissue_part(image_block, labels_block, taken, segment, straddling, neighbours, index, spacing=None):
    """Voxels of the clicked tissue connected to the click, among the regions a click takes and their neighbours.

    Only for a click that starts a structure (the segment holds nothing in the block; a correction beside the
    segment is left to the region choice's own rules). The clicked tissue is the clicked region's (its median
    local mean, or the clicked voxel's own when that does not look like its region); a click on a region across
    an edge has no tissue value and is left as it is. The other tissues are the neighbouring regions of one tissue
    (not `straddling`) that differ from the clicked tissue by more than DISTINCT_DEVIATIONS times the noise of the
    local means (a low quantile of the regions' deviations). A neighbouring region like the clicked tissue that the
    click did not take stays out: the region choice decided about it.

    Parameters
    ----------
    image_block : ndarray, the image in a box holding the taken regions and their neighbours
    labels_block : ndarray of int, same shape: region labels (0 outside the ROI)
    taken : ndarray of bool, same shape: what the click takes by regions
    segment : ndarray of bool, same shape: the segment as it is
    straddling : ndarray of bool indexed by label: regions across an edge (no tissue value of their own)
    neighbours : callable(label) -> sequence of labels adjacent to it
    index : tuple of int, the clicked voxel inside the block
    spacing : sequence of float or None: voxel size per axis (local means do not reach across thick slices)

    Returns
    -------
    ndarray of bool, same shape, or None when no other tissue borders the taken regions (take them as they are)
    """
    labels_block = np.asarray(labels_block)
    taken = np.asarray(taken, bool)
    index = tuple(int(v) for v in index)
    if np.asarray(segment, bool).any():
        return None
    count = straddling.size
    size = window_size(labels_block.ndim, spacing)
    image = np.asarray(image_block, np.float64)
    flat_labels = labels_block.ravel()
    sizes = np.bincount(flat_labels, minlength=count)
    local = ndimage.uniform_filter(image, size)
    flat_local = local.ravel()
    flat_taken = taken.ravel()
    taken_share = np.bincount(flat_labels, flat_taken, minlength=count) / np.maximum(sizes, 1)
    touched = np.flatnonzero(np.bincount(flat_labels[flat_taken], minlength=count))
    candidates = set(int(v) for v in touched)
    for label in touched:
        candidates.update(int(v) for v in neighbours(label))
    candidates.discard(0)
    lookup = np.zeros(count, bool)
    lookup[list(candidates)] = True
    inside = lookup[flat_labels]
    sample = np.flatnonzero(inside)
    sample = sample[::max(1, sample.size // MEDIAN_SAMPLES)]  # every n-th voxel: the medians of a large block
    medians = grouped_medians(flat_local[sample], flat_labels[sample], count)
    deviation = np.abs(flat_local[sample] - medians[flat_labels[sample]])
    spreads = 1.4826 * grouped_medians(deviation, flat_labels[sample], count)
    usable = lookup & ~straddling
    noise = max(typical_deviation(np.where(usable, sizes, 0), np.nan_to_num(spreads), min_voxels=MIN_REGION_VOXELS),
                1e-6)
    value = clicked_value(local, medians[int(labels_block[index])], bool(straddling[labels_block[index]]), index,
                          DISTINCT_DEVIATIONS * noise)
    if value is None:
        return None
    other = usable & (taken_share < 0.5) & (sizes >= MIN_REGION_VOXELS) & ~np.isnan(medians)
    other[other] = np.abs(medians[other] - value) > DISTINCT_DEVIATIONS * noise
    if not other.any():
        return None
    # per region, the interval of values closer to the clicked tissue than to every other tissue beside it
    low = np.full(count, -np.inf)
    high = np.full(count, np.inf)
    decided = np.zeros(count, bool)
    deciding = (taken_share >= 0.5) | other | straddling  # a region like the click's tissue, not taken, stays out
    for label in candidates:
        near = [int(v) for v in neighbours(label) if other[int(v)]] + ([label] if other[label] else [])
        if not near or not deciding[label]:
            continue  # beside no other tissue: the region keeps what the click took of it
        decided[label] = True
        below, above = medians[near][medians[near] < value], medians[near][medians[near] > value]
        low[label] = (value + below.max()) / 2 if below.size else -np.inf
        high[label] = (value + above.min()) / 2 if above.size else np.inf
    flat_image = image.ravel()
    within = (flat_local > low[flat_labels]) & (flat_local < high[flat_labels])
    # a taken voxel whose own value is the clicked tissue's stays: a local mean blurs corners and thin parts
    own = (flat_image > low[flat_labels]) & (flat_image < high[flat_labels])
    like = np.where(decided[flat_labels], within | (flat_taken & own), flat_taken)
    like = like.reshape(labels_block.shape)
    prototypes = medians[other]
    if (prototypes < value).any() and (prototypes > value).any():
        like = _without_edge_mixtures(image, like, taken, size)
    pieces, _ = ndimage.label(like)
    if pieces[index] == 0:
        return None
    return pieces == pieces[index]


def window_size(ndim, spacing=None):
    """Side of the local-mean window per axis: 3, or 1 along an axis more than THICK_RATIO times the finest."""
    if spacing is None:
        return (3,) * ndim
    spacing = np.asarray(spacing, float)
    return tuple(1 if s > THICK_RATIO * spacing.min() else 3 for s in spacing)


def _without_edge_mixtures(image, like, taken, size):
    """`like` without the added voxels that only mix the tissues on either side of the clicked one.

    A tissue lying between two others in intensity (fluid between lung and soft tissue on CT) looks, by its
    local mean, like every partial-volume voxel on their edges. Its own voxels are flat: the added voxels kept
    are those whose 3x3x3 deviation is at most FLAT_DEVIATIONS times the typical one, and the layer beside them
    (its own rim); what the click took by regions stays.
    """
    mean = ndimage.uniform_filter(image, size)
    spread = np.sqrt(np.maximum(ndimage.uniform_filter(image ** 2, size) - mean ** 2, 0.0))
    typical = float(np.quantile(spread[like], TYPICAL_QUANTILE)) if like.any() else 0.0
    core = like & (spread <= FLAT_DEVIATIONS * typical)
    rim = ndimage.binary_dilation(core, np.ones(size, bool)) & like
    return (like & taken) | core | rim


def clicked_value(local, region_median, region_straddles, index, distinct):
    """The clicked tissue's local mean (`tissue_part`): its region's median, or the clicked voxel's own local
    mean when it does not look like its region; None for a click on a region across an edge (a mixture)."""
    if region_straddles:
        return None
    clicked = float(local[index])
    return clicked if abs(clicked - region_median) > distinct else float(region_median)

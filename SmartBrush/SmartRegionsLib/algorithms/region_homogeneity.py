"""The part of a two-tissue region a click points at (numpy / scipy only).

A region holding one tissue deviates about as much as the image noise; a region across an edge (the partial
volume between fat and soft tissue, a supervoxel half in a thin effusion) deviates more, and its mean can be any
value between the two tissues: a small tissue lying between two others in intensity (fluid between fat and soft
tissue on CT) looks, by its mean, like every rim in the body. So smart merge leaves such regions alone (the
logic's `merge_spread_ratio`), and a click on one takes the side of its two-means cut that holds the click, not
the whole region (`clicked_side`). Arrays are (k, j, i) or (j, i).
"""
import numpy as np
from scipy import ndimage

TWO_MEANS_ITERATIONS = 8
TYPICAL_QUANTILE = 0.25
MIN_TYPICAL_VOXELS = 16
MIN_SIDE_VOXELS = 8
SIDE_ROUNDS = 3
# one Gaussian class cut at its mean: 2.7 pooled deviations apart; two tissues are further (also `region_split`)
BIMODALITY = 3.4


def typical_deviation(size, std, quantile=TYPICAL_QUANTILE, min_voxels=MIN_TYPICAL_VOXELS):
    """The deviation of one tissue inside a region: a low voxel-weighted quantile of the regions' deviations.

    Most voxels lie in regions of one tissue; regions across edges deviate more, so a low quantile reads the noise.

    Parameters
    ----------
    size, std : ndarray of float, indexed by label (entry 0, the outside, is ignored)

    Returns
    -------
    float (0.0 when no region of `min_voxels` voxels deviates at all)
    """
    size, std = np.asarray(size, float), np.asarray(std, float)
    usable = np.flatnonzero((size >= min_voxels) & (std > 0))
    usable = usable[usable > 0]
    if usable.size == 0:
        return 0.0
    order = usable[np.argsort(std[usable], kind="stable")]
    cumulative = np.cumsum(size[order])
    return float(std[order[np.searchsorted(cumulative, quantile * cumulative[-1])]])


def clicked_side(image_block, region_block, index, bimodality=BIMODALITY, rounds=SIDE_ROUNDS):
    """The connected part of a region on the clicked voxel's side of the region's two-means cut, or None when
    the region holds one tissue.

    The cut is made on the 3x3x3 (3x3) local means, so one tissue's noise hardly crosses it; the voxel layer
    beside the side joins it where its own value lies on the side's side of the cut. The region holds
    two tissues when the two groups' means differ by more than `bimodality` pooled within-group deviations
    (one Gaussian class cut at its mean gives 2.7, two tissues far more). The clicked side is cut again while it
    still holds two tissues, up to `rounds` cuts (a supervoxel across lung, fluid and soft tissue).

    Parameters
    ----------
    image_block : ndarray, the image in the region's bounding box
    region_block : ndarray of bool, same shape: the region
    index : tuple of int, the clicked voxel inside the block (a voxel of the region)
    bimodality : float
    rounds : int

    Returns
    -------
    ndarray of bool, same shape, or None
    """
    image_block = np.asarray(image_block, np.float32)
    local = ndimage.uniform_filter(image_block, 3)
    index = tuple(int(v) for v in index)
    region = np.asarray(region_block, bool)
    core, agrees = region, region
    for _ in range(int(rounds)):
        threshold = _two_tissue_threshold(local[core].astype(np.float64), bimodality)
        if threshold is None:
            break
        above = local[index] >= threshold
        pieces, _ = ndimage.label(core & ((local >= threshold) == above))
        if pieces[index] == 0:
            break
        core = pieces == pieces[index]
        agrees = agrees & ((image_block >= threshold) == above)
    if core is region:
        return None
    # the local means blur the edge by a voxel: the layer around the core joins it where its own value agrees
    return core | (ndimage.binary_dilation(core, np.ones((3,) * core.ndim, bool)) & agrees)


def _two_tissue_threshold(values, bimodality):
    """The two-means threshold of `values` when its groups are two tissues (`clicked_side`), else None."""
    threshold = float(values.mean())
    for _ in range(TWO_MEANS_ITERATIONS):
        upper, lower = values[values >= threshold], values[values < threshold]
        if upper.size < MIN_SIDE_VOXELS or lower.size < MIN_SIDE_VOXELS:
            return None
        threshold = (float(upper.mean()) + float(lower.mean())) / 2
    upper, lower = values[values >= threshold], values[values < threshold]
    if upper.size < MIN_SIDE_VOXELS or lower.size < MIN_SIDE_VOXELS:
        return None
    within = np.sqrt((upper.var() * upper.size + lower.var() * lower.size) / values.size)
    return threshold if upper.mean() - lower.mean() > bimodality * within else None

"""What a click takes: the region under an index, its mask, optional similar neighbours, overlays.

Label arrays are (k, j, i) (or (j, i)) ints with 0 = outside the ROI.
"""
import numpy as np
from skimage.segmentation import find_boundaries

from SmartRegionsLib.algorithms.region_errors import IndexOutsideVolumeError, InvalidParameterError

# Smart merge defaults, measured on MNI white matter (axial slice 97, RITM clicks): a tolerance of
# 4 % of the intensity range walked up to 10 regions away beat the single-region click at every
# click count for both 2D superpixels and 3D supervoxels.
DEFAULT_MERGE_FRACTION = 0.04
DEFAULT_MERGE_HOPS = 10
# The intensity-range rule fails on CT: 4 % of air-to-bone is 68 HU, more than fluid, soft tissue and
# liver differ, so one click took the whole body. Comparing region means as quantiles of the image
# (RankTolerance) within 3 % of the voxels measured, with `mva eval regions` (20 clicks, largest slice):
# CT phantom liver Dice after 1/5/10/20 clicks 0.65/0.84/0.84/0.84 -> 0.90/0.90/0.87/0.90, effusion
# 0.16/0.19/0.10/0.08 -> 0.44/0.44/0.19/0.19, lung unchanged (0.96); MNI wm slice 97
# 0.955/0.829/0.891/0.966 -> 0.978/0.839/0.899/0.970 (2 % gave the same, 5 % dropped MNI at 20 to 0.948).
DEFAULT_RANK_FRACTION = 0.03


class RankTolerance(float):
    """A smart-merge tolerance given as a share of the voxels (0..1) between two region means.

    Pass it wherever a merge tolerance is accepted: region means are then compared as quantiles of
    the image's intensities (`RegionGraph.mean_rank`) instead of in image units.
    """

    def __new__(cls, fraction=DEFAULT_RANK_FRACTION):
        fraction = float(fraction)
        if not 0.0 <= fraction <= 1.0:
            raise InvalidParameterError(f"A rank tolerance is a share of the voxels in [0, 1], got {fraction}")
        return super().__new__(cls, fraction)

    def __repr__(self):
        return f"RankTolerance({float(self)})"


def default_merge_tolerance(image):
    """Smart-merge tolerance for `image`: 4 % of its 0.5-99.5 percentile range (image units)."""
    values = np.asarray(image).ravel()
    if values.size > 1_000_000:
        values = values[::values.size // 1_000_000 + 1]
    low, high = np.percentile(values, [0.5, 99.5])
    return float(DEFAULT_MERGE_FRACTION * (high - low))


def region_at(labels, index_kji):
    """Label of the region under `index_kji`.

    Raises
    ------
    IndexOutsideVolumeError
        The index is outside the array, or on a voxel outside the ROI (label 0).
    """
    labels = np.asarray(labels)
    index = _check_index(labels.shape, index_kji)
    label = int(labels[index])
    if label == 0:
        raise IndexOutsideVolumeError(
            f"Index {index} lies outside the region of interest: no region to take there")
    return label


def region_mask(labels, label):
    """Boolean mask (same shape as `labels`) of one region, or of several when `label` is a sequence."""
    labels = np.asarray(labels)
    chosen = np.atleast_1d(np.asarray(label, np.int64))
    if chosen.size == 1:
        return labels == chosen[0]
    lookup = np.zeros(int(max(labels.max(), chosen.max())) + 1, bool)
    lookup[chosen] = True
    return lookup[labels]


def click_regions(labels, index_kji, graph=None, merge_tolerance=None, max_hops=DEFAULT_MERGE_HOPS, blocked=None):
    """Labels a click at `index_kji` takes: its region plus, with smart merge, similar neighbours.

    Parameters
    ----------
    labels : ndarray of int
    index_kji : tuple of int
    graph : RegionGraph or None
        Needed only when `merge_tolerance` is set.
    merge_tolerance : float, RankTolerance or None
        None takes the clicked region only; otherwise regions reached through neighbours whose
        mean intensity differs from the clicked region's by at most this much (image units, or a
        share of the voxels for a `RankTolerance`) are taken too. `RankTolerance()` is the default
        of the Smart Regions logic; `default_merge_tolerance(image)` the older intensity-range rule.
    max_hops : int
        How far the smart merge may walk through similar regions.
    blocked : ndarray of bool indexed by label, optional
        Regions smart merge must neither take nor walk through (`RegionGraph.similar_regions`).

    Returns
    -------
    ndarray of int64, sorted labels.
    """
    label = region_at(labels, index_kji)
    if merge_tolerance is None:
        return np.array([label], np.int64)
    if graph is None:
        raise InvalidParameterError("Smart merge needs the RegionGraph of the labels")
    return graph.similar_regions(label, float(merge_tolerance), max_hops,
                                 by_rank=isinstance(merge_tolerance, RankTolerance), blocked=blocked)


def slice_boundaries(labels, k, mode="inner"):
    """2D boundaries of the regions on slice `k` (for the overlay), bool array (j, i).

    `mode` is scikit-image's: 'inner' marks the pixels of each region that touch another.
    """
    labels = np.asarray(labels)
    if labels.ndim != 3:
        raise InvalidParameterError(f"Expected (k, j, i) labels, got shape {labels.shape}")
    k = int(k)
    if not 0 <= k < labels.shape[0]:
        raise IndexOutsideVolumeError(f"Slice {k} is outside the volume (0..{labels.shape[0] - 1})")
    return find_boundaries(labels[k], connectivity=1, mode=mode, background=0) & (labels[k] > 0)


def hover_mask(labels, index_kji):
    """Mask of the region under the cursor on the cursor's slice, bool (j, i); empty outside the ROI.

    Cheap enough to run on every mouse move: reads one slice only.
    """
    labels = np.asarray(labels)
    index = _check_index(labels.shape, index_kji)
    label = labels[index]
    plane = labels[index[0]]
    if label == 0:
        return np.zeros(plane.shape, bool)
    return plane == label


def _check_index(shape, index):
    try:
        index = tuple(int(v) for v in index)
    except (TypeError, ValueError):
        raise IndexOutsideVolumeError(f"Index {index!r} is not a tuple of integers") from None
    if len(index) != len(shape) or any(not 0 <= v < n for v, n in zip(index, shape)):
        raise IndexOutsideVolumeError(f"Index {index} is outside the volume of shape {shape}")
    return index

"""Region adjacency graph of a label array: per-region statistics, neighbours, merges.

Labels are non-negative ints; 0 means "outside the ROI" and is never a region nor a neighbour.
"""
import numpy as np

from SmartRegionsLib.algorithms.region_errors import IndexOutsideVolumeError, InvalidParameterError

RANK_SAMPLES = 1_000_000
RANK_FLOOR_FRACTION = 0.005


def label_adjacency(labels, count=None):
    """Pairs of face-adjacent regions (6-connectivity in 3D, 4 in 2D).

    Each wall between two regions is read about once: a voxel pair is skipped when the pair one voxel
    back along another axis is the same (that one is read, or one further back).

    Parameters
    ----------
    labels : ndarray of int, any dimension
    count : int or None
        ``labels.max() + 1`` when known.

    Returns
    -------
    ndarray of int64, shape (m, 2)
        Unique pairs ``(a, b)`` with ``0 < a < b``, sorted by ``a`` then ``b``.
    """
    labels = np.asarray(labels)
    if count is None:
        count = int(labels.max()) + 1 if labels.size else 1
    flat = labels.ravel()
    differ = [labels[_along(axis, slice(1, None))] != labels[_along(axis, slice(None, -1))]
              for axis in range(labels.ndim)]
    keys = []
    for axis in range(labels.ndim):
        walls = differ[axis].copy()
        for other in range(labels.ndim):
            if other != axis:
                walls[_along(other, slice(1, None))] &= (differ[other][_along(axis, slice(None, -1))]
                                                         | differ[other][_along(axis, slice(1, None))])
        index = np.flatnonzero(walls)
        stride = int(np.prod(labels.shape[axis + 1:]))
        # index into `walls` (one shorter along `axis`) -> index of the pair's first voxel in `flat`
        first = index + index // (stride * (labels.shape[axis] - 1)) * stride
        keys.append(_pair_keys(flat[first], flat[first + stride], count))
    keys = sorted_unique(np.concatenate(keys))
    return np.stack([keys // count, keys % count], axis=1)


def sorted_unique(values):
    """Sorted unique values of a 1D integer array (by sorting: NumPy's hashing unique is far slower here;
    the stable sort is twice as fast on partly ordered keys)."""
    values = np.sort(values, kind="stable")
    return values[np.r_[True, values[1:] != values[:-1]]] if values.size else values


def _along(axis, part):
    return (slice(None),) * axis + (part,)


def _pair_keys(a, b, count):
    """low * count + high of the pairs of regions inside the ROI, runs of one pair kept once."""
    low, high = np.minimum(a, b).astype(np.int64), np.maximum(a, b)
    key = (low * count + high)[low > 0]
    return key[np.r_[True, key[1:] != key[:-1]]] if key.size else key


def closest_partner(pairs, cost, count):
    """``best[r]``: the partner of `r` of least `cost` among the rows ``(r, partner)`` of `pairs`, ties to the
    smaller id; `r` itself where it has no row. One stable sort by `r` (a three-key lexsort is 4x slower)."""
    best = np.arange(count)
    if len(pairs) == 0:
        return best
    order = np.argsort(pairs[:, 0], kind="stable")
    owner, partner, cost = pairs[order, 0], pairs[order, 1], cost[order]
    starts = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]])
    least = np.repeat(np.minimum.reduceat(cost, starts), np.diff(np.r_[starts, owner.size]))
    best[owner[starts]] = np.minimum.reduceat(np.where(cost == least, partner, count), starts)
    return best


def pick_neighbour(edges, chosen, key):
    """For each region in `chosen`, the neighbour with the smallest key (ties: smallest id), followed to the root.

    Returns an array ``target`` with ``target[r]`` the root ``r`` joins, or ``r`` itself.
    """
    both = np.concatenate([edges, edges[:, ::-1]])
    both = both[chosen[both[:, 0]]]
    target = closest_partner(both, key(both[:, 0], both[:, 1]), chosen.size)
    # With ties broken by id the only cycles are mutual pairs: the smaller id stays the root.
    ids = np.arange(target.size)
    mutual = (target[target] == ids) & (target != ids) & (ids < target)
    target[mutual] = ids[mutual]
    while True:
        jumped = target[target]
        if np.array_equal(jumped, target):
            return target
        target = jumped


def merge_small_regions(labels, values, min_size, max_rounds=12):
    """Merge every region smaller than `min_size` voxels into its neighbour of closest mean.

    Works on the adjacency graph (the volume is read twice), so it stays fast for millions of
    voxels. Merged regions stay connected. Label 0 is left alone.

    Parameters
    ----------
    labels : ndarray of int, labels 0..N (0 = outside the ROI)
    values : ndarray of float, same shape: the intensities whose means decide the merges
    min_size : int
        Regions with fewer voxels are merged.
    max_rounds : int

    Returns
    -------
    ndarray of int32, same shape: contiguous labels 1..M in order of first appearance of the
    input labels, 0 where the input was 0.
    """
    count = int(labels.max()) + 1
    flat = labels.ravel()
    size = np.bincount(flat, minlength=count).astype(np.float64)
    total = np.bincount(flat, weights=values.ravel(), minlength=count)
    edges = label_adjacency(labels)
    mapping = np.arange(count)
    for _ in range(max_rounds):
        small = (size > 0) & (size < min_size)
        small[0] = False
        if not small.any() or len(edges) == 0:
            break
        mean = total / np.maximum(size, 1)
        step = pick_neighbour(edges, small, lambda a, b: np.abs(mean[a] - mean[b]))
        if np.array_equal(step, np.arange(count)):
            break
        size = np.bincount(step, weights=size, minlength=count)
        total = np.bincount(step, weights=total, minlength=count)
        mapping = step[mapping]
        edges = np.sort(step[edges], axis=1)
        edges = np.unique(edges[edges[:, 0] != edges[:, 1]], axis=0)
    return _contiguous(mapping)[labels]


def _contiguous(mapping):
    """Lookup table sending each root in `mapping` to 1..M (0 stays 0)."""
    roots = np.unique(mapping[1:])
    table = np.zeros(mapping.size, np.int32)
    table[roots] = np.arange(1, roots.size + 1, dtype=np.int32)
    lookup = table[mapping]
    lookup[0] = 0
    return lookup


class RegionGraph:
    """Per-region size, mean and standard deviation plus the face-adjacency graph.

    Parameters
    ----------
    labels : ndarray of int, (k, j, i) or (j, i); 0 = outside the ROI
    image : ndarray, same shape; the intensities the statistics describe

    Attributes
    ----------
    size, mean, std : ndarray of float64, indexed by label (entry 0 describes the outside)
    edges : ndarray of int64, shape (m, 2), unique adjacent pairs ``a < b``
    """

    def __init__(self, labels, image):
        labels = np.asarray(labels)
        image = np.asarray(image, np.float64)
        if labels.shape != image.shape:
            raise InvalidParameterError(
                f"Labels shape {labels.shape} differs from image shape {image.shape}")
        count = int(labels.max()) + 1
        flat = labels.ravel()
        values = image.ravel()
        self.size = np.bincount(flat, minlength=count).astype(np.float64)
        denominator = np.maximum(self.size, 1)
        self.mean = np.bincount(flat, weights=values, minlength=count) / denominator
        square = np.bincount(flat, weights=values * values, minlength=count) / denominator
        self.std = np.sqrt(np.maximum(square - self.mean ** 2, 0))
        step = values.size // RANK_SAMPLES + 1 if values.size > RANK_SAMPLES else 1
        self._sample = values[::step].copy()  # for mean_rank; the volume itself is not kept
        self._rank = None
        self._rank_floor = 0.0
        self.edges = label_adjacency(labels)
        both = np.concatenate([self.edges, self.edges[:, ::-1]])
        both = both[np.argsort(both[:, 0], kind="stable")]
        self._offsets = np.searchsorted(both[:, 0], np.arange(count + 1))
        self._neighbours = both[:, 1]

    @property
    def region_count(self):
        """Number of labels > 0 that hold at least one voxel."""
        return int(np.count_nonzero(self.size[1:]))

    def neighbours(self, label):
        """Labels adjacent to `label` (ascending, never 0)."""
        label = self._check(label)
        return self._neighbours[self._offsets[label]:self._offsets[label + 1]]

    @property
    def mean_rank(self):
        """Each region's mean as a quantile (0..1) of the image's voxel values; computed on first use.

        Differences of rank are differences in share of the volume, so they do not depend on the
        intensity scale: on CT 20 HU between soft tissue and liver is a tenth of the voxels, while on
        MRI a tenth of the voxels spans a wide intensity range.
        """
        if self._rank is None:
            values = np.sort(self._sample)
            low, high = values[int(0.005 * (values.size - 1))], values[int(0.995 * (values.size - 1))]
            self._rank_floor = RANK_FLOOR_FRACTION * float(high - low)
            below = np.searchsorted(values, self.mean, side="left")
            upto = np.searchsorted(values, self.mean, side="right")
            self._rank = (below + upto) / (2.0 * max(values.size, 1))
            self._sample = None
        return self._rank

    def similar_regions(self, label, tolerance, max_hops=1, by_rank=False, blocked=None):
        """`label` plus the regions within `max_hops` whose mean differs from its mean by at most `tolerance`.

        The walk only passes through regions that qualify, so a dissimilar region blocks it.
        With `by_rank` the means are compared as quantiles (`mean_rank`) and `tolerance` is a share of
        the voxels (0..1) instead of image units; means closer than ``RANK_FLOOR_FRACTION`` of the
        0.5-99.5 percentile range always qualify (inside one large flat class a quantile moves a lot
        for a small change of intensity).

        Parameters
        ----------
        label : int
        tolerance : float
            Largest accepted absolute difference of mean intensity (image units).
        max_hops : int
            1 takes direct neighbours only.
        blocked : ndarray of bool indexed by label, optional
            Regions that never qualify (the walk does not pass through them either).

        Returns
        -------
        ndarray of int64, sorted labels including `label`.
        """
        label = self._check(label)
        if tolerance < 0 or max_hops < 0:
            raise InvalidParameterError(
                f"Merge tolerance ({tolerance}) and hops ({max_hops}) must not be negative")
        means = self.mean_rank if by_rank else self.mean
        floor = self._rank_floor if by_rank else -1.0
        reference, intensity = means[label], self.mean[label]
        taken = {label}
        frontier = [label]
        for _ in range(int(max_hops)):
            grown = []
            for region in frontier:
                for other in self.neighbours(region):
                    other = int(other)
                    if other in taken or (blocked is not None and blocked[other]):
                        continue
                    if (abs(means[other] - reference) <= tolerance
                            or abs(self.mean[other] - intensity) <= floor):
                        taken.add(other)
                        grown.append(other)
            if not grown:
                break
            frontier = grown
        return np.array(sorted(taken), np.int64)

    def _check(self, label):
        label = int(label)
        if not 0 < label < self.size.size or self.size[label] == 0:
            raise IndexOutsideVolumeError(
                f"Region {label} does not exist (labels run from 1 to {self.size.size - 1})")
        return label

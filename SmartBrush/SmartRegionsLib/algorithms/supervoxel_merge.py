"""Merge adjacent supervoxels whose intensities agree within the image noise (across grid walls too).

Banded grid regions cut every tissue at the grid's cell walls, and a band threshold that falls inside one
tissue's noise cuts it into ragged pieces. Both are removed here: adjacent regions are merged while their
mean intensities differ by at most ``deviations`` times the noise of the smoothed image, estimated from the
image itself (`smoothed_noise`). Two pieces of one tissue split at a threshold differ by about 1.6-1.8 noise
deviations, while tissues that differ by more than ``deviations`` deviations stay apart, so edges are kept
and homogeneous tissue and background become one region each.

Merging proceeds in rounds on the region adjacency graph (the volume is read once, small fragments first): every region points
to its most similar neighbour within the gap, and a region joins its neighbour only when that neighbour is
a centre (it points to itself, or to its partner in a mutual pair). The stars merged in one round therefore
span at most twice the gap, and a smooth ramp (an MRI bias field) is not swept into one region by a chain
of small steps: means are updated between rounds.
Arrays are (k, j, i) or (j, i); label 0 is outside the ROI and is never merged.
"""
import numpy as np

from SmartRegionsLib.algorithms.region_graph import closest_partner, label_adjacency, pick_neighbour, sorted_unique


NOISE_QUANTILE = 0.25
NOISE_BLOCK = 4
MAX_ROUNDS = 200
MAX_SPREAD = 1.5
SMALL_ROUNDS = 12


def block_noise(values, mask=None, spacing=None, block=NOISE_BLOCK, quantile=NOISE_QUANTILE):
    """Noise deviation of `values` (the smoothed image): a low quantile of the deviation in small blocks.

    Many blocks of a few voxels lie inside one tissue, so their deviation is the noise (plus fine
    texture) as it is after smoothing, correlations included; blocks across an edge deviate more. Every
    other block along each axis is used; constant blocks (padding, a clipped background) and blocks
    leaving `mask` are left out.

    Parameters
    ----------
    values : ndarray of float, 2D or 3D
    mask : ndarray of bool or None
    spacing : sequence of float or None
        Voxel size per axis (mm); thick slices (anatomy changes between them) get blocks one slice
        deep and wider in-plane.
    block : int
        Block side in voxels along the finest axis.

    Returns
    -------
    float (0.0 when every block is constant)
    """
    spacing = np.ones(values.ndim) if spacing is None else np.asarray(spacing, float)
    deep = [max(1, round(block * spacing.min() / s)) for s in spacing]
    # as many voxels per block whatever the spacing: the estimate's bias depends on the count
    wide = [d > 1 for d in deep]
    side = round(block ** (values.ndim / max(sum(wide), 1)))
    sides = [int(min(n, side if w else d)) for n, d, w in zip(values.shape, deep, wide)]
    counts = [n // side for n, side in zip(values.shape, sides)]
    window = tuple(slice(0, c * side) for c, side in zip(counts, sides))
    shape = [x for c, side in zip(counts, sides) for x in (c, side)]
    # every other block along each axis is plenty for a quantile, except in a small image
    every_other = tuple(slice(None, None, 2 if i % 2 == 0 and shape[i] >= 16 else 1) for i in range(len(shape)))
    block_axes = tuple(range(1, len(shape), 2))
    blocks = values[window].reshape(shape)[every_other].astype(np.float64)
    spread = blocks.std(axis=block_axes).ravel()
    scale = max(float(np.abs(blocks).max()), 1.0)
    usable = spread > 1e-6 * scale
    if mask is not None:
        usable &= np.asarray(mask, bool)[window].reshape(shape)[every_other].all(axis=block_axes).ravel()
    if not usable.any():
        return 0.0
    return float(np.quantile(spread[usable], quantile))


def region_moments(labels, values, count):
    """Voxel count, sum and sum of squares of `values` per label 0..count-1: float64, shape (3, count)."""
    flat = labels.ravel()
    data = values.ravel().astype(np.float64)
    size = np.bincount(flat, minlength=count).astype(np.float64)
    total = np.bincount(flat, weights=data, minlength=count)
    return np.stack([size, total, np.bincount(flat, weights=np.square(data, out=data), minlength=count)])


def merge_regions(labels, values, min_size, noise, deviations, max_spread=MAX_SPREAD, max_rounds=MAX_ROUNDS,
                  moments=None, edges=None):
    """Merge small fragments into their closest neighbour, then adjacent regions of one tissue.

    First every region smaller than `min_size` voxels joins its neighbour of closest mean (as
    `region_graph.merge_small_regions` does); then a pair is merged when its means differ by at most
    ``deviations * noise`` and the deviation of each region and of their union is at most
    ``max_spread * noise``: a region straddling an edge (two tissues in one cell and band) deviates more
    and merges with neither side, so it cannot bridge them. The volume is read once.

    Parameters
    ----------
    labels : ndarray of int, labels 0..N (0 = outside the ROI)
    values : ndarray of float, same shape (the smoothed image)
    min_size : int
    noise : float
        Noise deviation of `values` (`block_noise`); 0 or less merges no tissue.
    deviations : float
        Largest difference of region means merged, in noise deviations.
    max_spread : float
        Largest deviation of a region or a merged pair, in noise deviations.
    max_rounds : int
    moments : ndarray (3, N + 1) or None
        `region_moments` of `labels` when already known (those of label 0 are not used).
    edges : ndarray (m, 2) or None
        `region_graph.label_adjacency` of `labels` when already known.

    Returns
    -------
    ndarray of int32, same shape: contiguous labels 1..M in order of the input labels, 0 where it was 0.
    """
    labels = np.asarray(labels)
    count = int(labels.max()) + 1
    stats = region_moments(labels, values, count) if moments is None else moments
    edges = label_adjacency(labels, count) if edges is None else edges
    mapping = np.arange(count)
    phases = [(SMALL_ROUNDS, lambda: _small_step(edges, stats, min_size, count))]
    if noise > 0 and deviations > 0:
        phases.append((int(max_rounds),
                       lambda: _mutual_step(edges, stats, deviations * noise, (max_spread * noise) ** 2, count)))
    for rounds, next_step in phases:
        for _ in range(rounds):
            step = next_step() if len(edges) else None
            if step is None:
                break
            stats = np.stack([np.bincount(step, weights=row, minlength=count) for row in stats])
            mapping = step[mapping]
            edges = _unique_pairs(step[edges], count)
    table = np.zeros(count, np.int32)
    roots = sorted_unique(mapping[1:])
    table[roots] = np.arange(1, roots.size + 1, dtype=np.int32)
    lookup = table[mapping]
    lookup[0] = 0
    return lookup[labels]


def _unique_pairs(pairs, count):
    """Unique (a, b) rows with a < b of an (m, 2) array of region ids; rows with a == b are dropped."""
    low, high = pairs.min(axis=1), pairs.max(axis=1)
    keys = sorted_unique((low * count + high)[low != high])
    return np.stack([keys // count, keys % count], axis=1)


def _small_step(edges, stats, min_size, count):
    """One round: every region below `min_size` voxels joins its neighbour of closest mean (None: none left)."""
    size, total, _ = stats
    small = (size > 0) & (size < min_size)
    small[0] = False
    if not small.any():
        return None
    mean = total / np.maximum(size, 1)
    target = pick_neighbour(edges, small, lambda a, b: np.abs(mean[a] - mean[b]))
    return None if np.array_equal(target, np.arange(count)) else target


def _variance(size, total, square):
    safe = np.maximum(size, 1)
    return np.maximum(square / safe - (total / safe) ** 2, 0.0)


def _mutual_step(edges, stats, max_gap, max_variance, count):
    """One round: merge every pair of regions that are each other's most similar acceptable neighbour.

    Returns each region's new root, or None when no pair qualifies.
    """
    size, total, square = stats
    mean = total / np.maximum(size, 1)
    a, b = edges[:, 0], edges[:, 1]
    cost = np.abs(mean[a] - mean[b])
    variance = _variance(size, total, square)
    union = _variance(size[a] + size[b], total[a] + total[b], square[a] + square[b])
    close = ((cost <= max_gap) & (variance[a] <= max_variance) & (variance[b] <= max_variance)
             & (union <= max_variance))
    if not close.any():
        return None
    pairs = np.concatenate([edges[close], edges[close][:, ::-1]])
    best = closest_partner(pairs, np.concatenate([cost[close], cost[close]]), count)
    ids = np.arange(count)
    mutual = (best[best] == ids) & (best != ids)
    if not mutual.any():
        return None
    # The smaller id of a mutual pair is the centre; the partner and every region pointing to either joins it.
    centre = np.where(mutual & (ids < best), ids, np.where(mutual, best, -1))
    return np.where(centre[best] >= 0, centre[best], ids)

"""Simulated users for interactive segmentation (numpy/scipy only, arrays in (k, j, i) or (j, i) order).

Deterministic RITM rule by default; a seeded random variant in the style of nnInteractive.
"""
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

DAB_RADIUS_VOXELS = 3


@dataclass(frozen=True)
class Click:
    """One simulated interaction: an array index and whether it marks foreground."""
    index: tuple
    positive: bool


def _padded_edt(mask):
    """Distance to the nearest background voxel, treating outside the array as background."""
    padded = np.pad(np.asarray(mask, bool), 1)
    distance = ndimage.distance_transform_edt(padded)
    return distance[tuple(slice(1, -1) for _ in range(padded.ndim))]


class SimulatedUser:
    """Clicks where the error is largest (RITM rule) or, with `seed`, at random weighted positions.

    Parameters
    ----------
    truth : ndarray of bool, 2D (j, i) or 3D (k, j, i)
    seed : int or None
        None for the deterministic rule; an int for the random variant.
    """

    def __init__(self, truth, seed=None):
        self.truth = np.asarray(truth, bool)
        if not self.truth.any():
            raise ValueError("The truth mask is empty: nothing to click on")
        self.rng = None if seed is None else np.random.default_rng(seed)
        self.clicked = np.zeros(self.truth.shape, bool)

    def first_click(self):
        return self._click_in(self.truth, positive=True)

    def next_click(self, prediction):
        """The next click given the current prediction (same shape as the truth), or None if perfect."""
        prediction = np.asarray(prediction, bool)
        if prediction.shape != self.truth.shape:
            raise ValueError(f"Prediction shape {prediction.shape} differs from truth shape {self.truth.shape}")
        false_negative = self.truth & ~prediction
        false_positive = prediction & ~self.truth
        if not (false_negative.any() or false_positive.any()):
            return None
        if self.rng is not None:
            return self._random_click(false_negative, false_positive)
        fn_distance = _padded_edt(false_negative)
        fp_distance = _padded_edt(false_positive)
        fn_distance[self.clicked] = 0
        fp_distance[self.clicked] = 0
        if fn_distance.max() == 0 and fp_distance.max() == 0:
            return None
        positive = fn_distance.max() >= fp_distance.max()
        return self._take(fn_distance if positive else fp_distance, positive)

    def _click_in(self, region, positive):
        if self.rng is not None:
            return self._random_point(region, positive)
        distance = _padded_edt(region)
        distance[self.clicked] = 0
        return self._take(distance, positive)

    def _take(self, distance, positive):
        index = np.unravel_index(int(np.argmax(distance)), distance.shape)
        self.clicked[index] = True
        return Click(tuple(int(v) for v in index), bool(positive))

    def _random_click(self, false_negative, false_positive):
        components = []
        for region, positive in ((false_negative, True), (false_positive, False)):
            labels, count = ndimage.label(region)
            sizes = np.bincount(labels.ravel())[1:]
            components += [(labels == n + 1, positive, sizes[n]) for n in range(count)]
        # Components whose every voxel was clicked already cannot take a new click (never the same pixel twice).
        components = [c for c in components if (c[0] & ~self.clicked).any()]
        if not components:
            return None
        sizes = np.array([c[2] for c in components], float)
        chosen = components[self.rng.choice(len(components), p=sizes / sizes.sum())]
        return self._random_point(chosen[0], chosen[1])

    def _random_point(self, region, positive):
        weight = _padded_edt(region) ** 8
        weight[self.clicked] = 0
        if weight.sum() == 0:
            weight = (region & ~self.clicked).astype(float)
        flat = self.rng.choice(weight.size, p=(weight / weight.sum()).ravel())
        index = np.unravel_index(int(flat), weight.shape)
        self.clicked[index] = True
        return Click(tuple(int(v) for v in index), bool(positive))


def slice_to_correct(truth, prediction):
    """For slice tools used in 3D: the slice (k) of the largest 3D error component with most error."""
    error = np.asarray(truth, bool) ^ np.asarray(prediction, bool)
    labels, count = ndimage.label(error)
    if count == 0:
        return None
    largest = np.argmax(np.bincount(labels.ravel())[1:]) + 1
    per_slice = (labels == largest).sum(axis=(1, 2))
    return int(np.argmax(per_slice))


def disk(radius=DAB_RADIUS_VOXELS):
    """Boolean disk footprint of the given radius in voxels."""
    r = int(radius)
    y, x = np.mgrid[-r:r + 1, -r:r + 1]
    return x * x + y * y <= radius * radius


def dab_mask(shape, index, radius=DAB_RADIUS_VOXELS):
    """A 2D mask (j, i) with a disk of `radius` voxels centred on `index`."""
    mask = np.zeros(shape, bool)
    footprint = disk(radius)
    r = footprint.shape[0] // 2
    j, i = index
    j0, j1 = max(j - r, 0), min(j + r + 1, shape[0])
    i0, i1 = max(i - r, 0), min(i + r + 1, shape[1])
    mask[j0:j1, i0:i1] = footprint[j0 - j + r:j1 - j + r, i0 - i + r:i1 - i + r]
    return mask


def noisy_box(truth, rng=None, relative_noise=0.1, max_noise=20):
    """The truth's bounding box (j0, i0, j1, i1), inclusive, with Gaussian noise of 10 % of each side."""
    rows = np.flatnonzero(np.asarray(truth, bool).any(axis=1))
    cols = np.flatnonzero(np.asarray(truth, bool).any(axis=0))
    box = np.array([rows[0], cols[0], rows[-1], cols[-1]], float)
    if rng is not None:
        sides = np.array([rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1] * 2, float)
        box += np.clip(rng.normal(0, relative_noise * sides), -max_noise, max_noise)
    limits = np.array(truth.shape * 2) - 1
    return tuple(int(v) for v in np.clip(np.round(box), 0, limits))

"""Region clicks that correct instead of toggling (numpy / scipy only; arrays (k, j, i)).

A region that straddles an edge holds both missed tissue and leaked background. A person clicks it positive
(it is added whole), then negative on its leaked part (it is removed whole), then positive again, and so on: the
clicks toggle the same region and the mask never improves. `ClickMemory` remembers the sign and the local
intensity of every click per region. A click of the opposite sign on a region clicked before takes only the part
of the region that looks like the new click (closer to its local intensity than to the earlier click's), and
smart merge never takes back (or re-adds) regions the user clicked with the other sign.

Every click is also an example of what the structure looks like (positive) or does not (negative). Once clicks of
both signs exist, a correction takes only what looks more like its own sign's examples than like the other's
(`example_side`): a positive click does not merge into tissue like the user's negative clicks, and a negative
click does not remove the part of a mixed region like the positive ones.
"""
import numpy as np
from scipy import ndimage


def local_value(image, index_kji):
    """Mean intensity of the 3x3x3 neighbourhood of a voxel (clipped at the borders)."""
    window = tuple(slice(max(int(v) - 1, 0), int(v) + 2) for v in index_kji)
    return float(np.mean(np.asarray(image)[window]))


class ClickMemory:
    """Per region id: the sign (+1 add, -1 remove) and local intensity of the latest click on it."""

    def __init__(self):
        self._clicks = {}
        self._examples = {1: [], -1: []}  # sign -> local values of every click of that sign
        self._points = {1: [], -1: []}  # sign -> voxel index (k, j, i) of every click of that sign
        self._token = None

    def reset_for(self, token):
        """Forget every click when the regions change (another volume or other parameters)."""
        if token != self._token:
            self._clicks, self._examples, self._points, self._token = {}, {1: [], -1: []}, {1: [], -1: []}, token

    def record(self, region, add, value, index=None):
        sign = 1 if add else -1
        self._clicks[int(region)] = (sign, float(value))
        self._examples[sign].append(float(value))
        if index is not None:
            self._points[sign].append(tuple(int(v) for v in index))

    def points(self, add):
        """Voxel indices (k, j, i) of every click of this sign whose index was recorded, oldest first."""
        return list(self._points[1 if add else -1])

    def examples(self, add):
        """Local values of every click of this sign (add: positive clicks), oldest first."""
        return list(self._examples[1 if add else -1])

    def opposite_click(self, region, add):
        """The earlier click's local value when `region` was last clicked with the other sign, else None."""
        sign, value = self._clicks.get(int(region), (0, None))
        return value if sign == (-1 if add else 1) else None

    def protected(self, add, exclude=()):
        """Regions clicked with the other sign (smart merge must leave them alone), minus `exclude`."""
        sign = -1 if add else 1
        return {r for r, (s, _) in self._clicks.items() if s == sign} - set(int(v) for v in exclude)


def similar_part(image_block, region_block, value_now, value_before):
    """Voxels of the region (bool block) whose 3x3x3 mean is closer to `value_now` than to `value_before`.

    Parameters
    ----------
    image_block : ndarray, the image in the region's bounding box
    region_block : ndarray of bool, same shape: the region
    value_now, value_before : float
        Local intensities of the new click and of the earlier, opposite click.
    """
    smoothed = ndimage.uniform_filter(np.asarray(image_block, np.float32), 3)
    return np.asarray(region_block, bool) & (np.abs(smoothed - value_now) < np.abs(smoothed - value_before))


def example_side(values, same_examples, other_examples):
    """True where a value is at least as close to one of `same_examples` as to every one of `other_examples`,
    and no farther from that nearest example than it lies from the other sign's examples.

    A nearest-example rule on intensities with a margin: beyond its examples a class reaches as far as the gap
    to the other class (fluid clicked positive and soft tissue negative does not make lung "fluid-like").
    With no `other_examples` every value qualifies.

    Parameters
    ----------
    values : ndarray of float, any shape
    same_examples, other_examples : sequence of float
        Local values of the clicks of this sign and of the other sign.

    Returns
    -------
    ndarray of bool, shape of `values`
    """
    values = np.asarray(values, np.float64)
    if len(other_examples) == 0 or len(same_examples) == 0:
        return np.ones(values.shape, bool)
    same_examples = np.asarray(same_examples, np.float64)
    other_examples = np.asarray(other_examples, np.float64)
    to_same = np.abs(values[..., None] - same_examples)
    nearest = np.argmin(to_same, axis=-1)
    same = np.take_along_axis(to_same, nearest[..., None], axis=-1)[..., 0]
    other = np.min(np.abs(values[..., None] - other_examples), axis=-1)
    gap = np.min(np.abs(same_examples[:, None] - other_examples[None, :]), axis=1)[nearest]
    return (same <= other) & (same <= gap)


def example_part(image_block, region_block, same_examples, other_examples):
    """Voxels of the region (bool block) whose 3x3x3 mean lies on this click's side (`example_side`)."""
    smoothed = ndimage.uniform_filter(np.asarray(image_block, np.float32), 3)
    return np.asarray(region_block, bool) & example_side(smoothed, same_examples, other_examples)


def near_part(taken, index, spacing, reach_mm):
    """The part of `taken` within `reach_mm` of voxel `index` and connected to it there (bool, shape of `taken`),
    or None when `index` lies outside `taken`.

    Parameters
    ----------
    taken : ndarray of bool, (k, j, i) block
    index : sequence of 3 ints, a voxel of the block
    spacing : sequence of 3 floats, mm, (k, j, i)
    reach_mm : float
    """
    taken = np.asarray(taken, bool)
    index = [int(v) for v in index]
    if not all(0 <= v < n for v, n in zip(index, taken.shape)) or not taken[tuple(index)]:
        return None
    spacing = np.asarray(spacing, float)
    radius = np.floor(float(reach_mm) / spacing).astype(int)
    box = tuple(slice(max(v - r, 0), min(v + r + 1, n)) for v, r, n in zip(index, radius, taken.shape))
    grid = np.ogrid[box]
    near = sum(((g - v) * s) ** 2 for g, v, s in zip(grid, index, spacing)) <= float(reach_mm) ** 2
    pieces, _ = ndimage.label(taken[box] & near)
    kept = np.zeros_like(taken)
    kept[box] = pieces == pieces[tuple(v - b.start for v, b in zip(index, box))]
    return kept

"""Region clicks that correct instead of toggling (numpy / scipy only; arrays (k, j, i)).

A region that straddles an edge holds both missed tissue and leaked background. A person clicks it positive
(it is added whole), then negative on its leaked part (it is removed whole), then positive again, and so on: the
clicks toggle the same region and the mask never improves. `ClickMemory` remembers the sign and the local
intensity of every click per region. A click of the opposite sign on a region clicked before takes only the part
of the region that looks like the new click (closer to its local intensity than to the earlier click's), and
smart merge never takes back (or re-adds) regions the user clicked with the other sign.
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
        self._token = None

    def reset_for(self, token):
        """Forget every click when the regions change (another volume or other parameters)."""
        if token != self._token:
            self._clicks, self._token = {}, token

    def record(self, region, add, value):
        self._clicks[int(region)] = (1 if add else -1, float(value))

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

"""Keep the last supervoxel labels so they are recomputed only when the image or parameters change."""
import hashlib
import threading

import numpy as np

from SmartRegionsLib.algorithms.region_graph import RegionGraph
from SmartRegionsLib.algorithms.supervoxels import (
    SupervoxelParameters, compute_slice_superpixels, compute_supervoxels)


def image_fingerprint(image):
    """Content digest of an array (shape, dtype and bytes); about 0.1 s for 256^3 float32."""
    image = np.ascontiguousarray(image)
    digest = hashlib.blake2b(digest_size=16)
    digest.update(repr((image.shape, image.dtype.str)).encode())
    digest.update(memoryview(image).cast("B"))
    return digest.hexdigest()


class SupervoxelCache:
    """Labels and region graph for the most recent inputs (3D volume and 2D slices).

    The key is the image token (a node id plus modification time from the caller, or the content
    digest when no token is given), spacing, ROI and parameters. ``capacity`` entries are kept,
    oldest dropped first; the class is thread-safe.
    """

    def __init__(self, capacity=4):
        self.capacity = int(capacity)
        self._entries = {}
        self._lock = threading.Lock()
        self.computations = 0

    def supervoxels(self, image, spacing_kji, parameters=None, box_kji=None, token=None,
                    progress=None, cancel=None):
        """Labels of `compute_supervoxels`, computed only on a cache miss."""
        parameters = parameters or SupervoxelParameters()
        key = ("3d", self._token(image, token), _frozen(spacing_kji), _frozen(box_kji), parameters)
        return self._get(key, lambda: compute_supervoxels(
            image, spacing_kji, parameters, box_kji=box_kji, progress=progress, cancel=cancel))

    def store(self, labels, image, spacing_kji, parameters=None, box_kji=None, token=None):
        """Keep `labels` computed elsewhere (a compute worker) as the `supervoxels` result for these arguments."""
        parameters = parameters or SupervoxelParameters()
        key = ("3d", self._token(image, token), _frozen(spacing_kji), _frozen(box_kji), parameters)
        with self._lock:
            self._entries.pop(key, None)
        return self._get(key, lambda: np.array(labels))

    def contains(self, image, spacing_kji, parameters=None, box_kji=None, token=None):
        """True when `supervoxels` with these arguments would be a cache hit (nothing is computed)."""
        parameters = parameters or SupervoxelParameters()
        key = ("3d", self._token(image, token), _frozen(spacing_kji), _frozen(box_kji), parameters)
        with self._lock:
            return key in self._entries

    def slice_superpixels(self, image, spacing_kji, k, parameters=None, token=None):
        """Labels of `compute_slice_superpixels` for slice `k`, computed only on a cache miss."""
        parameters = parameters or SupervoxelParameters()
        key = ("2d", self._token(np.asarray(image)[int(k)], token), int(k),
               _frozen(spacing_kji), parameters)
        return self._get(key, lambda: compute_slice_superpixels(image, spacing_kji, k, parameters))

    def graph(self, labels, image):
        """RegionGraph of cached `labels` (built once per labels array)."""
        with self._lock:
            for entry in self._entries.values():
                if entry["labels"] is labels:
                    if entry.get("graph") is None:
                        entry["graph"] = RegionGraph(labels, image)
                    return entry["graph"]
        return RegionGraph(labels, image)

    def clear(self):
        with self._lock:
            self._entries.clear()

    def _token(self, image, token):
        return ("token", token) if token is not None else ("digest", image_fingerprint(image))

    def _get(self, key, compute):
        with self._lock:
            entry = self._entries.pop(key, None)
            if entry is not None:
                self._entries[key] = entry
                return entry["labels"]
        labels = compute()
        labels.setflags(write=False)
        with self._lock:
            self.computations += 1
            self._entries[key] = {"labels": labels}
            while len(self._entries) > self.capacity:
                self._entries.pop(next(iter(self._entries)))
        return labels


def _frozen(value):
    if value is None:
        return None
    return tuple(np.asarray(value, np.float64).ravel().tolist())

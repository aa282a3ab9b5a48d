"""Stored embeddings for the slices a user looks at: the logic's side of the embedding store.

`StoredEmbeddings` is attached to a SegmentAnythingLogic. When the logic builds a slice key (on the GUI
thread) it registers the plane here; the engine's cache asks ``lookup(key)`` on a miss (from any thread)
and gets the stored record, so a click, a background embedding job or the prefetcher use it instead of
running the encoder. Every reason a slice is not taken from the store (another volume or grid, model,
window, an oblique or rotated view, a missing or corrupt record) is kept in ``reason`` for the status line.
"""
from __future__ import annotations

import os
import threading
import time
import weakref

import numpy as np

from SegmentAnythingLib.algorithms.sam_embedding_store import (AXIS_NAMES, DEFAULT_STORE_NAME, CorruptRecordError,
                                                               EmbeddingStore, EmbeddingStoreError,
                                                               encoder_identity, volume_digest)


def find_store_for(volume_path):
    """The embedding store beside a volume file (its folder or the folder above), or None."""
    if not volume_path:
        return None
    folder = os.path.dirname(os.path.abspath(os.fspath(volume_path)))
    for candidate in (folder, os.path.dirname(folder)):
        path = os.path.join(candidate, DEFAULT_STORE_NAME)
        if os.path.isdir(path):
            return path
    return None


def store_for_volume_node(volume_node, explicit=""):
    """`explicit` when set, else the store beside the file a volume node was loaded from, else None."""
    if explicit:
        return explicit
    storage = volume_node.GetStorageNode() if volume_node is not None else None
    return find_store_for(storage.GetFileName()) if storage is not None and storage.GetFileName() else None


class StoredEmbeddings:
    """Planes of one logic mapped to store records; a source of the engine's embedding cache.

    Parameters
    ----------
    store : EmbeddingStore or path-like
    engine : SamEngine
        The logic's engine; its encoder identity must match the store's for a record to be used.
    """

    def __init__(self, store, engine):
        self.engine = engine
        self.reason = ""
        self.path = os.fspath(store.path if isinstance(store, EmbeddingStore) else store)
        try:
            self.store = store if isinstance(store, EmbeddingStore) else EmbeddingStore(store, "r")
        except EmbeddingStoreError as error:
            self.store, self.reason = None, str(error)  # a broken store must not stop the tool
        self.hits = 0
        self._lock = threading.Lock()
        self._locators = {}
        # (weak reference to the volume, case records or None, reason): an engine kept across cases keeps this
        # source in its cache, which must not keep an earlier case's voxels alive
        self._volume = None
        self._axes = {}  # axis name -> AxisRecords of the current case (zarr metadata read once)
        self._refreshed = {}  # axis name -> time its checksum table was last re-read
        self._identity = None
        engine.cache.add_source(self)

    def detach(self):
        """No longer a source of the engine's cache (the logic moved to another store)."""
        self.engine.cache.remove_source(self)
        with self._lock:
            self._locators = {}

    # --- GUI thread -------------------------------------------------------------------------------------------
    def case_for(self, volume):
        """(CaseRecords or None, reason) for a work volume (its digest is computed once per volume object)."""
        if self.store is None:
            return None, self.reason
        if self._volume is None or self._volume[0]() is not volume:
            digest = volume_digest(volume.array, volume.index_to_ras)
            case = self.store.case(digest)
            reason = "" if case is not None else (
                "no stored embeddings for this volume: its voxels or geometry differ from every embedded case "
                "(another file, an edited volume, or resampled into a segmentation grid of its own)")
            if case is not None:
                reason = case.mismatch(self._engine_identity())
                case = None if reason else case
            self._volume = (weakref.ref(volume), case, reason)
            self._axes, self._refreshed = {}, {}
            if case is not None:
                self._open_axes(case)
        return self._volume[1], self._volume[2]

    def _open_axes(self, case):
        """At case open, not at the first click: each axis's zarr metadata and checksum table are read once, and
        the decoder of the stored token grid is built and run once (its first call sets up its kernels)."""
        grids = set()
        for name in AXIS_NAMES:
            records = self._axes[name] = case.axis(name)
            if records is not None:
                records.checksum_table()
                self._refreshed[name] = time.monotonic()
                grids.add(int(records.embeddings.shape[-1]))
        warm_up = getattr(self.engine, "warm_up", None)
        for grid in sorted(grids) if warm_up is not None else ():
            warm_up(grid)

    def window_for(self, volume):
        """The store's embedding window (width, level) for this volume, or None."""
        case, _ = self.case_for(volume)
        return None if case is None else case.window

    def register(self, key, plane, volume, window):
        """Map a slice key to its record when the store holds it; returns "" or why it does not."""
        reason = self._locate(key, plane, volume, window)
        with self._lock:
            if reason:
                self._locators.pop(key, None)
            self.reason = reason
        return reason

    def _locate(self, key, plane, volume, window):
        case, reason = self.case_for(volume)
        if case is None:
            return reason
        if not plane.is_voxel_aligned:
            return "an oblique slice is embedded on demand (the store holds voxel slices)"
        mismatch = case.mismatch(self._engine_identity(), window)
        if mismatch:
            return mismatch
        axis_name = AXIS_NAMES[plane.aligned_axis]
        records = self._axes.get(axis_name)
        if records is None:
            return f"axis {axis_name} of this volume was not embedded"
        layout = np.round(np.linalg.solve(volume.index_to_ras, plane.pixel_to_ras_matrix), 6)
        layout[2 - plane.aligned_axis, 3] = 0.0
        if not np.allclose(layout, records.attrs["pixel_to_index"], atol=1e-4) or \
                list(plane.shape) != records.attrs["original_size"]:
            return "this view shows the slices rotated or flipped compared with the stored ones"
        if self.engine.encoder_size_for(plane.shape) != records.attrs["encoder_side"]:
            return "the store was embedded at another encoder input size"
        if not records.has(plane.slice_index) and time.monotonic() - self._refreshed.get(axis_name, 0.0) > 5.0:
            records.checksum_table(refresh=True)  # `mva embed` may still be filling the store
            self._refreshed[axis_name] = time.monotonic()
        if not records.has(plane.slice_index):
            return f"slice {plane.slice_index} (axis {axis_name}) is not in the store yet"
        with self._lock:
            self._locators[key] = (records, plane.slice_index)
        return ""

    def _engine_identity(self):
        if self._identity is None:
            self._identity = encoder_identity(self.engine)
        return self._identity

    # --- cache source (any thread) ----------------------------------------------------------------------------
    def contains(self, key):
        with self._lock:
            return key in self._locators

    def lookup(self, key):
        """(embedding (1, C, g, g) float16 tensor, original_size, input_size) of a registered key, or None."""
        import torch
        with self._lock:
            locator = self._locators.get(key)
        if locator is None:
            return None
        records, index = locator
        try:
            record = records.read(index)
        except (CorruptRecordError, KeyError, EmbeddingStoreError) as error:
            with self._lock:
                self._locators.pop(key, None)
                self.reason = f"{error}; embedding it on demand"
            return None
        with self._lock:
            self.hits += 1
        return (torch.from_numpy(record).unsqueeze(0), tuple(records.attrs["original_size"]),
                tuple(records.attrs["input_size"]))

    def status(self):
        """e.g. "store: 12 slices used" or "store: not used (why)"."""
        with self._lock:
            hits, reason = self.hits, self.reason
        text = f"embedding store: {hits} slices used"
        return text + (f"; this slice on demand: {reason}" if reason else "")

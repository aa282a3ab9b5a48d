"""Thread-safe LRU cache of SAM image embeddings, bounded in memory, optionally backed by a folder.

Embeddings are stored as float16 on the CPU (a ViT-B/L/H embedding of 256 x 64 x 64 takes 2 MiB).
The key is any hashable value supplied by the caller (volume id and modified time, slice plane and
index, window/level, model name); its ``repr`` names the file in the disk folder, so keys should be
built from strings and numbers.
"""
from __future__ import annotations

import hashlib
import os
import threading
import zipfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Hashable, Optional, Tuple

import numpy as np
import torch

from .sam_errors import SamInputError


@dataclass(frozen=True)
class CachedEmbedding:
    """One slice's embedding and the geometry needed to map prompts and masks.

    Attributes
    ----------
    embedding : torch.Tensor, float16, CPU, (1, C, g, g)
    original_size : (rows, columns) of the slice image
    input_size : (rows, columns) of the resized image inside the padded model input
    """

    embedding: torch.Tensor
    original_size: Tuple[int, int]
    input_size: Tuple[int, int]

    @property
    def grid(self) -> int:
        """Side of the token grid (64 for the released models at 1024 px input)."""
        return int(self.embedding.shape[-1])

    @property
    def nbytes(self) -> int:
        return self.embedding.numel() * self.embedding.element_size()


class EmbeddingCache:
    """LRU cache of :class:`CachedEmbedding` keyed by caller-supplied hashable keys.

    Parameters
    ----------
    max_memory_mb : float
        Memory budget of the in-memory entries; least recently used entries are dropped beyond it.
    folder : path-like, optional
        Also write every entry to this folder (``<sha1 of repr(key)>.npz``) and read misses back
        from it, so embeddings survive restarts and memory eviction.
    """

    def __init__(self, max_memory_mb: float = 1024.0, folder: Optional[os.PathLike] = None) -> None:
        if not max_memory_mb > 0:
            raise SamInputError(f"The embedding cache needs a positive memory limit, got {max_memory_mb} MB.")
        self.max_bytes = int(max_memory_mb * 1024 * 1024)
        self.folder = Path(folder) if folder is not None else None
        if self.folder is not None:
            self.folder.mkdir(parents=True, exist_ok=True)
        self._entries: "OrderedDict[Hashable, CachedEmbedding]" = OrderedDict()
        self._bytes = 0
        self._lock = threading.RLock()
        self._sources: list = []  # read-only lookups consulted on a miss (an embedding store)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            if key in self._entries:
                return True
        if any(source.contains(key) for source in list(self._sources)):
            return True
        return self._disk_path(key) is not None and self._disk_path(key).exists()

    @property
    def memory_bytes(self) -> int:
        """Bytes held by the in-memory entries."""
        with self._lock:
            return self._bytes

    def get(self, key: Hashable) -> Optional[CachedEmbedding]:
        """Return the entry for ``key`` (marking it recently used), or None."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
                return entry
        entry = self._read_disk(key)
        if entry is None:
            entry = self._read_sources(key)
        if entry is not None:
            self._insert(key, entry)
        return entry

    def add_source(self, source) -> None:
        """Also answer misses from ``source`` (``contains(key)``, ``lookup(key)`` -> (embedding, original_size,
        input_size) or None), e.g. SegmentAnythingLib.stored_embeddings; its entries are kept in memory only."""
        with self._lock:
            if source not in self._sources:
                self._sources.append(source)

    def remove_source(self, source) -> None:
        """Stop answering misses from ``source`` (a store of an earlier case); its entries read so far stay."""
        with self._lock:
            if source in self._sources:
                self._sources.remove(source)

    def _read_sources(self, key: Hashable) -> Optional[CachedEmbedding]:
        for source in list(self._sources):
            found = source.lookup(key)
            if found is not None:
                embedding, original_size, input_size = found
                return CachedEmbedding(embedding.to(torch.float16).contiguous(), tuple(original_size),
                                       tuple(input_size))
        return None

    def put(self, key: Hashable, embedding: torch.Tensor, original_size: Tuple[int, int],
            input_size: Tuple[int, int]) -> CachedEmbedding:
        """Store ``embedding`` (any float dtype/device) as float16 on the CPU and return the entry."""
        entry = CachedEmbedding(embedding.detach().to("cpu", torch.float16).contiguous(),
                                tuple(int(v) for v in original_size), tuple(int(v) for v in input_size))
        self._insert(key, entry)
        self._write_disk(key, entry)
        return entry

    def discard(self, key: Hashable) -> None:
        """Forget ``key`` in memory and on disk."""
        with self._lock:
            entry = self._entries.pop(key, None)
            if entry is not None:
                self._bytes -= entry.nbytes
        path = self._disk_path(key)
        if path is not None and path.exists():
            path.unlink()

    def clear(self) -> None:
        """Drop all in-memory entries (the disk folder is left alone)."""
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    def _insert(self, key: Hashable, entry: CachedEmbedding) -> None:
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old.nbytes
            self._entries[key] = entry
            self._bytes += entry.nbytes
            # Keep the newest entry even when it alone exceeds the budget.
            while self._bytes > self.max_bytes and len(self._entries) > 1:
                _, dropped = self._entries.popitem(last=False)
                self._bytes -= dropped.nbytes

    def _disk_path(self, key: Hashable) -> Optional[Path]:
        if self.folder is None:
            return None
        return self.folder / (hashlib.sha1(repr(key).encode("utf-8")).hexdigest() + ".npz")

    def _write_disk(self, key: Hashable, entry: CachedEmbedding) -> None:
        path = self._disk_path(key)
        if path is None:
            return
        temporary = path.with_name(path.stem + f".{threading.get_ident()}.tmp.npz")
        np.savez(temporary, embedding=entry.embedding.numpy(), original_size=entry.original_size,
                 input_size=entry.input_size, key=repr(key))
        os.replace(temporary, path)

    def _read_disk(self, key: Hashable) -> Optional[CachedEmbedding]:
        path = self._disk_path(key)
        if path is None or not path.exists():
            return None
        try:
            with np.load(path) as data:
                if str(data["key"]) != repr(key):
                    return None
                return CachedEmbedding(torch.from_numpy(data["embedding"].astype(np.float16)),
                                       tuple(int(v) for v in data["original_size"]),
                                       tuple(int(v) for v in data["input_size"]))
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
            # A truncated or foreign file is a cache miss; it is rewritten on the next put.
            return None

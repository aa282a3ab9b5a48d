"""A boolean volume stored as 32^3 chunks, allocated only where something was set.

Tools remember which voxels they wrote (see tool_edits.py); a full-size bool array per tool and segment
would cost a volume's worth of memory each, while their writes cover a few slices or a box.
"""
import numpy as np

CHUNK = 32


class SparseMask:
    """Boolean (k, j, i) volume of `shape_kji`; reads outside set chunks are False."""

    def __init__(self, shape_kji):
        self.shape = tuple(int(v) for v in shape_kji)
        self._chunks = {}

    def __len__(self):
        return len(self._chunks)

    @staticmethod
    def _chunk_ranges(start, stop):
        (k0, j0, i0), (k1, j1, i1) = ((v // CHUNK for v in start), ((v - 1) // CHUNK for v in stop))
        for ck in range(k0, k1 + 1):
            for cj in range(j0, j1 + 1):
                for ci in range(i0, i1 + 1):
                    yield (ck, cj, ci)

    @staticmethod
    def _overlap(chunk, start, stop):
        """(slices into the block, slices into the chunk) where chunk `chunk` meets [start, stop)."""
        in_block, in_chunk = [], []
        for c, a, b in zip(chunk, start, stop):
            origin = c * CHUNK
            low, high = max(origin, a), min(origin + CHUNK, b)
            in_block.append(slice(low - a, high - a))
            in_chunk.append(slice(low - origin, high - origin))
        return tuple(in_block), tuple(in_chunk)

    def get(self, start_kji, shape_kji):
        """A copy of the block of `shape_kji` at `start_kji`."""
        start = tuple(int(v) for v in start_kji)
        stop = tuple(a + int(n) for a, n in zip(start, shape_kji))
        block = np.zeros(tuple(int(v) for v in shape_kji), bool)
        if block.size == 0:
            return block
        for chunk in self._chunk_ranges(start, stop):
            stored = self._chunks.get(chunk)
            if stored is not None:
                in_block, in_chunk = self._overlap(chunk, start, stop)
                block[in_block] = stored[in_chunk]
        return block

    def set(self, start_kji, values_kji, where_kji=None):
        """Store `values_kji` at `start_kji` (only where `where_kji` is True, when given)."""
        values = np.asarray(values_kji, bool)
        where = None if where_kji is None else np.asarray(where_kji, bool)
        start = tuple(int(v) for v in start_kji)
        stop = tuple(a + n for a, n in zip(start, values.shape))
        if values.size == 0:
            return
        for chunk in self._chunk_ranges(start, stop):
            in_block, in_chunk = self._overlap(chunk, start, stop)
            part = values[in_block]
            mask = None if where is None else where[in_block]
            stored = self._chunks.get(chunk)
            sets_any = part.any() if mask is None else (part & mask).any()
            if stored is None:
                if not sets_any:
                    continue
                stored = self._chunks[chunk] = np.zeros((CHUNK,) * 3, bool)
            if mask is None:
                stored[in_chunk] = part
            else:
                stored[in_chunk] = np.where(mask, part, stored[in_chunk])
            if not sets_any and not stored.any():  # only a write of zeros can empty a chunk
                del self._chunks[chunk]

    def nbytes(self):
        return len(self._chunks) * CHUNK ** 3

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

    def _chunk_ranges(self, start, stop):
        low = np.asarray(start) // CHUNK
        high = (np.asarray(stop) - 1) // CHUNK
        for ck in range(low[0], high[0] + 1):
            for cj in range(low[1], high[1] + 1):
                for ci in range(low[2], high[2] + 1):
                    yield (ck, cj, ci)

    @staticmethod
    def _overlap(chunk, start, stop):
        """(slices into the block, slices into the chunk) where chunk `chunk` meets [start, stop)."""
        origin = np.asarray(chunk) * CHUNK
        low = np.maximum(origin, start)
        high = np.minimum(origin + CHUNK, stop)
        in_block = tuple(slice(int(a), int(b)) for a, b in zip(low - start, high - start))
        in_chunk = tuple(slice(int(a), int(b)) for a, b in zip(low - origin, high - origin))
        return in_block, in_chunk

    def get(self, start_kji, shape_kji):
        """A copy of the block of `shape_kji` at `start_kji`."""
        start = np.asarray(start_kji, int)
        stop = start + np.asarray(shape_kji, int)
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
        start = np.asarray(start_kji, int)
        stop = start + np.asarray(values.shape, int)
        if values.size == 0:
            return
        for chunk in self._chunk_ranges(start, stop):
            in_block, in_chunk = self._overlap(chunk, start, stop)
            part = values[in_block]
            mask = None if where is None else where[in_block]
            stored = self._chunks.get(chunk)
            if stored is None:
                if not part.any() or (mask is not None and not (part & mask).any()):
                    continue
                stored = self._chunks[chunk] = np.zeros((CHUNK,) * 3, bool)
            if mask is None:
                stored[in_chunk] = part
            else:
                stored[in_chunk] = np.where(mask, part, stored[in_chunk])
            if not stored.any():
                del self._chunks[chunk]

    def nbytes(self):
        return len(self._chunks) * CHUNK ** 3

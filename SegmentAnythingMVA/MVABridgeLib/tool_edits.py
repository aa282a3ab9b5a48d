"""The edit contract: what a tool action may change in a segment, decided from what the tool wrote before.

A tool action hands the bridge three kinds of voxels (bool blocks of one shape, placed at one start):

- ``add``: what the tool now predicts belongs to the segment. Added, except voxels someone changed since the
  tool last wrote there (a user's erase inside the tool's earlier result stays erased).
- ``retract``: what the tool no longer predicts. Removed only where the tool itself wrote the voxel and nobody
  changed it since, so a tool can take back its own mistakes but never another's work.
- ``erase``: what the user marked as "not this" (an erase stroke, the region under a negative click).
  Removed whoever drew it.

`ToolEdits` is the memory of one tool object (a brush, a propagation, one Segment Anything object): per segment,
the voxels it owns and the segment's content right after its last write in each block it wrote. Undo of the
tool's own last actions is recognised (the block is back to its content before the action), so undone voxels
are not mistaken for a user's erase.
"""
from collections import deque
from dataclasses import dataclass

import numpy as np

from MVABridgeLib.sparse_mask import SparseMask

HISTORY = 16  # actions per segment whose undo is recognised (each kept bit-packed)


class EditResult(int):
    """Voxels changed by one action (an int, for callers that only count), with what and why.

    Attributes: added, removed (voxel counts), message (status text; says why when nothing changed).
    """

    def __new__(cls, added=0, removed=0, message=""):
        result = super().__new__(cls, int(added) + int(removed))
        result.added, result.removed = int(added), int(removed)
        result.message = message or (f"{int(added)} voxels added, {int(removed)} removed" if added or removed
                                     else "Nothing changed")
        return result

    @property
    def changed(self):
        return bool(self.added or self.removed)


def _pack(block):
    return np.packbits(block, axis=None)


def _unpack(packed, shape):
    return np.unpackbits(packed, count=int(np.prod(shape))).reshape(shape).astype(bool)


@dataclass
class _Action:
    """One write, bit-packed (an action's block can be a large box): the segment before and after it, and the
    ledger's blocks (owned, after, known, others) before it."""
    start: tuple
    shape: tuple
    before: np.ndarray
    after: np.ndarray
    ledger_before: tuple


class SegmentLedger:
    """What one tool wrote into one segment of one volume grid."""

    def __init__(self, shape_kji):
        self.owned = SparseMask(shape_kji)  # voxels the tool added
        self.after = SparseMask(shape_kji)  # the segment right after the tool's last write there
        self.known = SparseMask(shape_kji)  # where `after` is known
        self.others = SparseMask(shape_kji)  # voxels someone else changed after the tool wrote there (kept)
        self.actions = deque(maxlen=HISTORY)

    @property
    def _stores(self):
        return (self.owned, self.after, self.known, self.others)

    def _blocks(self, start, shape):
        return tuple(store.get(start, shape) for store in self._stores)

    def sync(self, read_block):
        """Forget the tool's own actions that were undone since (their blocks are back to their `before`)."""
        while self.actions:
            action = self.actions[-1]
            current = _pack(read_block(action.start, action.shape))
            if np.array_equal(current, action.after) or not np.array_equal(current, action.before):
                return
            for store, block in zip(self._stores, action.ledger_before):
                store.set(action.start, _unpack(block, action.shape))
            self.actions.pop()

    def edited(self, start, current):
        """Voxels of the block changed by someone else since the tool wrote there (now or earlier)."""
        _, after, known, others = self._blocks(start, current.shape)
        return others | (known & (after != current))

    def own(self, start, current):
        """Voxels of the block the tool wrote and that are still as it left them."""
        return self.owned.get(start, current.shape) & current & ~self.edited(start, current)

    def foreign(self, start, current):
        """Voxels of the block that hold someone else's decision: their voxels, or their erasures since."""
        return (current & ~self.own(start, current)) | self.edited(start, current) & ~current

    def plan(self, start, current, add=None, retract=None, erase=None):
        """(add, remove) bool blocks allowed by the contract for this action."""
        owned, after, known, others = self._blocks(start, current.shape)
        edited = others | (known & (after != current))
        own = owned & current & ~edited
        empty = np.zeros(current.shape, bool)
        erase = empty if erase is None else erase
        to_add = empty if add is None else add & ~current & ~edited & ~erase
        to_remove = (empty if retract is None else retract & own) | (erase & current)
        return to_add, to_remove

    def record(self, start, before, after):
        """Remember an action that changed the block from `before` to `after`."""
        owned, last_after, known, others = saved = self._blocks(start, before.shape)
        self.actions.append(_Action(tuple(start), before.shape, _pack(before), _pack(after),
                                    tuple(_pack(block) for block in saved)))
        edited = others | (known & (last_after != before))
        self.owned.set(start, ((owned & ~edited) & after) | (after & ~before))
        self.after.set(start, after)
        self.known.set(start, np.ones(before.shape, bool))
        self.others.set(start, edited)


class ToolEdits:
    """The ledgers of one tool object, one per segmentation and segment (reset when the volume grid changes).

    Segment ids repeat across segmentations (Slicer names the first segment of each one Segment_1): what a tool
    wrote into one segmentation says nothing about another's voxels, so each segmentation has its own ledgers.
    """

    def __init__(self, name="tool"):
        self.name = name
        self._ledgers = {}

    def ledger(self, segment_id, volume, segmentation=None):
        """The ledger of `segment_id` in `segmentation` (any hashable naming the segmentation, e.g. its node id)."""
        key = (segment_id, volume.shape, np.asarray(volume.index_to_ras).round(6).tobytes(), segmentation)
        if key not in self._ledgers:
            self._ledgers = {k: v for k, v in self._ledgers.items() if k[1:3] == key[1:3]}
            self._ledgers[key] = SegmentLedger(volume.shape)
        return self._ledgers[key]

    def segment_ids(self):
        """The segments this tool object has written into."""
        return {key[0] for key in self._ledgers}

    def forget(self, segment_id=None):
        """Drop the memory of one segment (or all): from then on everything there counts as someone else's."""
        self._ledgers = {k: v for k, v in self._ledgers.items() if segment_id is not None and k[0] != segment_id}

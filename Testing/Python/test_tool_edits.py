"""The tool memory behind the edit contract, on plain arrays: sparse chunks, ownership, edits, undo recognition."""
import numpy as np

from MVABridgeLib.sparse_mask import CHUNK, SparseMask
from MVABridgeLib.tool_edits import EditResult, SegmentLedger

SHAPE = (40, 70, 50)


def test_sparse_mask_reads_back_blocks_across_chunk_borders():
    rng = np.random.default_rng(0)
    dense = np.zeros(SHAPE, bool)
    sparse = SparseMask(SHAPE)
    for _ in range(20):
        start = [int(rng.integers(0, n - 5)) for n in SHAPE]
        size = [int(rng.integers(1, min(n - s, 2 * CHUNK))) for n, s in zip(SHAPE, start)]
        values = rng.random(size) < 0.5
        where = rng.random(size) < 0.7
        block = tuple(slice(s, s + n) for s, n in zip(start, size))
        dense[block] = np.where(where, values, dense[block])
        sparse.set(start, values, where)
    assert np.array_equal(sparse.get((0, 0, 0), SHAPE), dense)
    assert np.array_equal(sparse.get((3, 31, 17), (30, 35, 20)), dense[3:33, 31:66, 17:37])
    sparse.set((0, 0, 0), np.zeros(SHAPE, bool))
    assert len(sparse) == 0  # emptied chunks are freed


class Segment:
    """A segment as a plain array, written the way the bridge writes (remove, then add)."""

    def __init__(self):
        self.voxels = np.zeros(SHAPE, bool)

    def read(self, start, shape):
        return self.voxels[tuple(slice(a, a + n) for a, n in zip(start, shape))].copy()

    def act(self, ledger, start, add=None, retract=None, erase=None):
        before = self.read(start, (add if add is not None else erase).shape)
        ledger.sync(self.read)
        to_add, to_remove = ledger.plan(start, before, add, retract, erase)
        block = tuple(slice(a, a + n) for a, n in zip(start, before.shape))
        self.voxels[block] = (before & ~to_remove) | to_add
        ledger.record(start, before, self.read(start, before.shape))


def box(low, high, shape=(1, 20, 20)):
    out = np.zeros(shape, bool)
    out[:, low:high, low:high] = True
    return out


def test_a_tool_takes_back_its_own_voxels_but_not_the_users():
    segment, ledger = Segment(), SegmentLedger(SHAPE)
    segment.voxels[5, 2, 2] = True  # the user's
    start = (5, 0, 0)
    segment.act(ledger, start, add=box(0, 10), retract=~box(0, 10))
    segment.act(ledger, start, add=box(5, 8), retract=~box(5, 8))
    assert np.array_equal(segment.read(start, (1, 20, 20)), box(5, 8) | (np.indices((1, 20, 20))[1:] == 2).all(0))


def test_an_erasure_inside_the_tools_result_survives_its_later_actions():
    segment, ledger = Segment(), SegmentLedger(SHAPE)
    start = (5, 0, 0)
    segment.act(ledger, start, add=box(0, 10), retract=~box(0, 10))
    segment.voxels[5, 3, 3] = False  # the user erases one of the tool's voxels
    for _ in range(3):
        segment.act(ledger, start, add=box(0, 12), retract=~box(0, 12))
        assert not segment.voxels[5, 3, 3]
    assert segment.voxels[5, 11, 11]


def test_undo_of_the_tools_own_action_is_not_taken_for_a_users_erase():
    segment, ledger = Segment(), SegmentLedger(SHAPE)
    start = (5, 0, 0)
    segment.act(ledger, start, add=box(0, 10), retract=~box(0, 10))
    segment.voxels[5] = False  # undo: the block is back to its state before the action
    segment.act(ledger, start, add=box(0, 10), retract=~box(0, 10))
    assert np.array_equal(segment.read(start, (1, 20, 20)), box(0, 10))


def test_foreign_voxels_are_the_users_drawing_and_erasures():
    segment, ledger = Segment(), SegmentLedger(SHAPE)
    start = (5, 0, 0)
    segment.act(ledger, start, add=box(0, 10), retract=~box(0, 10))
    segment.voxels[5, 15, 15] = True  # drawn by the user
    segment.voxels[5, 1, 1] = False  # erased by the user
    foreign = ledger.foreign(start, segment.read(start, (1, 20, 20)))
    assert foreign[0, 15, 15] and foreign[0, 1, 1] and foreign.sum() == 2


def test_edit_result_counts_like_an_int_and_says_what_happened():
    result = EditResult(3, 2)
    assert result == 5 and result.changed and "3 voxels added, 2 removed" == result.message
    assert not EditResult(message="Nothing changed: x").changed

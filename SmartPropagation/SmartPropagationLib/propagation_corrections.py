"""Corrections of a propagation through the tool that wrote it (the edit contract: only its own voxels).

Propagation that ran past the end of the object (a known failure mode) leaves voxels on slices where the object is
absent. Another tool cannot take them back (they are propagation's), and erasing them slice by slice would cost a
stroke per slice. `end_here` is the correction a person makes instead: "the object is not on this slice", which
takes back what propagation wrote on that slice and on every slice beyond it, away from the slice it was
propagated from. Voxels drawn by the user or another tool stay, as everywhere.
"""
import numpy as np

from MVABridgeLib.errors import NothingToApplyError


def end_here(logic, plane):
    """Take back Smart Propagation's own voxels on `plane`'s slice and beyond it, as one undo step.

    Parameters
    ----------
    logic : SmartPropagationLogic
        The propagation whose voxels are taken back (its own edit memory decides which voxels are its own).
    plane : SlicePlane
        A voxel-aligned slice of the propagation's axis, where the object is not.

    Returns
    -------
    EditResult
        Voxels removed, or a message saying why nothing changed; `slices` is (first, last) slice index looked at.

    Raises
    ------
    NothingToApplyError
        When nothing has been propagated along this plane's axis yet.
    PropagationPlaneError
        For a plane not aligned with the volume's axes.
    """
    axis, index = logic._axis_and_index(plane)
    last = getattr(logic, "_last_result", None)
    if last is None or last[0] != axis:
        raise NothingToApplyError("Nothing propagated along this view's axis yet: there is nothing to end here")
    seed_k = int(last[1].seed_k)
    shape = logic.bridge.work_volume().shape
    count = shape[axis]
    low, high = (index, count) if index >= seed_k else (0, index + 1)
    if index == seed_k:  # the slice propagated from holds the drawing itself: only that slice
        low, high = index, index + 1
    block_shape = list(shape)
    block_shape[axis] = high - low
    start = [0, 0, 0]
    start[axis] = low
    result = logic.bridge.write_decision(logic.edits, tuple(start), retract=np.ones(block_shape, bool))
    logic.preview = None  # a pending preview beyond this slice no longer applies (kept when the write failed)
    result.slices = (low, high - 1)  # the slices looked at, first and last (status text)
    return result

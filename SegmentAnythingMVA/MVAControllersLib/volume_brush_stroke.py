"""The Smart Brush's 3D mode: one stroke learned by a copy of the VolumeBrushLogic inside a job.

The copy reads a snapshot bridge (arrays captured on the GUI thread) and owns copies of everything a stroke
changes (the model's stroke arrays are rebound, never edited in place; the correction history and the erased
voxels are edited in place, so they are copied). `commit` hands the copy's state to the live logic on the GUI
thread; a cancelled or failed job is simply dropped and the live logic stays as it was.
"""
import copy

# What VolumeBrushLogic.add_stroke changes; the rest (bridge, options, edits) stays the live logic's.
_STROKE_STATE = ("_model", "segment_labels", "base", "history", "erased", "preview")


def stroke_worker(logic, snapshot_bridge):
    """A copy of `logic` that learns one stroke from `snapshot_bridge` without touching `logic`."""
    worker = copy.copy(logic)
    worker.bridge = snapshot_bridge
    volume, model = logic._model
    worker._model = (volume, copy.copy(model) if model is not None else None)
    worker.segment_labels = dict(logic.segment_labels)
    worker.history = copy.deepcopy(logic.history)
    worker.erased = None if logic.erased is None else logic.erased.copy()
    return worker


def commit(logic, worker):
    """Make the worker's learned stroke the live logic's (GUI thread)."""
    for name in _STROKE_STATE:
        setattr(logic, name, getattr(worker, name))
    return logic.preview

"""Smart Propagation through the bridge: preview, apply (one undo step), re-propagate after a correction.

Works along the volume axis of a voxel-aligned slice view (axial, coronal, sagittal, or any view whose
normal is parallel to a volume axis). Drawn slices are found from the segment itself, when needed: a slice that
holds voxels drawn by the user or another tool (or erased since propagation wrote there) is drawn, and
propagation never changes it. Its own earlier results it may replace (re-propagation after a correction).
"""
from dataclasses import dataclass

import numpy as np

from MVABridgeLib.errors import BridgeError, NothingToApplyError
from MVABridgeLib.tool_edits import EditResult, ToolEdits
from SmartPropagationLib.propagation_options import STRATEGIES, PropagationOptions
from SmartPropagationLib.algorithms import StopRule, available_strategies
from SmartPropagationLib.algorithms.sam2_video import video_strategies
from SmartPropagationLib.algorithms.video_frames import video_frame_indices
from SmartPropagationLib.propagation_run import (
    PropagationRun, merged_repropagation, reachable_slices, run_propagation)

STOP_MESSAGES = {
    "vanished": "the object vanished",
    "area_ratio": "the area changed too much between neighbouring slices",
    "low_quality": "the predicted quality fell below the threshold",
    "left_box": "the mask left the box grown around the seed",
    "max_slices": "the requested number of slices was reached",
    "volume_end": "the end of the volume was reached",
    "object_absent": "the model says the object is no longer on the slice",
}


class PropagationPlaneError(BridgeError):
    """Propagation needs a slice view whose normal is parallel to a volume axis."""


@dataclass
class PropagationPreview:
    """Masks per slice index along `axis` (array axis 0=k, 1=j, 2=i), in the moved (slice-first) array layout."""
    axis: int
    seed_index: int
    masks: dict
    stops: list
    strategy: str
    drawn: set  # slices drawn by the user or another tool when the preview was computed
    made_for: tuple = None  # the bridge's edit_target() the preview was computed for

    def stop_messages(self):
        return [f"{'forward' if s.direction > 0 else 'backward'}: stopped at slice {s.slice_k} because "
                f"{STOP_MESSAGES.get(str(s.reason.value), s.reason.value)}" if s.slice_k is not None else
                f"{'forward' if s.direction > 0 else 'backward'}: {STOP_MESSAGES.get(str(s.reason.value))}"
                for s in self.stops]

    def volume_mask(self, shape_kji):
        moved = np.zeros(np.moveaxis(np.empty(shape_kji, bool), self.axis, 0).shape, bool)
        for index, mask in self.masks.items():
            moved[index] = mask
        return np.moveaxis(moved, 0, self.axis)


class SmartPropagationLogic:
    """Propagate the selected segment from one slice to its neighbours, through a SegmentEditBridge."""

    def __init__(self, bridge, options=None):
        self.bridge = bridge
        self.options = options or PropagationOptions()
        self.edits = ToolEdits("Smart Propagation")
        self.preview = None
        self._last_result = None
        self.notes = []  # messages for the user about choices made (e.g. a fallback strategy)
        self._video_window = None  # (work volume, its automatic window) for video strategies

    # --- drawn slices -------------------------------------------------------------------------------------
    def drawn_slices(self, axis):
        """Slice indices along array `axis` that hold someone else's work on the selected segment."""
        volume = self.bridge.work_volume()
        foreign = self.bridge.foreign_mask(self.edits, (0, 0, 0), volume.shape)
        return set(int(k) for k in np.flatnonzero(foreign.any(axis=tuple(a for a in range(3) if a != axis))))

    def _axis_and_index(self, plane):
        if not plane.is_voxel_aligned:
            raise PropagationPlaneError("Smart Propagation works in views aligned with the volume's axes; "
                                        "switch the view to axial, coronal or sagittal (or rotate it to the volume)")
        return plane.aligned_axis, plane.slice_index

    def _direction(self, plane):
        if self.options.direction == "both":
            return "both"
        # forward = towards the view's normal; find whether that is +index or -index along the axis
        volume = self.bridge.work_volume()
        axis_ijk = 2 - plane.aligned_axis
        along = volume.index_to_ras[:3, axis_ijk] @ plane.normal_ras
        sign = 1 if along > 0 else -1
        return sign if self.options.direction == "forward" else -sign

    # --- preview / apply ----------------------------------------------------------------------------------
    def compute_preview(self, plane, progress=None, cancel=None, prompts=None):
        """Propagate (or interpolate) from the selected segment's mask on `plane`; nothing is written."""
        run = self.plan_preview(plane, prompts=prompts)
        return self.preview_of(run, run_propagation(run, progress, cancel))

    def plan_preview(self, plane, repropagate=False, remote_strategies=(), prompts=None):
        """Everything a preview computes from, read now (GUI thread): a PropagationRun for `run_propagation`.

        `remote_strategies`: SAM strategies a compute worker will run although no model is loaded here.
        `prompts` (a PlanePrompts or a list of them: Segment Anything points and boxes on slices of this axis)
        condition strategy sam2 as well as, or instead of, the drawn slices; other strategies ignore them.
        """
        axis, index = self._axis_and_index(plane)
        if repropagate and (self._last_result is None or self._last_result[0] != axis):
            repropagate = False  # nothing to re-propagate along this axis yet: a fresh preview
        volume = self.bridge.work_volume()
        segment = np.moveaxis(self.bridge.selected_mask().astype(bool), axis, 0)
        spacing = tuple(np.array(volume.spacing_kji)[[axis] + [a for a in range(3) if a != axis]])
        drawn = self.drawn_slices(axis)
        strategy = self._strategy(drawn, segment, propagating=repropagate, remote=remote_strategies,
                                  prompted=bool(prompts))
        video = strategy in video_strategies() or (strategy == "sam2" and strategy in remote_strategies)
        prompted = self._stack_prompts(prompts, axis) if video else {}
        erased = sorted(k for k in prompted if k in drawn and not segment[k].any())
        if erased:  # the user erased the object there after prompting: the erasure wins
            self.notes.append(f"Prompts on slice {', '.join(map(str, erased))} were not used: the object was erased "
                              f"there since")
            prompted = {k: p for k, p in prompted.items() if k not in erased}
        if repropagate:
            direction = 1 if index >= self._last_result[1].seed_k else -1
        else:
            direction = self._direction(plane)
        if strategy == "interpolation":
            masks = {k: segment[k] for k in sorted(drawn)}
        elif video:  # SAM 2: the drawn slices condition one tracker through the stack
            masks = _conditioning(segment, drawn, index)
        else:
            masks = {index: segment[index]}
        stack = np.moveaxis(volume.array, axis, 0)
        frames = ()
        if video:  # only the slices tracking reaches and the conditioning ones, by their index in the volume
            frames = tuple(video_frame_indices(index, set(masks) | set(prompted), direction,
                                               int(self.options.max_slices), stack.shape[0]))
            low, image = 0, np.ascontiguousarray(stack[list(frames)])
        else:
            low, high = reachable_slices(strategy, index, set(drawn) | set(prompted), direction,
                                         int(self.options.max_slices), segment.shape[0])
            image = np.ascontiguousarray(stack[low:high + 1])
        window = self._window_level(volume) if strategy == "sam" else None
        if video:
            window = self._video_window_level(volume)
        return PropagationRun(strategy, axis, index, low, image, masks, direction, int(self.options.max_slices),
                              spacing, self._stop_rule(), frozenset(drawn), window, repropagate, prompted,
                              frames, stack.shape[0] if video else 0)

    def _stack_prompts(self, prompts, axis):
        """`prompts` per slice along `axis` (SlicePrompts); prompts in another orientation are noted and left out."""
        from SmartPropagationLib.propagation_prompts import PlanePrompts, stack_prompts
        if not prompts:
            return {}
        by_slice, skipped = stack_prompts([prompts] if isinstance(prompts, PlanePrompts) else prompts, axis,
                                          self.bridge.work_volume().index_to_ras)
        if skipped:
            self.notes.append("Segment Anything prompts in another view orientation were not used")
        return by_slice

    def preview_of(self, run, result):
        """The preview of a computed `run` (GUI thread); a re-propagation keeps the slices on the seed side."""
        if run.strategy == "interpolation":
            masks, stops = dict(result.masks), []
        elif run.repropagating:
            merged = merged_repropagation(self._last_result[1], result, run.seed_k, run.direction)
            self._last_result = (run.axis, merged)
            # beyond the correction, and the corrected slice itself when prompts (not a drawing) gave it
            masks = {k: m for k, m in merged.masks.items() if (k - run.seed_k) * run.direction > 0
                     or (k == run.seed_k and k in run.prompts and k not in run.drawn)}
            stops = list(merged.stops.values())
        else:
            self._last_result = (run.axis, result)
            masks, stops = dict(result.masks), list(result.stops.values())
        self.preview = PropagationPreview(run.axis, run.seed_k, masks, stops, run.strategy, set(run.drawn),
                                          self.bridge.edit_target())
        return self.preview

    def _video_window_level(self, volume):
        """Video strategies' window: the whole volume's automatic one, computed once per work volume (the bridge
        keeps one until the source image changes)."""
        from MVABridgeLib.windowing import sampled_auto_window_level
        cached = self._video_window
        if cached is None or cached[0] is not volume:
            cached = self._video_window = (volume, sampled_auto_window_level(volume.array))
        return cached[1]

    def _window_level(self, volume):
        """The window SAM strategies show the slices with: the volume's display window, else automatic."""
        from MVABridgeLib.windowing import auto_window_level, display_window_level
        try:
            return display_window_level(self.bridge.backend.source_volume_node(), volume.array)
        except (AttributeError, RuntimeError):  # a backend without a volume node
            return auto_window_level(volume.array)

    def _stop_rule(self):
        return self.options.stop_rule or StopRule()

    def _strategy(self, drawn, segment, propagating=False, remote=(), prompted=False):
        """The strategy to run; `propagating` (re-propagation) never interpolates; `remote`: SAM strategies a
        compute worker runs with its own model; `prompted`: with Segment Anything prompts "auto" takes SAM 2 when
        it is there (the only strategy that reads them)."""
        strategy = self.options.strategy
        if strategy not in STRATEGIES:
            raise ValueError(f"Unknown strategy {strategy!r}; choose one of {STRATEGIES}")
        if strategy == "auto" and prompted and ("sam2" in video_strategies() or "sam2" in remote):
            return "sam2"
        if strategy == "auto" or (propagating and strategy == "interpolation"):
            with_content = sum(1 for k in drawn if segment[k].any())
            return "interpolation" if with_content >= 2 and not propagating else "registration"
        if strategy in remote:
            return strategy
        if strategy == "sam" and "sam" not in available_strategies():
            self.notes.append("No Segment Anything model is loaded: propagated by registration instead")
            return "registration"
        if strategy == "sam2" and "sam2" not in video_strategies():
            self.notes.append("No SAM 2 model is loaded: propagated by registration instead")
            return "registration"
        return strategy

    def apply(self):
        """Write the preview as one undo step; returns the bridge's EditResult.

        Slices drawn by the user or another tool (checked now, not when the preview was made) are left as they
        are; on the others the preview replaces only propagation's own earlier, unedited voxels.
        """
        if self.preview is None:
            raise NothingToApplyError("Nothing to apply: compute a preview first")
        preview = self.preview
        volume = self.bridge.work_volume()
        if preview.made_for is not None and not self.bridge.is_edit_target(preview.made_for):
            self.preview = None
            raise NothingToApplyError("The selected segment or the source volume changed since the preview was "
                                      "computed: the preview was cleared, nothing was written; propagate again")
        shape = volume.shape
        drawn = self.drawn_slices(preview.axis)
        writable = sorted(k for k in preview.masks if k not in drawn)
        if not writable:
            self.preview = None
            return EditResult(message="Nothing changed: every previewed slice holds your own drawing")
        low, high = writable[0], writable[-1]
        moved_shape = np.moveaxis(np.empty(shape, bool), preview.axis, 0).shape
        add = np.zeros((high - low + 1,) + moved_shape[1:], bool)
        region = np.zeros_like(add)
        for k in writable:
            add[k - low] = preview.masks[k]
            region[k - low] = True
        start = [0, 0, 0]
        start[preview.axis] = low
        result = self.bridge.write_decision(self.edits, tuple(start), add=np.moveaxis(add, 0, preview.axis),
                                            retract=np.moveaxis(region & ~add, 0, preview.axis))
        self.preview = None
        return result

    def repropagate_from(self, plane, progress=None, cancel=None, prompts=None):
        """After the user corrected `plane`'s slice: keep the slices on the seed side, propagate beyond it.

        `prompts` as in `plan_preview` (the correction may be prompts on the slice)."""
        run = self.plan_preview(plane, repropagate=True, prompts=prompts)
        return self.preview_of(run, run_propagation(run, progress, cancel))


def _conditioning(segment, drawn, index):
    """A video strategy's conditioning frames: every drawn slice as it is, and the slice propagated from."""
    return {**{k: segment[k] for k in drawn}, index: segment[index]}

"""Smart Propagation: preview from the slice of a chosen view (a job), Apply as one undo step, re-propagate."""
from dataclasses import dataclass

from MVAControllersLib.tool_controller import ToolController, describe_edit
from MVAControllersLib.view_events import Reaction
from SmartPropagationLib.propagation_options import PropagationOptions

PREVIEW = "preview"
END_HERE_KEYS = ("e",)  # free in Slicer's slice views and the Segment Editor (CONTRIBUTING, Slicer facts)


@dataclass
class PropagationToolOptions(PropagationOptions):
    auto_apply: bool = False  # write the preview as soon as it is computed (browser click)


class SmartPropagationController(ToolController):
    name = "Smart Propagation"

    def __init__(self, bridge, runner=None, confirm_edit=None, options=None, models=None):
        super().__init__(bridge, runner, confirm_edit)
        from SmartPropagationLib.smart_propagation_logic import SmartPropagationLogic
        self.options = options or PropagationToolOptions()
        self.logic = SmartPropagationLogic(bridge, self.options)
        self.models = models or dict  # () -> {"sam": spec or None, "sam2": spec or None} for the compute worker
        self.prompt_source = None  # () -> Segment Anything prompts (PlanePrompts or None) for strategy sam2

    def on_release(self, event):
        """A click (inside the volume) in a view propagates from that view's slice."""
        self.pixel_of(self.plane_of(event.slice_node), event)
        return self._preview(event.slice_node, False)

    def on_key(self, event):
        """E in a slice view: End here on that view's slice."""
        if event.key in END_HERE_KEYS and not (event.shift or event.control or event.alt):
            return self._end_here(event.slice_node)
        return Reaction(consumed=False)

    def preview(self, slice_node, repropagate=False):
        """Propagate from the selected segment's slice in `slice_node`'s view (a job; nothing written)."""
        return self.guarded(self._preview, slice_node, repropagate)

    def _preview(self, slice_node, repropagate):
        if self.busy:
            raise ValueError("A propagation is running: wait for it or cancel it")
        from MVAComputeLib.propagation_operation import SAM_STRATEGIES, propagation_request, result_from_reply
        from SmartPropagationLib.propagation_run import run_propagation
        plane = self.plane_of(slice_node)
        self.last_slice_node = slice_node
        models = self.worker_models() if self.runner_uses_worker() else {}
        prompts = self.prompt_source() if self.prompt_source is not None else None
        run = self.logic.plan_preview(plane, repropagate, remote_strategies=tuple(models), prompts=prompts)
        in_worker = self.runner_uses_worker() and (run.strategy in models or run.strategy not in SAM_STRATEGIES)
        request = propagation_request(run, models.get(run.strategy)) if in_worker else None

        def propagate_here(progress, cancel):  # without a compute worker: the arrays of `run` only
            return run_propagation(run, progress, cancel)
        return self.start_job("Propagating", propagate_here,
                              lambda result: self._show_preview(self.logic.preview_of(run, result)),
                              request=request, from_reply=result_from_reply)

    def worker_models(self):
        """{strategy: model spec} the compute worker runs SAM strategies with (sam / sam2), from `models()`."""
        return {strategy: spec for strategy, spec in (self.models() or {}).items() if spec}

    def _show_preview(self, preview):
        volume = self.bridge.work_volume()
        if not preview.masks:
            self.logic.preview = None
            return Reaction(redraw=True, status="Nothing to propagate: " + " ".join(preview.stop_messages()))
        self.drawings = {PREVIEW: ("volume", preview.volume_mask(volume.shape))}
        slices = sorted(preview.masks)
        status = f"Preview: slices {slices[0]} to {slices[-1]} ({preview.strategy}). " + " ".join(
            preview.stop_messages() + self.logic.notes)
        self.logic.notes.clear()
        if self.options.auto_apply:
            return self._apply().merged(Reaction(status=status + " Applied."))
        return Reaction(redraw=True, status=status)

    def apply(self):
        return self.guarded(self._apply)

    def _apply(self):
        if self.busy:
            raise ValueError("A propagation is running: wait for it or cancel it")
        result = self.edit(self.logic.apply)
        self.drawings = {}
        return Reaction(redraw=True, status=describe_edit(result, "Applied: "))

    def end_here(self, slice_node=None):
        """The object is not on `slice_node`'s slice (default: the view last propagated in): take back
        propagation's own voxels there and beyond it, away from the slice propagated from (one undo step)."""
        return self.guarded(self._end_here, slice_node)

    def _end_here(self, slice_node):
        from SmartPropagationLib.propagation_corrections import end_here
        if self.busy:
            raise ValueError("A propagation is running: wait for it or cancel it")
        slice_node = slice_node or self.last_slice_node
        if slice_node is None:
            raise ValueError("Nothing propagated yet: propagate from a slice, then scroll to where the object ends")
        plane = self.plane_of(slice_node)
        result = self.edit(end_here, self.logic, plane)
        self.drawings = {}
        first, last = result.slices
        where = f"slice {first}" if first == last else f"slices {first} to {last}"
        if not result.removed:
            status = f"End here: propagation wrote nothing on {where}; nothing changed"
        else:
            status = f"Ended here: {result.removed} propagated voxels taken back from {where}"
        return Reaction(consumed=True, redraw=True, status=status)  # consumed: the E key is not Slicer's then

    def clear_preview(self):
        self.cancel("the preview was cancelled")
        self.logic.preview = None
        self.drawings = {}
        return Reaction(redraw=True, status="")

    @property
    def has_preview(self):
        return self.logic.preview is not None

    def reset(self):
        self.logic.preview = None

"""The browser's side of the smart tools: the shared MVAControllersLib controllers behind trame gestures.

A gesture (view node, press / drag / release / hover, RAS point, modifiers) becomes a ViewEvent in view XY;
the shared controller does the rest, as for the desktop effects. Its jobs run in the JobRunner's worker (arrays
read on the main loop, results written back on it) and every write is one trame-slicer undo step.
"""
from dataclasses import dataclass

from MVABridgeLib.view_geometry import tool_plane
from MVAControllersLib.background_jobs import JobBusyError
from MVAControllersLib.segment_anything_controller import EngineSource
from MVAControllersLib.segment_anything_controller import SegmentAnythingController as SharedSam
from MVAControllersLib.smart_brush_controller import BrushToolOptions
from MVAControllersLib.smart_brush_controller import SmartBrushController as SharedBrush
from MVAControllersLib.smart_propagation_controller import PropagationToolOptions
from MVAControllersLib.smart_propagation_controller import SmartPropagationController as SharedPropagation
from MVAControllersLib.smart_regions_controller import RegionsToolOptions
from MVAControllersLib.smart_regions_controller import SmartRegionsController as SharedRegions
from MVAControllersLib.view_events import EventKind, Reaction, ViewEvent
from MVAControllersLib.view_planes import ras_to_xy

from MVAWebLib.overlays import BOUNDARY, HOVER, PREVIEW
from MVAWebLib.smart_effects import Gesture
from MVAWebLib.trame_backend import one_undo_step

LAYER_VALUES = {"preview": PREVIEW, "boundaries": BOUNDARY, "hover": HOVER}
GESTURE_KINDS = {Gesture.PRESS: EventKind.PRESS, Gesture.DRAG: EventKind.MOVE, Gesture.RELEASE: EventKind.RELEASE,
                 Gesture.HOVER: EventKind.MOVE}


@dataclass
class WebBrushOptions(BrushToolOptions):
    auto_apply: bool = True  # write the prediction after each stroke (one undo step); else wait for Apply


@dataclass
class WebPropagationOptions(PropagationToolOptions):
    auto_apply: bool = True


@dataclass
class SamOptions:
    model: str = "tiny"  # "tiny" (random weights, plumbing only), "vit_b", "vit_l", "vit_h", "medsam_vit_b"
    checkpoint: str = ""  # a local SAM-format checkpoint file; required for MedSAM
    allow_download: bool = False
    input_size: str = "full"  # encoder input: "full" (as trained), "auto", or a side such as "512"
    remote_url: str = ""  # an `mva inference-service` that encodes slices ("": this machine)
    remote_token: str = ""
    embedding_store: str = ""  # `mva embed`'s store ("": every slice embedded on demand)
    decoder_threads: int = 0  # torch threads of a click's decoding (0: $MVA_DECODER_THREADS, else 1)

    def engine_input_size(self):
        """`input_size` as create_engine takes it: None, "auto" or an int."""
        from SegmentAnythingLib.engine_factory import input_size_from_text
        return input_size_from_text(self.input_size)


def _raise(message):
    raise ValueError(message)


def plane_of(slice_node, volume, segmentation_node=None):
    """The plane tools compute on for a slice view (view_geometry.tool_plane), in the segmentation's coordinates."""
    return tool_plane(slice_node, volume, segmentation_node)


class WebJobs:
    """A MVAControllersLib runner that hands jobs to the page's JobRunner (executor + main loop)."""

    def __init__(self, runner, controller):
        self.runner, self.controller, self.job = runner, controller, None

    @property
    def busy(self):
        """This tool's job is running (its `finish` may start writes: by then it no longer counts)."""
        return self.job is not None

    def start(self, job):
        report = getattr(self.runner, "report_progress", None) or (lambda fraction: None)
        cancelled = getattr(self.runner, "cancel_requested", None) or (lambda: False)
        self.job = job
        # labelled with the tool's name: the page's status, the latency history and the workflow's per-tool counts
        if not self.runner.submit(self.controller.name, lambda: job.compute(report, cancelled), self._finish,
                                  on_error=self._failed, kind=getattr(job, "label", None)):
            self.job = None
            raise JobBusyError(f"{self.runner.label or 'A tool'} is still running: wait for it")

    def _failed(self, _error):
        self.job = None  # failed or cancelled: the tool takes the next gesture (the page shows the error)

    def _finish(self, result):
        job, self.job = self.job, None
        if job.context and tuple(self.controller.shared.context()) != tuple(job.context):
            self.controller.message = f"{job.label}: the segment or volume changed; nothing was written"
            return 0
        return self.controller.after(lambda: job.finish(result), raise_message=True)

    def cancel(self, reason=""):
        if hasattr(self.runner, "cancel"):
            self.runner.cancel()

    def poll(self, context=None):
        return None

    side_pending = False  # no background requests: the browser's SAM embeds on click

    def poll_side(self):
        pass


class SmartToolController:
    """Web adapter of one shared controller: gestures in, overlays and messages out."""

    name = "tool"

    def __init__(self, bridge, runner, segmentation_editor):
        self.bridge, self.runner, self.editor = bridge, runner, segmentation_editor
        self.message = ""
        self.overlay = None  # a ToolOverlay (overlays.py) set by the app; None: nothing is drawn
        self.shared = self.make_shared(bridge)
        self.shared.runner = WebJobs(runner, self)

    @property
    def options(self):
        return self.shared.options

    @options.setter
    def options(self, options):
        self.shared.options = options
        if getattr(self.shared, "logic", None) is not None:
            self.shared.logic.options = options

    @property
    def logic(self):
        return self.shared.logic

    def on_gesture(self, slice_node, gesture, point_ras, shift, control):
        event = ViewEvent(GESTURE_KINDS[gesture], ras_to_xy(slice_node, point_ras), slice_node, shift, control)
        reaction = self.after(lambda: self.shared.handle(event))
        if gesture in (Gesture.PRESS, Gesture.RELEASE) and reaction.job is None and (reaction.redraw or reaction.message):
            # done on the loop already: still one entry of the job history (status line, latency, workflow counts)
            error = reaction.message
            self.runner.submit(self.name, lambda: None, lambda _none: _raise(error) if error else 0)
        return reaction

    def after(self, action, raise_message=False):
        """Run a controller action as one undo step; keep its message; draw its overlays."""
        with one_undo_step(self.editor, self.name):
            reaction = action() or Reaction()
        if reaction.message or reaction.status:
            self.message = reaction.message or reaction.status
        if reaction.redraw:
            self.draw()
        if raise_message and reaction.message and reaction.job is None:
            raise ValueError(reaction.message)  # the page's guard and the JobRunner show it
        return reaction

    def draw(self):
        if self.overlay is None:
            return
        plane, layers = self.shared.plane_layers()
        if plane is None:
            self.overlay.clear()
            return
        self.overlay.show(plane, {LAYER_VALUES[name]: mask for name, mask in layers.items() if name in LAYER_VALUES})

    def erase_overlay(self, values=None):
        if self.overlay is not None:
            self.overlay.clear(values)


class SmartBrushController(SmartToolController):
    name = "Smart Brush"

    def make_shared(self, bridge):
        return SharedBrush(bridge, options=WebBrushOptions())

    def apply(self):
        reaction = self.after(self.shared.apply, raise_message=True)
        self.erase_overlay((PREVIEW,))
        return reaction

    def predict_3d(self):
        """Label a box around the strokes (a job: progress bar and Cancel in the page)."""
        return self.after(self.shared.predict_3d, raise_message=True)


class SmartRegionsController(SmartToolController):
    name = "Smart Regions"

    def make_shared(self, bridge):
        return SharedRegions(bridge, options=RegionsToolOptions())

    def compute_regions(self):
        """The supervoxels of the whole volume now, not on the first click (a job: progress bar and Cancel)."""
        return self.after(self.shared.compute_regions, raise_message=True)


class SmartPropagationController(SmartToolController):
    name = "Smart Propagation"

    def make_shared(self, bridge):
        return SharedPropagation(bridge, options=WebPropagationOptions())

    def on_gesture(self, slice_node, gesture, point_ras, shift, control):
        if gesture is Gesture.RELEASE:  # a click propagates from its view's slice
            super().on_gesture(slice_node, gesture, point_ras, shift, control)

    def apply(self):
        return self.after(self.shared.apply, raise_message=True)

    def end_here(self):
        """The object is not on the slice now shown in the view last propagated in: take back propagation's
        voxels there and beyond (one undo step; in the job history like a click, so its message is shown)."""
        reaction = self.after(self.shared.end_here)
        error = reaction.message
        self.runner.submit(self.name, lambda: None, lambda _none: _raise(error) if error else 0)
        return reaction


class WebSamEngines(EngineSource):
    """The engine the page's Segment Anything options ask for (rebuilt when model or input size change)."""

    def __init__(self, options):
        self.options, self.engine = options, None

    def matches(self, engine):
        options = self.options
        from SegmentAnythingLib.sam2_engine_factory import is_sam2_model
        return (engine is not None and getattr(engine, "model_name", None) == options.model
                and (is_sam2_model(options.model) or engine.input_size == options.engine_input_size()))

    def loaded(self):
        return self.engine if self.matches(self.engine) else None

    def load(self, progress=None, cancel=None):
        from SegmentAnythingLib.engine_factory import create_engine
        options = self.options
        if options.model in ("", "none"):
            from MVAWebLib.tool_errors import NoSamModelError, no_model_message
            raise NoSamModelError(no_model_message())
        self.engine = create_engine(options.model, checkpoint=options.checkpoint or None,
                                    allow_download=options.allow_download, input_size=options.engine_input_size(),
                                    remote_url=options.remote_url or None, remote_token=options.remote_token or None,
                                    decoder_threads=options.decoder_threads or None)
        self.engine.model_name = options.model
        from SegmentAnythingLib.sam2_engine_factory import is_sam2_model
        if is_sam2_model(options.model):  # a SAM 2 model also serves Smart Propagation's strategy sam2
            from SegmentAnythingLib.sam2_propagation import register_sam2_propagation
            register_sam2_propagation(self.engine)
        return self.engine

    def embedding_store(self, bridge):
        return self.options.embedding_store or None


class SegmentAnythingController(SmartToolController):
    """Click: positive point; shift-click: negative point; ctrl-drag: box. The encoder runs in the worker."""

    name = "Segment Anything"

    def make_shared(self, bridge):
        self.engines = WebSamEngines(SamOptions())
        return SharedSam(bridge, self.engines)

    @property
    def options(self):
        return self.engines.options

    @options.setter
    def options(self, options):
        self.engines.options = options

    def _ensure_logic(self):
        """The logic over the engine the options ask for (built here, on the main loop, when they changed)."""
        engine = self.engines.loaded() or self.engines.load()
        return self.shared.ensure_logic(engine)

    def on_gesture(self, slice_node, gesture, point_ras, shift, control):
        if gesture is Gesture.PRESS or (gesture is Gesture.RELEASE and self.shared.box_start is not None):
            self._ensure_logic()  # one job per click: the embedding (the model is built before it)
        super().on_gesture(slice_node, gesture, point_ras, shift, control)

    def next_candidate(self):
        return self.after(self.shared.cycle_candidate, raise_message=True)

    def new_object(self):
        self.shared.new_object()

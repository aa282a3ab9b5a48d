"""MVAWebApp: trame-slicer's SlicerApp and SegmentationEditor composed with the project's smart tools."""
import MVAWebLib.torch_first  # noqa: F401,I001  (before any VTK rendering import)
import asyncio
import logging
import os
import time

from MVABridgeLib.edit_backend import SegmentEditBridge
from MVABridgeLib.errors import InvalidSegmentationError
from MVABridgeLib.node_io import check_segmentation_file, save_segmentation_node
from MVABridgeLib.volume_io import VolumeFileError, check_volume_file
from MVABridgeLib.volumes import add_volume_node
from trame.app import TrameApp
from trame_slicer import module as trame_slicer_module
from trame_slicer.app.logic import LayoutButtonLogic, SegmentEditorLogic
from trame_slicer.core import SlicerApp
from trame_slicer.rca_view import register_rca_factories

from MVAWebLib.cases import CaseNotFoundError, case_items, segmentation_path_for
from MVAWebLib.job_runner import JobRunner
from MVAWebLib.overlays import ToolOverlay
from MVAWebLib.smart_effects import (
    SMART_EFFECTS,
    SegmentAnythingEffect,
    SmartBrushEffect,
    SmartPropagationEffect,
    SmartRegionsEffect,
)
from MVAWebLib.tool_controllers import (
    SegmentAnythingController,
    SmartBrushController,
    SmartPropagationController,
    SmartRegionsController,
)
from MVAWebLib.tool_errors import DEVELOPER_MODELS, GuardedHandler, ReadOnlyCaseError, check_sam_model
from MVAWebLib.trame_backend import TrameEditBackend
from MVAWebLib.viewer_settings import (
    ViewerSettings,
    apply_segmentation_display,
    apply_volume_display,
    step_slice,
)
from MVAWebLib.web_ui import build_page
from MVAWebLib.workflow_controller import WorkflowController

_LOG = logging.getLogger(__name__)
CONTROLLERS = {SmartBrushEffect: SmartBrushController, SmartRegionsEffect: SmartRegionsController,
               SmartPropagationEffect: SmartPropagationController, SegmentAnythingEffect: SegmentAnythingController}
SAM_MODELS = ("none", "vit_b", "vit_l", "vit_h", "medsam_vit_b", "sam2.1_tiny", "sam2.1_small", "sam2.1_base_plus",
              "sam2.1_large", "medsam2")  # a SAM 2 model also drives Smart Propagation's strategy sam2
SLICE_ONLY_LAYOUT = "Axial Only"
# trame-rca sends a frame at its interactive quality, then renders the view again for a still frame (quality 90)
# unless the two are equal: one quality makes an edit one render instead of two (each 0.5-0.7 s on a loaded CPU,
# blocking the loop, so the first frame waited for the second render to be sent)
VIEW_IMAGE_QUALITY = 90
THREE_D_LAYOUT = "Axial Primary"


def tool_title(effect_name):
    """The name a tool's time is recorded under: a smart tool's title, a trame-slicer effect's short class name
    ("Paint", "Erase", ...), "" for no tool. trame-slicer names effects by their full class path, which is longer
    than the statistics column (and says nothing to a reader)."""
    effect = next((e for e in SMART_EFFECTS if e.get_effect_name() == effect_name), None)
    if effect is not None:
        return effect.title
    short = (effect_name or "").rsplit(".", 1)[-1].removeprefix("SegmentationEffect")
    return "" if short in ("", "NoTool") else short


class MVAWebApp(TrameApp):
    """One annotation session: a scene, a segment editor with the smart tools, a page."""

    def __init__(self, server=None, cases=(), sam_model="none", sam_checkpoint="", workflow=None,
                 sam_input_size="full", managed=None, autosave=None, developer=False):
        """`workflow`: a WorkflowSession (workflow_session.py) for `mva serve --project`; None: files.

        `managed`: a workflow_controller.ManagedLogin (team deployment: the gateway logs users in);
        `autosave`: an autosave.AutosaveStore; `developer`: offer the tiny random SAM (plumbing tests only).
        """
        if sam_model in DEVELOPER_MODELS and not developer:
            raise ValueError(f"The {sam_model!r} SAM model has random weights: it needs the developer flag")
        super().__init__(server)
        self.developer = bool(developer)
        self.read_only = False
        self.server.enable_module(trame_slicer_module)
        self.slicer_app = SlicerApp()
        register_rca_factories(self.slicer_app.view_manager, self.server, interactive_quality=VIEW_IMAGE_QUALITY)
        self.editor = self.slicer_app.segmentation_editor
        self.segment_editor_logic = SegmentEditorLogic(self.server, self.slicer_app)
        self.layout_logic = LayoutButtonLogic(self.server, self.slicer_app)
        self.layout_manager = self.layout_logic.layout_manager
        self.bridge = SegmentEditBridge(TrameEditBackend(self.editor))
        self.runner = JobRunner(on_done=self._on_job_done, on_start=self._on_job_start)
        self.overlay = ToolOverlay(self.slicer_app, on_change=self._on_overlay_change)
        self.controllers = {}
        self._new_controllers()
        self.controllers[SegmentAnythingEffect].options.model = sam_model
        self.controllers[SegmentAnythingEffect].options.checkpoint = sam_checkpoint or ""
        self.controllers[SegmentAnythingEffect].options.input_size = str(sam_input_size)
        self.cases = list(cases)
        self.current_case = None
        self.settings = ViewerSettings()
        self.load_seconds = None
        self.workflow = None
        self._init_state(sam_model, sam_checkpoint)
        self.state.sam_input_size = str(sam_input_size)
        self._bind_controller()
        if workflow is not None:
            self.workflow = WorkflowController(self, workflow, managed=managed, autosave=autosave)
            self.workflow.bind()
        self.page = build_page(self)
        self.segment_editor_logic.set_ui(self.segment_editor_ui)
        self.layout_logic.set_ui(self.layout_button)
        self.show_3d(False)  # no GPU: slice views only; 3D on demand

    # --- setup ------------------------------------------------------------------------------------------
    def _new_controllers(self):
        for effect_type, controller_type in CONTROLLERS.items():
            old = self.controllers.get(effect_type)
            controller = controller_type(self.bridge, self.runner, self.editor)
            controller.overlay = self.overlay
            if old is not None:
                controller.options = old.options
                if hasattr(controller, "logic") and controller.logic is not None:
                    controller.logic.options = old.options
                if hasattr(old, "engines"):  # the loaded SAM model stays loaded for the next case
                    controller.engines.engine = old.engines.engine
            self.controllers[effect_type] = controller
            self.editor.register_effect_type(effect_type)
            self.editor.get_effect(effect_type).handler = GuardedHandler(
                controller, self.show_tool_error, lambda: self.read_only,
                check_sam_model if effect_type is SegmentAnythingEffect else None)
        from MVAControllersLib.segment_anything_prompts import prompt_source
        sam = self.controllers[SegmentAnythingEffect].shared  # its prompts on the slice condition strategy sam2
        propagation = self.controllers[SmartPropagationEffect].shared
        propagation.prompt_source = prompt_source(propagation, lambda: [sam])

    def _init_state(self, sam_model, sam_checkpoint):
        state = self.state
        state.trame__title = "SegmentAnythingMVA"
        state.trame__favicon = None  # the default favicon is fetched from the internet
        state.case_items = case_items(self.cases)
        state.case_path = self.cases[0] if self.cases else None
        state.load_message = ""
        state.tool_status = "ready"
        state.tool_message = ""
        state.smart_tool = ""
        state.is_volume_loaded = False
        state.sam_model = sam_model
        state.sam_models = list(SAM_MODELS[:1] + (DEVELOPER_MODELS if self.developer else ()) + SAM_MODELS[1:])
        state.sam_checkpoint = sam_checkpoint or ""
        state.tool_error = ""
        state.job_busy = False
        state.job_label = ""
        state.job_progress = None
        state.job_progress_estimated = False  # the bar is an estimate from the last job of the same kind
        state.read_only = False
        state.session_pid = os.getpid()
        state.last_latency_ms = 0
        state.jobs_done = 0  # counts finished tool jobs: a client can tell its job's end from an earlier one's
        state.show_3d = False
        state.workflow_mode = False
        state.overlay_pixels = self.overlay.counts()

    def _bind_controller(self):
        ctrl, state = self.ctrl, self.state
        ctrl.open_case = lambda: self._guarded(lambda: self.load_case(self.state.case_path))
        ctrl.save_segmentation = lambda: self._guarded(self.save_segmentation)
        ctrl.activate_smart_tool = self.activate_smart_tool
        self.server.trigger("activate_smart_tool")(self.activate_smart_tool)  # named: attack tests call it
        ctrl.brush_apply = lambda: self._guarded(self.controllers[SmartBrushEffect].apply)
        ctrl.brush_predict_3d = lambda: self._guarded(self.controllers[SmartBrushEffect].predict_3d)
        ctrl.regions_compute = lambda: self._guarded(self.controllers[SmartRegionsEffect].compute_regions)
        ctrl.propagation_end_here = self.propagation_end_here
        ctrl.sam_next = lambda: self._guarded(self.controllers[SegmentAnythingEffect].next_candidate)
        ctrl.sam_new_object = self.controllers_sam_new_object
        ctrl.step_slice = self.step_slice
        ctrl.escape = self.escape
        ctrl.job_cancel = self.runner.cancel
        ctrl.on_server_ready.add(lambda **_: asyncio.ensure_future(self._show_progress()))
        state.change("brush_radius_mm", "brush_auto_apply", "brush_mode")(self._on_brush_options)
        state.change("regions_size_mm", "regions_mode", "regions_smart_merge")(self._on_regions_options)
        state.change("propagation_strategy", "propagation_direction",
                     "propagation_max_slices")(self._on_propagation_options)
        state.change("sam_model", "sam_checkpoint", "sam_input_size")(self._on_sam_options)
        state.change("settings_fill", "settings_opacity", "settings_overlays", "settings_interpolate",
                     "settings_scroll_speed", "settings_preset")(self._on_settings)
        state.change("show_3d")(lambda show_3d=False, **_: self.show_3d(bool(show_3d)))
        self.editor.active_effect_name_changed.connect(self._on_effect_changed)

    # --- cases --------------------------------------------------------------------------------------------
    def load_case(self, path):
        """Open a volume file (and its .seg.nrrd beside it, if any); returns the volume node."""
        if self.workflow is not None:
            raise CaseNotFoundError("This server serves a workflow project: open cases from the queue")
        if not path or not os.path.exists(path):
            raise CaseNotFoundError(f"No such case file: {path!r}")
        saved = segmentation_path_for(path)
        try:  # before Slicer's readers: they read a truncated NIfTI as zeros and abort on a cut .seg.nrrd
            check_volume_file(path, min_slices=2)
            if os.path.exists(saved):
                check_segmentation_file(saved)
        except (VolumeFileError, InvalidSegmentationError) as error:
            raise CaseNotFoundError(f"Cannot open this case: {error}") from None
        started = time.perf_counter()
        self._clear_scene()
        volumes = self.slicer_app.io_manager.load_volumes([os.fspath(path)])
        if not volumes:
            raise CaseNotFoundError(f"Could not read {path} as a volume")
        self._show_volume(volumes[0], saved if os.path.exists(saved) else None)
        self.current_case = os.fspath(path)
        self._loaded(os.path.basename(path), started)
        return volumes[0]

    def load_volume_array(self, array_kji, ijk_to_ras, name):
        """Show a volume given as an array (workflow cases: `WorkflowService.load_volume`); returns its node."""
        started = time.perf_counter()
        self._clear_scene()
        volume = add_volume_node(self.slicer_app.scene, array_kji, ijk_to_ras, name=name)
        self._show_volume(volume, None)
        self.current_case = None
        self._loaded(name, started)
        return volume

    def unload_case(self):
        """Empty the scene (after a workflow case is submitted or reviewed, or on logout)."""
        self._clear_scene()
        self.current_case = None
        self.state.is_volume_loaded = False
        self.state.load_message = ""

    def _clear_scene(self):
        self.slicer_app.scene.Clear()  # before loading: effect pipelines created with the views keep their view
        self.overlay.reset()

    def _show_volume(self, volume, segmentation_file):
        self.slicer_app.display_manager.show_volume(volume, do_reset_views=True)
        self.show_3d(bool(self.state.show_3d))
        if segmentation_file:
            self.editor.load_segmentation_from_file(segmentation_file)
        self.segment_editor_logic.on_volume_changed(volume)
        if self.editor.n_segments == 0:
            self.editor.add_empty_segment(segment_name="Segment_1", segment_color=[0.9, 0.6, 0.2])
        if self.editor.undo_stack is not None:
            self.editor.undo_stack.clear()
        self._new_controllers()

    def _loaded(self, name, started):
        self.load_seconds = time.perf_counter() - started
        self.state.is_volume_loaded = True
        self.state.load_message = f"{name} opened in {self.load_seconds:.2f} s"
        self._on_settings()
        views = self.slicer_app.view_manager.get_slice_views()
        if views:  # a loaded SAM model: the embedding store is looked up now, not at the first click
            self.controllers[SegmentAnythingEffect].shared.case_opened(views[0].get_view_node())

    def refresh_display(self):
        """Re-apply the viewer settings (after segments were added or replaced)."""
        self._on_settings()

    def save_segmentation(self):
        """Write the segmentation as .seg.nrrd next to the case (or ./mva-output when that folder is read-only)."""
        if self.workflow is not None:
            raise CaseNotFoundError("This server serves a workflow project: use Save in the case panel")
        node = self.editor.active_segmentation_node
        path = segmentation_path_for(self.current_case, for_writing=True)
        save_segmentation_node(self.slicer_app.scene, node, path)
        self.state.tool_message = f"Saved {path}"
        return path

    # --- tools ----------------------------------------------------------------------------------------------
    def activate_smart_tool(self, name):
        effect_type = {effect.__name__: effect for effect in SMART_EFFECTS}.get(name)
        if effect_type is None:
            self.show_tool_error(f"Unknown tool {name!r}")
            return None
        if self.read_only:
            self.show_tool_error(str(ReadOnlyCaseError("This case is open for review: it cannot be edited here")))
            return None
        if not self.editor.active_segment_id:
            self.state.tool_message = "Open a case and select a segment first"
            return None
        return self.editor.set_active_effect_type(effect_type)

    def set_read_only(self, read_only):
        """Review mode: no tool may edit (refused here on the server, not only hidden in the page)."""
        self.read_only = bool(read_only)
        self.state.read_only = self.read_only
        if self.read_only:
            self.editor.deactivate_effect()

    def show_tool_error(self, text):
        """A tool failure as a snackbar message."""
        self.state.tool_error = text
        self.state.tool_message = text
        self.state.flush()

    async def _show_progress(self):
        """Push the running job's progress to the page a few times a second (the worker only sets a number)."""
        while True:
            await asyncio.sleep(0.25)
            runner, state = self.runner, self.state
            fraction, estimated = runner.estimated_progress()
            busy, progress = runner.busy, None if fraction is None else round(fraction * 100)
            if state.job_busy != busy or state.job_progress != progress:
                state.job_busy, state.job_label, state.job_progress = busy, runner.kind, progress
                state.job_progress_estimated = estimated
                state.flush()

    def _on_effect_changed(self, effect_name):
        if self.read_only and effect_name:
            self.editor.deactivate_effect()  # trame-slicer's own effects (paint, erase, ...) too
            self.state.tool_message = "This case is open for review: it cannot be edited here"
            return
        effect = next((e for e in SMART_EFFECTS if e.get_effect_name() == effect_name), None)
        self.state.smart_tool = effect.__name__ if effect else ""
        if self.workflow is not None:
            self.workflow.on_tool_changed(tool_title(effect_name))
        self.overlay.clear()  # a preview or regions of the previous tool no longer apply

    def _on_overlay_change(self, counts):
        self.state.overlay_pixels = counts

    def controller(self, effect_type):
        return self.controllers[effect_type]

    def propagation_end_here(self):
        if self.read_only:  # refused on the server, not only hidden in the page
            self.show_tool_error("This case is open for review: it cannot be edited here")
            return None
        return self.controllers[SmartPropagationEffect].end_here()

    def controllers_sam_new_object(self):
        self.controllers[SegmentAnythingEffect].new_object()

    def escape(self):
        self.controllers_sam_new_object()
        self.editor.deactivate_effect()

    def _guarded(self, action):
        try:
            action()
        except ValueError as error:
            self.show_tool_error(str(error))

    def _on_job_start(self, label):
        self.state.tool_status = f"{label}: working…"
        self.state.flush()

    def _on_job_done(self, result):
        self.state.last_latency_ms = round(result.seconds * 1000)
        self.state.jobs_done = (self.state.jobs_done or 0) + 1
        text = f"{result.label}: {result.seconds * 1000:.0f} ms"
        self.state.tool_status = text + (f" — {result.error}" if result.error else "")
        controller = next((c for c in self.controllers.values() if c.name == result.label), None)
        if self.workflow is not None and not result.error and controller is not None:  # a tool's job, not a save
            self.workflow.on_tool_job(result.label)
        self.state.tool_message = result.error or (controller.message if controller else "")
        if result.error:
            self.state.tool_error = f"{result.label}: {result.error}"
        self.state.job_busy, self.state.job_progress = False, None
        self.state.flush()

    # --- options -------------------------------------------------------------------------------------------
    def _on_brush_options(self, brush_radius_mm=5.0, brush_auto_apply=True, brush_mode="fill", **_):
        options = self.controllers[SmartBrushEffect].options
        options.radius_mm, options.auto_apply = float(brush_radius_mm), bool(brush_auto_apply)
        options.mode = brush_mode if brush_mode in ("fill", "assist", "3d") else "fill"

    def _on_regions_options(self, regions_size_mm=16.0, regions_mode="3d", regions_smart_merge=True, **_):
        options = self.controllers[SmartRegionsEffect].options
        options.region_size_mm, options.mode = float(regions_size_mm), regions_mode
        options.merge_tolerance = "auto" if regions_smart_merge else None

    def _on_propagation_options(self, propagation_strategy="auto", propagation_direction="both",
                                propagation_max_slices=50, **_):
        options = self.controllers[SmartPropagationEffect].options
        options.strategy, options.direction = propagation_strategy, propagation_direction
        options.max_slices = int(propagation_max_slices)

    def _on_sam_options(self, sam_model="none", sam_checkpoint="", sam_input_size="full", **_):
        if sam_model in DEVELOPER_MODELS and not self.developer:
            self.show_tool_error(f"The {sam_model!r} model has random weights: start the server with --developer")
            sam_model = self.state.sam_model = "none"
        options = self.controllers[SegmentAnythingEffect].options
        options.model, options.checkpoint = sam_model, sam_checkpoint or ""
        options.input_size = str(sam_input_size or "full")

    def _on_settings(self, **_):
        state, settings = self.state, self.settings
        settings.label_fill = bool(state.settings_fill if state.settings_fill is not None else True)
        settings.label_opacity = float(state.settings_opacity if state.settings_opacity is not None else 0.5)
        settings.overlays_visible = bool(state.settings_overlays if state.settings_overlays is not None else True)
        settings.interpolate = bool(state.settings_interpolate if state.settings_interpolate is not None else True)
        settings.scroll_speed = int(state.settings_scroll_speed or 1)
        settings.window_level_preset = state.settings_preset or "Auto"
        apply_segmentation_display(self.editor.active_segmentation_node, settings)
        self.overlay.set_visible(settings.overlays_visible)
        apply_volume_display(self.editor.active_volume_node, settings)

    def show_3d(self, visible):
        """Slice-only layout (default: CPU volume rendering blocks the server) or axial + 3D + MPR."""
        layout_id = THREE_D_LAYOUT if visible else SLICE_ONLY_LAYOUT
        self.layout_logic.data.current_layout_id = layout_id
        self.layout_manager.set_layout(layout_id)
        volume = self.editor.active_volume_node
        rendering = self.slicer_app.volume_rendering
        if volume is not None and rendering.has_vr_display_node(volume):
            rendering.get_vr_display_node(volume).SetVisibility(bool(visible))

    def step_slice(self, direction):
        volume = self.editor.active_volume_node
        for view in self.slicer_app.view_manager.get_slice_views():
            if view.get_view_node() is not None and volume is not None:
                step_slice(view.get_view_node(), volume, int(direction) * self.settings.scroll_speed)

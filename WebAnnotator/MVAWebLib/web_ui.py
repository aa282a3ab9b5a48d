"""The page: trame-slicer's segment editor panel plus the smart tools, viewer settings and case panels."""
from SegmentAnythingLib.engine_factory import INPUT_SIZE_LABELS
from trame.widgets import client, html
from trame.widgets.vuetify3 import (
    VBtn,
    VCard,
    VCardText,
    VCardTitle,
    VCheckbox,
    VDialog,
    VDivider,
    VProgressLinear,
    VSelect,
    VSlider,
    VSnackbar,
    VSwitch,
    VTable,
    VTextField,
)
from trame_slicer.app.ui import (
    LayoutButton,
    SegmentEditorUI,
    SegmentEditorUndoRedoUI,
    ViewerLayout,
)

from MVAWebLib import workflow_ui
from MVAWebLib.smart_effects import SMART_EFFECTS
from MVAWebLib.viewer_settings import KEYBOARD_SHORTCUTS, WINDOW_LEVEL_PRESETS

# Keys go to buttons by element id, so shortcuts need no server round trip of their own.
KEYS_SCRIPT = """
document.addEventListener('keydown', (e) => {
  if (['INPUT', 'TEXTAREA'].includes(e.target.tagName)) return;
  const ids = {'z': e.ctrlKey ? 'mva-undo' : null, 'y': e.ctrlKey ? 'mva-redo' : null,
    'ArrowUp': 'mva-slice-up', 'ArrowDown': 'mva-slice-down', 'b': 'mva-tool-0', 'r': 'mva-tool-1',
    'p': 'mva-tool-2', 's': 'mva-tool-3', 'Escape': 'mva-escape', 'c': 'mva-sam-next', 'o': 'mva-overlays',
    'f': 'mva-fullscreen', '?': 'mva-help', 'e': e.ctrlKey ? null : 'mva-propagation-end-here'};
  const id = ids[e.key];
  const button = id && document.getElementById(id);
  if (button) { e.preventDefault(); button.click(); }
});
document.addEventListener('click', (e) => {
  if (e.target.closest && e.target.closest('#mva-fullscreen')) {
    if (document.fullscreenElement) document.exitFullscreen(); else document.documentElement.requestFullscreen();
  }
});
"""


def build_page(app):
    """Build the page of `app` (an MVAWebApp); returns the ViewerLayout."""
    server = app.server
    with ViewerLayout(server, title="SegmentAnythingMVA", is_drawer_visible=True) as layout:
        client.Script(KEYS_SCRIPT)
        with layout.appbar, html.Div(v_if="!workflow_mode", classes="d-flex align-center"):
            VSelect(v_model=("case_path",), items=("case_items", []), item_title="title", item_value="path",
                    label="Case", density="compact", hide_details=True, style="max-width: 360px;", id="mva-case")
            VBtn("Open", click=app.ctrl.open_case, id="mva-open", classes="ml-2")
            VBtn("Save", click=app.ctrl.save_segmentation, id="mva-save", classes="ml-2",
                 disabled=("!is_volume_loaded",))
            html.Span("{{ load_message }}", classes="ml-4 text-caption", id="mva-load-message")
        with layout.appbar:
            VBtn(icon="mdi-fullscreen", id="mva-fullscreen", classes="ml-2", variant="text")
            VBtn(icon="mdi-keyboard", click="show_help = !show_help", id="mva-help", variant="text")
            html.Span("{{ load_message }}", classes="ml-4 text-caption", id="mva-wf-load-message",
                      v_if="workflow_mode")
            workflow_ui.account_bar(app.ctrl)
        with layout.drawer:
            workflow_ui.messages()
            workflow_ui.queue_panel(app.ctrl)
            workflow_ui.case_panel(app.ctrl)
            with html.Div(v_show="!read_only", id="mva-edit-tools"):
                _smart_tools_panel(app)
                VDivider()
                app.segment_editor_ui = SegmentEditorUI(style="height: 520px;")
                VDivider()
            html.Div("Review: read-only viewer", v_if="read_only", classes="text-caption ma-2", id="mva-read-only")
            _viewer_settings_panel()
        with layout.toolbar:
            app.layout_button = LayoutButton(classes="mt-1")
        with layout.undo_redo:
            SegmentEditorUndoRedoUI(editor_ui=app.segment_editor_ui)
            VBtn(click=app.segment_editor_ui.undo_clicked, id="mva-undo", style="display:none;")
            VBtn(click=app.segment_editor_ui.redo_clicked, id="mva-redo", style="display:none;")
            VBtn(click=(app.ctrl.step_slice, "[1]"), id="mva-slice-up", style="display:none;")
            VBtn(click=(app.ctrl.step_slice, "[-1]"), id="mva-slice-down", style="display:none;")
            VBtn(click=app.ctrl.escape, id="mva-escape", style="display:none;")
            VBtn(click="settings_overlays = !settings_overlays", id="mva-overlays", style="display:none;")
        with layout.footer:
            html.Span("{{ tool_status }}", classes="text-caption mx-2", id="mva-tool-status")
            progress_bar(app.ctrl)
        with layout.content:
            app.layout_manager.initialize_layout_grid(layout)
        _help_dialog()
        error_snackbar(app.ctrl)
        workflow_ui.login_dialog(app.ctrl)
        workflow_ui.unsaved_dialog(app.ctrl)
        workflow_ui.restore_dialog(app.ctrl)
        workflow_ui.redirect()
        workflow_ui.before_unload()
    return layout


def error_snackbar(ctrl):
    """Every error of the page (workflow and tools) as a readable message; a conflict also offers Reload."""
    with VSnackbar(model_value=("!!(wf_error || tool_error)",), color="error", timeout=-1, location="top",
                   update_modelValue="wf_error = ''; tool_error = ''", id="mva-snackbar"):
        html.Div("{{ wf_error || tool_error }}", id="mva-wf-error")
        with html.Template(v_slot_actions=True):
            VBtn("Reload", v_if="wf_conflict", click=ctrl.wf_reload, variant="flat", id="mva-wf-reload")
            VBtn("Close", click="wf_error = ''; tool_error = ''", variant="text", id="mva-snackbar-close")


def progress_bar(ctrl):
    """The running tool job: a bar (determinate once the job reports progress) and Cancel."""
    with html.Div(v_if="job_busy", classes="d-flex align-center flex-grow-1 mx-2", id="mva-progress"):
        VProgressLinear(model_value=("job_progress || 0",), indeterminate=("job_progress === null",), height=8,
                        color="primary", classes="flex-grow-1", id="mva-progress-bar")
        html.Span("{{ job_label }} {{ job_progress === null ? '' : (job_progress_estimated ? 'about ' : '') + "
                  "job_progress + ' %' }}", classes="text-caption mx-2", id="mva-progress-text")
        VBtn("Cancel", click=ctrl.job_cancel, size="x-small", variant="tonal", id="mva-progress-cancel")


BRUSH_MODES = [{"title": "Fill (this slice)", "value": "fill"},
               {"title": "3D (learns from strokes on any slice)", "value": "3d"}]


def _smart_tools_panel(app):
    with VCard(variant="flat"):
        VCardTitle("Smart tools", classes="text-subtitle-1")
        with VCardText(classes="py-1"):
            for index, effect in enumerate(SMART_EFFECTS):
                VBtn(effect.title, prepend_icon=effect.icon, size="small", classes="ma-1",
                     id=f"mva-tool-{index}", click=(app.ctrl.activate_smart_tool, f"['{effect.__name__}']"),
                     color=(f"smart_tool === '{effect.__name__}' ? 'primary' : undefined",))
            with html.Div(v_if="smart_tool === 'SmartBrushEffect'"):
                VSelect(v_model=("brush_mode", "fill"), items=("brush_modes", BRUSH_MODES), item_title="title",
                        item_value="value", label="Mode", density="compact", hide_details=True, id="mva-brush-mode",
                        title="Fill: previews similar tissue on the slice. 3D: strokes on any slice view train one "
                              "classifier that predicts the whole object in 3D (about a second per stroke).")
                VSlider(v_model=("brush_radius_mm", 5.0), min=1, max=30, step=1, label="Radius (mm)",
                        thumb_label=True, hide_details=True)
                VSwitch(v_model=("brush_auto_apply", True), label="Apply after each stroke", hide_details=True,
                        density="compact")
                VBtn("Apply", click=app.ctrl.brush_apply, size="small", disabled=("brush_auto_apply",),
                     id="mva-brush-apply")
                VBtn("Predict 3D", click=app.ctrl.brush_predict_3d, size="small", classes="ml-1",
                     disabled=("job_busy",), id="mva-brush-predict-3d")
            with html.Div(v_if="smart_tool === 'SmartRegionsEffect'"):
                VSlider(v_model=("regions_size_mm", 16.0), min=4, max=40, step=1, label="Region size (mm)",
                        thumb_label=True, hide_details=True)
                VSelect(v_model=("regions_mode", "3d"), items=("['3d', '2d']",), label="Regions",
                        density="compact", hide_details=True)
                VSwitch(v_model=("regions_smart_merge", True), label="Smart merge", hide_details=True,
                        density="compact")
                VBtn("Compute regions now", click=app.ctrl.regions_compute, size="small", disabled=("job_busy",),
                     id="mva-regions-compute")
            with html.Div(v_if="smart_tool === 'SmartPropagationEffect'"):
                VSelect(v_model=("propagation_strategy", "auto"),
                        items=("['auto', 'registration', 'sam', 'sam2', 'interpolation', 'copy']",), label="Strategy",
                        density="compact", hide_details=True)
                VSelect(v_model=("propagation_direction", "both"), items=("['both', 'forward', 'backward']",),
                        label="Direction", density="compact", hide_details=True)
                VSlider(v_model=("propagation_max_slices", 50), min=1, max=200, step=1, label="Max slices",
                        thumb_label=True, hide_details=True)
                html.Div("Click the slice you drew to propagate it.", classes="text-caption")
                VBtn("End here (E)", click=app.ctrl.propagation_end_here, size="small", disabled=("job_busy",),
                     id="mva-propagation-end-here", title="The object is not on this slice: take back what "
                     "propagation wrote on it and beyond it (your own drawing stays; one undo step)")
            with html.Div(v_if="smart_tool === 'SegmentAnythingEffect'"):
                VSelect(v_model=("sam_model", "none"), items=("sam_models",), label="Model",
                        density="compact", hide_details=True, id="mva-sam-model")
                VTextField(v_model=("sam_checkpoint", ""), label="Checkpoint file (optional)", density="compact",
                           hide_details=True)
                VSelect(v_model=("sam_input_size", "full"), label="Encoder input", density="compact", hide_details=True,
                        items=("sam_input_size_items",
                               [{"title": label, "value": value} for value, label in INPUT_SIZE_LABELS.items()]))
                VBtn("Next candidate (C)", click=app.ctrl.sam_next, size="small", id="mva-sam-next", classes="ma-1")
                VBtn("New object (Esc)", click=app.ctrl.sam_new_object, size="small", classes="ma-1")
            html.Div("{{ tool_message }}", classes="text-caption", id="mva-tool-message")


def _viewer_settings_panel():
    with VCard(variant="flat"):
        VCardTitle("Viewer", classes="text-subtitle-1")
        with VCardText(classes="py-1"):
            VSwitch(v_model=("show_3d", False), label="3D view (slow without a GPU)", hide_details=True,
                    density="compact", id="mva-show-3d")
            VSwitch(v_model=("settings_fill", True), label="Label fill (off: outlines only)", hide_details=True,
                    density="compact")
            VSlider(v_model=("settings_opacity", 0.5), min=0, max=1, step=0.05, label="Label opacity",
                    hide_details=True)
            VCheckbox(v_model=("settings_overlays", True), label="Overlays", hide_details=True, density="compact")
            VSwitch(v_model=("settings_interpolate", True), label="Linear interpolation (off: nearest)",
                    hide_details=True, density="compact")
            VSlider(v_model=("settings_scroll_speed", 1), min=1, max=10, step=1, label="Scroll speed",
                    thumb_label=True, hide_details=True)
            VSelect(v_model=("settings_preset", "Auto"), items=(repr(list(WINDOW_LEVEL_PRESETS)),),
                    label="Window/level", density="compact", hide_details=True)


def _help_dialog():
    with VDialog(v_model=("show_help", False), max_width=520), VCard():
        VCardTitle("Keyboard shortcuts")
        with VCardText(), VTable(density="compact", id="mva-help-table"), html.Tbody():
            for keys, action in KEYBOARD_SHORTCUTS:
                with html.Tr():
                    html.Td(keys)
                    html.Td(action)

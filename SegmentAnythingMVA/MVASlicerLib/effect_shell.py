"""What the four desktop effects share: Slicer callbacks -> controller calls, a Reaction -> widgets and overlays.

Facts relied on ([S] = Slicer/Slicer, Modules/Loadable/Segmentations/): the editor calls processInteractionEvents
for interactor events and processViewNodeEvents for slice node changes (Widgets/qMRMLSegmentEditorWidget.cxx
processEvents); a Python bool must come back (EditorEffects/qSlicerSegmentEditorScriptedEffect.cxx:375);
confirmCurrentSegmentVisible() returns NotConfirmed (0) when the user cancels
(EditorEffects/qSlicerSegmentEditorAbstractEffect.cxx:733).
"""
import logging

import qt
import slicer
import vtk

from MVASlicerLib.view_overlay import ViewOverlay

LAYER_STYLE = {"preview": ((1.0, 0.85, 0.2), 0.5), "uncertainty": ((1.0, 0.2, 0.9), 0.5),
               "boundaries": ((0.3, 0.9, 1.0), 0.6), "hover": ((1.0, 1.0, 1.0), 0.35)}
POLL_MS = 100


class EffectShell:
    """Holds one controller (and so one bridge) per effect instance for the effect's whole life."""

    def __init__(self, scripted_effect, make_controller, needs_torch=False):
        self.effect = scripted_effect
        self.make_controller = make_controller  # (bridge, confirm_edit) -> ToolController
        self.needs_torch = needs_torch
        self.controller = None
        self.overlays = {}  # (view name, layer) -> ViewOverlay, created once each
        self.status_label = None
        self.timer = qt.QTimer()
        self.timer.setInterval(POLL_MS)
        self.timer.connect("timeout()", self.poll)

    def confirm_edit(self):
        return bool(self.effect.confirmCurrentSegmentVisible())  # 0 = NotConfirmed: Slicer's effects stop there

    def run(self, action):
        """Run `action(controller)` as a user action: errors of any kind become a message, never a traceback."""
        try:
            if self.controller is None:
                from MVASlicerLib.dependencies import ensure_dependencies
                ensure_dependencies(torch=self.needs_torch)  # asks once; inside the guard
                from MVABridgeLib.edit_backend import EffectBackend, SegmentEditBridge
                self.controller = self.make_controller(SegmentEditBridge(EffectBackend(self.effect)), self.confirm_edit)
            reaction = action(self.controller)
        except Exception as error:  # noqa: BLE001 - the user boundary: show it, change nothing
            logging.exception("%s", self.effect.name)
            return self.show_message(f"{self.effect.name}: {error}")
        return self.show(reaction)

    def controller_without_asking(self):
        """The controller, made now if needed without the dependency prompt: for work started by Slicer (a volume
        selected) once the libraries are known to be there (a loaded model)."""
        if self.controller is None:
            from MVABridgeLib.edit_backend import EffectBackend, SegmentEditBridge
            self.controller = self.make_controller(SegmentEditBridge(EffectBackend(self.effect)), self.confirm_edit)
        return self.controller

    def event(self, interactor, event_id, view_widget):
        """processInteractionEvents: returns True when the controller used the event."""
        from MVAControllersLib.view_events import EventKind, ViewEvent
        kinds = {vtk.vtkCommand.LeftButtonPressEvent: EventKind.PRESS, vtk.vtkCommand.MouseMoveEvent: EventKind.MOVE,
                 vtk.vtkCommand.LeftButtonReleaseEvent: EventKind.RELEASE, vtk.vtkCommand.KeyPressEvent: EventKind.KEY}
        if event_id not in kinds or view_widget.className() != "qMRMLSliceWidget":
            return False
        if self.controller is None and kinds[event_id] in (EventKind.MOVE, EventKind.RELEASE):
            return False  # only a press (or a key) starts the tool: moves never ask to install, a release not twice
        event = ViewEvent(kinds[event_id], tuple(interactor.GetEventPosition()), view_widget.mrmlSliceNode(),
                          bool(interactor.GetShiftKey()), bool(interactor.GetControlKey()),
                          bool(interactor.GetAltKey()), interactor.GetKeySym() or "")
        reaction = self.run(lambda controller: controller.handle(event))
        return bool(reaction is not None and reaction.consumed)

    def show(self, reaction):
        if reaction is None:
            return None
        if reaction.message:
            self.show_message(reaction.message)
        elif reaction.status and self.status_label is not None:
            self.status_label.text = reaction.status
        if reaction.job is not None or (self.controller is not None and self.controller.working):
            self.timer.start()
        if reaction.redraw:
            self.redraw()
        return reaction

    def show_message(self, text):
        logging.warning("%s", text)
        if self.status_label is not None:
            self.status_label.text = text
        slicer.util.errorDisplay(text)
        return None

    def poll(self):
        if self.controller is None or not self.controller.working:
            self.timer.stop()
            return
        reaction = self.controller.poll()
        if not self.controller.working:
            self.timer.stop()
        self.show(reaction)

    def slice_widgets(self):
        layout = slicer.app.layoutManager()
        return [layout.sliceWidget(name) for name in layout.sliceViewNames() if layout.sliceWidget(name)]

    def redraw(self, widgets=None):
        """Draw the controller's overlays in each slice view (in that view's pixels; hidden when absent)."""
        for widget in widgets or self.slice_widgets():
            name = widget.mrmlSliceNode().GetLayoutName()
            shown = self.controller.view_overlays(widget.mrmlSliceNode()) if self.controller else {}
            for layer, (colour, opacity) in LAYER_STYLE.items():
                key = (name, layer)
                if layer in shown and shown[layer].any():
                    if key not in self.overlays:  # one actor per view and layer, never one per call
                        self.overlays[key] = ViewOverlay(widget, colour=colour, opacity=opacity)
                    self.overlays[key].show_view_mask(shown[layer])
                elif key in self.overlays:
                    self.overlays[key].hide()

    def deactivate(self):
        self.timer.stop()
        if self.controller is not None:
            self.controller.deactivate()
        for overlay in self.overlays.values():
            overlay.remove()
        self.overlays = {}

    def button(self, text, action, tooltip=""):
        button = qt.QPushButton(text)
        button.toolTip = tooltip
        button.connect("clicked()", lambda: self.run(action))
        return button

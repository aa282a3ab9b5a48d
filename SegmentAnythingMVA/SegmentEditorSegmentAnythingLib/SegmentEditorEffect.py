"""Segment Anything effect (Qt shell over MVAControllersLib's SegmentAnythingController). "New object" is N: the
Segment Editor's Esc shortcut deactivates the effect before a view sees the key (Widgets/qMRMLSegmentEditorWidget.cxx
installKeyboardShortcuts); C, N and the mouse are free of editor shortcuts there."""
import logging

import qt
from slicer.i18n import tr as _
from SegmentEditorEffects import AbstractScriptedSegmentEditorEffect

from MVASlicerLib.effect_shell import EffectShell
from MVASlicerLib.effect_support import clone_effect, effect_icon

SCROLL_SETTLE_MS = 300  # embed around a view once its scrolling settles


class SegmentEditorEffect(AbstractScriptedSegmentEditorEffect):
    def __init__(self, scriptedEffect):
        scriptedEffect.name = "Segment Anything"
        scriptedEffect.title = _("Segment Anything")
        AbstractScriptedSegmentEditorEffect.__init__(self, scriptedEffect)
        self.shell = EffectShell(scriptedEffect, self.makeController, needs_torch=True)
        self.scrolledNode = None
        self.scrollTimer = qt.QTimer()
        self.scrollTimer.setSingleShot(True)
        self.scrollTimer.setInterval(SCROLL_SETTLE_MS)
        self.scrollTimer.connect("timeout()", self.prefetchScrolledView)

    def makeController(self, bridge, confirm_edit):
        from MVAControllersLib.segment_anything_controller import SegmentAnythingController
        from MVAControllersLib.segment_anything_prompts import publish
        from MVASlicerLib.sam_session import engines, worker_runner
        controller = SegmentAnythingController(bridge, engines(), worker_runner(), confirm_edit=confirm_edit)
        publish(controller)  # Smart Propagation (strategy sam2) propagates from this object's prompts
        return controller

    def clone(self):
        return clone_effect(__file__)

    def icon(self):
        return effect_icon(__file__)

    def helpText(self):
        return "<html>" + _(
            "<b>Click</b>: include this point; <b>shift+click</b>: exclude it; <b>ctrl+drag</b>: box. "
            "Each prompt refines the previous mask on this slice and is one undo step. <b>C</b> cycles the three "
            "candidate masks; <b>N</b> starts a new object (Esc leaves the effect, as everywhere in the Segment "
            "Editor). Works in any slice view, oblique included. The first click loads the model chosen in the "
            "SegmentAnythingMVA module (with progress); embeddings of neighbouring slices are computed in the "
            "background.</html>")

    def setupOptionsFrame(self):
        for text, action in ((_("Next candidate (C)"), lambda c: c.cycle_candidate()),
                             (_("New object (N)"), lambda c: c.new_object()), (_("Cancel"), lambda c: c.cancel())):
            self.scriptedEffect.addOptionsWidget(self.shell.button(text, action))
        self.shell.status_label = self.statusLabel = qt.QLabel(_("Click on a slice to start"))
        self.statusLabel.wordWrap = True
        self.scriptedEffect.addOptionsWidget(self.statusLabel)

    def processInteractionEvents(self, callerInteractor, eventId, viewWidget):
        return self.shell.event(callerInteractor, eventId, viewWidget)

    def processViewNodeEvents(self, callerViewNode, eventId, viewWidget):
        if viewWidget.className() == "qMRMLSliceWidget":
            self.scrolledNode = viewWidget.mrmlSliceNode()
            self.scrollTimer.start()  # restarts while scrolling

    def prefetchScrolledView(self):
        if self.shell.controller is not None and self.scrolledNode is not None:
            self.shell.controller.view_changed(self.scrolledNode)  # never loads a model, never shows errors
            if self.shell.controller.working:
                self.shell.timer.start()  # collects the worker's prefetched embeddings

    def activate(self):
        self.lookUpStoredSlices()

    def sourceVolumeNodeChanged(self):
        self.lookUpStoredSlices()  # called for every registered effect (W/qMRMLSegmentEditorWidget.cxx:432)

    def lookUpStoredSlices(self):
        """With the model loaded, look the selected volume up in the embedding store now (its digest, axes, the
        decoder warmed), so the first click only reads its record. Quiet: nothing is asked or shown as an error."""
        from MVASlicerLib.sam_session import engines
        widgets = self.shell.slice_widgets()
        if engines().loaded() is None or not widgets:
            return
        reaction = self.shell.controller_without_asking().case_opened(widgets[0].mrmlSliceNode())
        if reaction.message:
            logging.info("%s", reaction.message)  # e.g. no volume selected yet: the first click says it
        elif reaction.status and self.shell.status_label is not None:
            self.shell.status_label.text = reaction.status

    def deactivate(self):
        self.scrollTimer.stop()
        self.shell.deactivate()

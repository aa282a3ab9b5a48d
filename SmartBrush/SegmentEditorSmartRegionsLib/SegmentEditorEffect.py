"""Smart Regions effect (Qt shell over MVAControllersLib's SmartRegionsController): click or drag over regions
to add them, shift removes; the region under the cursor is highlighted once regions exist."""
import qt
from slicer.i18n import tr as _
from SegmentEditorEffects import AbstractScriptedSegmentEditorEffect

from MVASlicerLib.effect_shell import EffectShell
from MVASlicerLib.effect_support import ParameterWidgets, clone_effect, effect_icon


class SegmentEditorEffect(AbstractScriptedSegmentEditorEffect):
    def __init__(self, scriptedEffect):
        scriptedEffect.name = "Smart Regions"
        scriptedEffect.title = _("Smart Regions")
        AbstractScriptedSegmentEditorEffect.__init__(self, scriptedEffect)
        self.shell = EffectShell(scriptedEffect, self.makeController)
        self.parameters = ParameterWidgets(scriptedEffect)

    def makeController(self, bridge, confirm_edit):
        from MVAControllersLib.smart_regions_controller import SmartRegionsController
        from MVASlicerLib.sam_session import worker_runner
        return SmartRegionsController(bridge, worker_runner(), confirm_edit=confirm_edit)

    def clone(self):
        return clone_effect(__file__)

    def icon(self):
        return effect_icon(__file__)

    def helpText(self):
        return "<html>" + _(
            "Click a region to add it to the selected segment; <b>shift+click</b> removes it; drag to paint over "
            "regions. Regions follow intensity edges: <b>3D</b> uses supervoxels of the whole volume (computed once, "
            "in the background), <b>2D</b> superpixels of the clicked slice. <b>Smart merge</b> also takes similar "
            "neighbouring regions. Each click is one undo step and honours the masking and overwrite settings.</html>")

    def setupOptionsFrame(self):
        self.parameters.number(_("Region size:"), "RegionSizeMm", 16.0, 2, 60, 1, " mm")
        self.parameters.number(_("Compactness:"), "Compactness", 0.5, 0, 1, 0.05)
        self.parameters.combo(_("Regions:"), "Mode", ["3d", "2d"], "3d")
        self.parameters.check(_("Smart merge (take similar neighbouring regions)"), "SmartMerge", True)
        self.parameters.check(_("Show region boundaries"), "ShowBoundaries", True)
        for text, action in ((_("Compute regions"), lambda c: c.compute_regions()), (_("Cancel"), lambda c: c.cancel())):
            self.scriptedEffect.addOptionsWidget(self.shell.button(text, lambda c, a=action: self.withOptions(c, a)))
        self.shell.status_label = self.statusLabel = qt.QLabel()
        self.scriptedEffect.addOptionsWidget(self.statusLabel)

    def setMRMLDefaults(self):
        self.parameters.set_defaults()

    def updateGUIFromMRML(self):
        self.parameters.to_gui()

    def updateMRMLFromGUI(self):
        self.parameters.to_mrml()
        if self.shell.controller is not None:
            self.withOptions(self.shell.controller, lambda c: self.shell.redraw())

    def withOptions(self, controller, action):
        values, options = self.parameters.values(), controller.options
        options.region_size_mm, options.compactness = values["RegionSizeMm"], values["Compactness"]
        options.mode, options.show_boundaries = values["Mode"], values["ShowBoundaries"]
        options.merge_tolerance = "auto" if values["SmartMerge"] else None
        return action(controller)

    def processInteractionEvents(self, callerInteractor, eventId, viewWidget):
        if self.shell.controller is not None:
            self.withOptions(self.shell.controller, lambda c: None)
        return self.shell.event(callerInteractor, eventId, viewWidget)

    def processViewNodeEvents(self, callerViewNode, eventId, viewWidget):
        if viewWidget.className() == "qMRMLSliceWidget":
            self.shell.redraw([viewWidget])  # boundaries and highlight follow scroll, pan and zoom

    def deactivate(self):
        self.shell.deactivate()

"""Smart Propagation effect (Qt shell over MVAControllersLib's SmartPropagationController): preview from the
slice of the chosen view (in the background, with progress), Apply as one undo step, re-propagate."""
import qt
import slicer
from slicer.i18n import tr as _
from SegmentEditorEffects import AbstractScriptedSegmentEditorEffect

from MVASlicerLib.effect_shell import EffectShell
from MVASlicerLib.effect_support import ParameterWidgets, clone_effect, effect_icon
from SmartPropagationLib.propagation_options import STRATEGIES


class SegmentEditorEffect(AbstractScriptedSegmentEditorEffect):
    def __init__(self, scriptedEffect):
        scriptedEffect.name = "Smart Propagation"
        scriptedEffect.title = _("Smart Propagation")
        scriptedEffect.perSegment = True
        AbstractScriptedSegmentEditorEffect.__init__(self, scriptedEffect)
        self.shell = EffectShell(scriptedEffect, self.makeController)
        self.parameters = ParameterWidgets(scriptedEffect)

    def makeController(self, bridge, confirm_edit):
        from MVAControllersLib.smart_propagation_controller import SmartPropagationController
        return SmartPropagationController(bridge, confirm_edit=confirm_edit)

    def clone(self):
        return clone_effect(__file__)

    def icon(self):
        return effect_icon(__file__)

    def helpText(self):
        return "<html>" + _(
            "Draw the object on one slice, choose the view to work in and press <b>Preview</b>: the segment is "
            "carried to neighbouring slices until the object ends (the reason is shown). <b>Apply</b> writes it as "
            "one undo step and never changes the slices you drew. After correcting a slice, <b>Re-propagate from "
            "here</b> updates only the slices beyond it. With two or more drawn slices, <i>auto</i> interpolates "
            "between them.</html>")

    def setupOptionsFrame(self):
        self.parameters.combo(_("Strategy:"), "Strategy", STRATEGIES, "auto")
        self.parameters.combo(_("Direction:"), "Direction", ["both", "forward", "backward"], "both")
        self.parameters.number(_("At most:"), "MaxSlices", 50, 1, 1000, 1, " slices")
        self.viewCombo = qt.QComboBox()
        self.viewCombo.addItems(slicer.app.layoutManager().sliceViewNames())
        self.scriptedEffect.addLabeledOptionsWidget(_("View:"), self.viewCombo)
        for text, action in ((_("Preview"), lambda c: c.preview(self.sliceNode())),
                             (_("Apply"), lambda c: c.apply()),
                             (_("Re-propagate from here"), lambda c: c.preview(self.sliceNode(), repropagate=True)),
                             (_("Cancel"), lambda c: c.clear_preview())):
            self.scriptedEffect.addOptionsWidget(self.shell.button(text, lambda c, a=action: self.withOptions(c, a)))
        self.shell.status_label = self.statusLabel = qt.QLabel()
        self.statusLabel.wordWrap = True
        self.scriptedEffect.addOptionsWidget(self.statusLabel)

    def sliceNode(self):
        widget = slicer.app.layoutManager().sliceWidget(self.viewCombo.currentText)
        if widget is None:
            raise ValueError(f"There is no slice view named {self.viewCombo.currentText!r} in this layout")
        return widget.mrmlSliceNode()

    def setMRMLDefaults(self):
        self.parameters.set_defaults()

    def updateGUIFromMRML(self):
        self.parameters.to_gui()

    def updateMRMLFromGUI(self):
        self.parameters.to_mrml()

    def withOptions(self, controller, action):
        values, options = self.parameters.values(), controller.options
        options.strategy, options.direction = values["Strategy"], values["Direction"]
        options.max_slices = int(values["MaxSlices"])
        return action(controller)

    def processViewNodeEvents(self, callerViewNode, eventId, viewWidget):
        if viewWidget.className() == "qMRMLSliceWidget":
            self.shell.redraw([viewWidget])  # the preview follows scroll, pan and zoom

    def deactivate(self):
        self.shell.deactivate()

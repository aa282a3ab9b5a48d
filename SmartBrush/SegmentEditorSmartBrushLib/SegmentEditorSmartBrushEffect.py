"""Smart Brush effect (Qt shell): Slicer's paint brush draws a stroke, MVAControllersLib's SmartBrushController
learns from it. Paint adaptor facts (Modules/Loadable/Segmentations/EditorEffects/): the module is named after this
file (qSlicerSegmentEditorScriptedPaintEffect.cxx:135, hence the unique name); processInteractionEvents and
processViewNodeEvents are not forwarded (:78-92), so erase is a mode and slice nodes are observed here; a stroke
starts only without modifier keys (qSlicerSegmentEditorPaintEffect.cxx:1157); paintApply gets 3D views too when
"edit in 3D views" is on, and a raising paintApply falls back to plain paint (ScriptedPaintEffect.cxx:419-423)."""
import qt
from slicer.i18n import tr as _
from SegmentEditorEffects import AbstractScriptedSegmentEditorPaintEffect

from MVASlicerLib.effect_shell import EffectShell
from MVASlicerLib.effect_support import (ParameterWidgets, clone_effect, effect_icon, observe_slice_nodes,
                                         remove_observations)

MODE_3D_TEXT = "3D (learns from strokes on any slice)"  # the combo's text; the controller's mode is "3d"


class SegmentEditorSmartBrushEffect(AbstractScriptedSegmentEditorPaintEffect):
    def __init__(self, scriptedEffect):
        scriptedEffect.name = "Smart Brush"
        scriptedEffect.title = _("Smart Brush")
        AbstractScriptedSegmentEditorPaintEffect.__init__(self, scriptedEffect)
        self.shell = EffectShell(scriptedEffect, self.makeController, needs_torch=True)
        self.parameters = ParameterWidgets(scriptedEffect)
        self.observations = []

    def makeController(self, bridge, confirm_edit):
        from MVAControllersLib.smart_brush_controller import SmartBrushController
        from MVASlicerLib.sam_session import worker_runner
        return SmartBrushController(bridge, worker_runner(), confirm_edit=confirm_edit)  # Predict 3D in the worker

    def clone(self):
        return clone_effect(__file__, paint=True)

    def icon(self):
        return effect_icon(__file__)

    def helpText(self):
        return "<html>" + _(
            "Paint a few strokes on the tissue you want; check <b>Erase</b> to paint what you do not want (strokes on "
            "other segments count too). The brush learns the painted tissue and previews similar tissue on the slice. "
            "<b>Fill</b>: <b>Apply</b> writes the preview (one undo step). <b>Assist</b>: the brush itself stops at "
            "edges. <b>3D</b>: strokes on any slice view (axial, coronal, sagittal, oblique) train one classifier that previews the whole object in 3D; <b>Apply</b> writes it (one undo step). <b>Predict 3D</b> labels a box around the strokes in the orientation you painted in.</html>")

    def setupOptionsFrame(self):  # the C++ paint effect has added its brush options (diameter, sphere) already
        self.scriptedEffect.setColorSmudgeCheckboxVisible(False)
        mode = self.parameters.combo(_("Mode:"), "BrushMode", ["fill", "assist", MODE_3D_TEXT], "fill")
        mode.toolTip = _("fill: preview similar tissue on the slice, Apply writes it. assist: the brush stops at "
                         "edges. 3D: strokes on any slice view train one classifier that previews the whole object "
                         "in 3D (about a second per stroke); Apply writes it as one undo step.")
        self.parameters.check(_("Erase (strokes mark what the segment is not)"), "Erase", False)
        self.parameters.check(_("Show uncertainty"), "ShowUncertainty", False)
        for text, action in ((_("Apply"), lambda c: c.apply()), (_("Predict 3D"), lambda c: c.predict_3d()),
                             (_("Clear strokes"), lambda c: c.clear()), (_("Cancel"), lambda c: c.cancel())):
            self.scriptedEffect.addOptionsWidget(self.shell.button(text, lambda c, a=action: self.withOptions(c, a)))
        self.shell.status_label = self.statusLabel = qt.QLabel()
        self.scriptedEffect.addOptionsWidget(self.statusLabel)

    def setMRMLDefaults(self):  # the C++ paint effect sets its own brush defaults first
        self.parameters.set_defaults()

    def updateGUIFromMRML(self):
        self.parameters.to_gui()

    def updateMRMLFromGUI(self):
        self.parameters.to_mrml()

    def withOptions(self, controller, action):
        values = self.parameters.values()
        mode = "3d" if values["BrushMode"] == MODE_3D_TEXT else values["BrushMode"]
        controller.options.mode, controller.options.erase = mode, values["Erase"]
        controller.options.show_uncertainty = values["ShowUncertainty"]
        return action(controller)

    def activate(self):
        self.observations = observe_slice_nodes(lambda widget: self.shell.redraw([widget]))

    def deactivate(self):
        self.observations = remove_observations(self.observations)
        self.shell.deactivate()

    def paintApply(self, viewWidget):
        """Slicer's brush painted a stroke: learn from it (never raises: that would paint it plainly)."""
        stroke = self.scriptedEffect.defaultModifierLabelmap()
        if viewWidget.className() != "qMRMLSliceWidget":
            self.scriptedEffect.clearBrushes()
            self.statusLabel.text = _("Smart Brush learns from strokes in slice views; 3D strokes are ignored")
            return
        self.scriptedEffect.paintBrushesIntoLabelmap(stroke, viewWidget)
        self.scriptedEffect.clearBrushes()
        self.shell.run(lambda c: self.withOptions(c, lambda c: c.paint_stroke(viewWidget.mrmlSliceNode(), stroke)))

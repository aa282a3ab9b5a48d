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
        from MVAControllersLib.segment_anything_prompts import prompt_source
        from MVAControllersLib.smart_propagation_controller import SmartPropagationController
        from MVASlicerLib.sam_session import worker_runner
        controller = SmartPropagationController(bridge, worker_runner(), confirm_edit=confirm_edit,
                                                models=self.workerModels)
        controller.prompt_source = prompt_source(controller)  # the Segment Anything effect's object, same segment
        return controller

    def workerModels(self):
        """The models the compute worker propagates with (SAM 2 as chosen here, SAM as loaded in the module)."""
        from MVAControllersLib.sam_engines import propagation_models
        from MVASlicerLib import sam_session
        return propagation_models(self.parameters.values()["Sam2Model"], sam_session.developer_mode(),
                                  sam_session.setting("Device"), sam_session.engines())

    def clone(self):
        return clone_effect(__file__)

    def icon(self):
        return effect_icon(__file__)

    def helpText(self):
        return "<html>" + _(
            "Draw the object on one slice, choose the view to work in and press <b>Preview</b>: the segment is "
            "carried to neighbouring slices until the object ends (the reason is shown). <b>Apply</b> writes it as "
            "one undo step and never changes the slices you drew. After correcting a slice, <b>Re-propagate from "
            "here</b> updates only the slices beyond it. Where it ran past the object, show the first slice "
            "without it and press <b>End here</b> (or <b>E</b> in that view). With two or more drawn slices, "
            "<i>auto</i> interpolates between them. <i>sam2</i> tracks the object with SAM 2's memory (the chosen SAM 2.1 or MedSAM2 model, "
            "its checkpoint downloaded beforehand; needs the sam2 package), <i>sam</i> with the Segment Anything "
            "model loaded in the SegmentAnythingMVA module. Propagation runs in the compute worker process, so "
            "Slicer stays responsive.</html>")

    def setupOptionsFrame(self):
        from MVASlicerLib.sam_session import developer_mode
        self.parameters.combo(_("Strategy:"), "Strategy", STRATEGIES, "auto")
        self.parameters.combo(_("SAM 2 model:"), "Sam2Model", _sam2_models(developer_mode()), "sam2.1_tiny")
        self.parameters.combo(_("Direction:"), "Direction", ["both", "forward", "backward"], "both")
        self.parameters.number(_("At most:"), "MaxSlices", 50, 1, 1000, 1, " slices")
        self.viewCombo = qt.QComboBox()
        self.viewCombo.addItems(slicer.app.layoutManager().sliceViewNames())
        self.scriptedEffect.addLabeledOptionsWidget(_("View:"), self.viewCombo)
        endHereTip = _("The object is not on this view's slice: take back what propagation wrote on it and on every "
                       "slice beyond it (away from the slice propagated from). Slices you drew, or painted with "
                       "another tool, stay. One undo step. Shortcut: E in a slice view.")
        for text, action, tooltip in ((_("Preview"), lambda c: c.preview(self.sliceNode()), ""),
                                      (_("Apply"), lambda c: c.apply(), ""),
                                      (_("Re-propagate from here"),
                                       lambda c: c.preview(self.sliceNode(), repropagate=True), ""),
                                      (_("End here"), lambda c: c.end_here(self.sliceNode()), endHereTip),
                                      (_("Cancel"), lambda c: c.clear_preview(), "")):
            self.scriptedEffect.addOptionsWidget(
                self.shell.button(text, lambda c, a=action: self.withOptions(c, a), tooltip))
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
        from MVAControllersLib.sam_engines import sam2_refusal
        from MVASlicerLib.sam_session import developer_mode
        values, options = self.parameters.values(), controller.options
        refusal = sam2_refusal(values["Sam2Model"], developer_mode()) if values["Strategy"] == "sam2" else None
        if refusal:
            raise ValueError(refusal)
        options.strategy, options.direction = values["Strategy"], values["Direction"]
        options.max_slices = int(values["MaxSlices"])
        return action(controller)

    def processInteractionEvents(self, callerInteractor, eventId, viewWidget):
        import vtk
        from MVAControllersLib.smart_propagation_controller import END_HERE_KEYS
        if eventId != vtk.vtkCommand.KeyPressEvent or callerInteractor.GetKeySym() not in END_HERE_KEYS:
            return False  # clicks, drags and other keys stay Slicer's (no key but E starts the tool)
        return self.shell.event(callerInteractor, eventId, viewWidget)

    def processViewNodeEvents(self, callerViewNode, eventId, viewWidget):
        if viewWidget.className() == "qMRMLSliceWidget":
            self.shell.redraw([viewWidget])  # the preview follows scroll, pan and zoom

    def deactivate(self):
        self.shell.deactivate()


def _sam2_models(developer_mode):
    from MVAControllersLib.sam_engines import offered_sam2_models
    return offered_sam2_models(developer_mode)

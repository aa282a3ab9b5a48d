"""Smart Propagation effect: carry the slice's segment to neighbouring slices; preview, then Apply."""
import qt
import slicer
from slicer.i18n import tr as _
from SegmentEditorEffects import AbstractScriptedSegmentEditorEffect

from MVASlicerLib.effect_support import EffectContext, clone_effect, effect_icon, progress_dialog, user_action
from MVASlicerLib.view_overlay import ViewOverlay
from SmartPropagationLib.propagation_options import STRATEGIES, PropagationOptions

STRATEGY = "Strategy"
DIRECTION = "Direction"
MAX_SLICES = "MaxSlices"


class SegmentEditorEffect(AbstractScriptedSegmentEditorEffect):
    def __init__(self, scriptedEffect):
        scriptedEffect.name = "Smart Propagation"
        scriptedEffect.title = _("Smart Propagation")
        scriptedEffect.perSegment = True
        AbstractScriptedSegmentEditorEffect.__init__(self, scriptedEffect)
        self.logic = None
        self.overlays = {}

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
        self.strategyCombo = qt.QComboBox()
        self.strategyCombo.addItems(list(STRATEGIES))
        self.scriptedEffect.addLabeledOptionsWidget(_("Strategy:"), self.strategyCombo)
        self.directionCombo = qt.QComboBox()
        self.directionCombo.addItems(["both", "forward", "backward"])
        self.scriptedEffect.addLabeledOptionsWidget(_("Direction:"), self.directionCombo)
        self.maxSlices = qt.QSpinBox()
        self.maxSlices.setRange(1, 1000)
        self.scriptedEffect.addLabeledOptionsWidget(_("At most:"), self.maxSlices)
        self.viewCombo = qt.QComboBox()
        self.viewCombo.addItems(slicer.app.layoutManager().sliceViewNames())
        self.scriptedEffect.addLabeledOptionsWidget(_("View:"), self.viewCombo)
        buttons = qt.QHBoxLayout()
        self.previewButton = qt.QPushButton(_("Preview"))
        self.applyButton = qt.QPushButton(_("Apply"))
        self.repropagateButton = qt.QPushButton(_("Re-propagate from here"))
        self.cancelButton = qt.QPushButton(_("Cancel"))
        for button in (self.previewButton, self.applyButton, self.repropagateButton, self.cancelButton):
            buttons.addWidget(button)
        self.scriptedEffect.addOptionsWidget(buttons)
        self.statusLabel = qt.QLabel()
        self.statusLabel.wordWrap = True
        self.scriptedEffect.addOptionsWidget(self.statusLabel)
        for widget in (self.strategyCombo, self.directionCombo):
            widget.connect("currentIndexChanged(int)", self.updateMRMLFromGUI)
        self.maxSlices.connect("valueChanged(int)", self.updateMRMLFromGUI)
        self.previewButton.connect("clicked()", lambda: self.runPreview(repropagate=False))
        self.repropagateButton.connect("clicked()", lambda: self.runPreview(repropagate=True))
        self.applyButton.connect("clicked()", self.onApply)
        self.cancelButton.connect("clicked()", self.clearPreview)

    def setMRMLDefaults(self):
        defaults = PropagationOptions()
        self.scriptedEffect.setParameterDefault(STRATEGY, defaults.strategy)
        self.scriptedEffect.setParameterDefault(DIRECTION, defaults.direction)
        self.scriptedEffect.setParameterDefault(MAX_SLICES, defaults.max_slices)

    def updateGUIFromMRML(self):
        for widget in (self.strategyCombo, self.directionCombo, self.maxSlices):
            widget.blockSignals(True)
        self.strategyCombo.currentText = self.scriptedEffect.parameter(STRATEGY)
        self.directionCombo.currentText = self.scriptedEffect.parameter(DIRECTION)
        self.maxSlices.value = self.scriptedEffect.integerParameter(MAX_SLICES)
        for widget in (self.strategyCombo, self.directionCombo, self.maxSlices):
            widget.blockSignals(False)
        self.applyButton.enabled = self.logic is not None and self.logic.preview is not None

    def updateMRMLFromGUI(self):
        self.scriptedEffect.setParameter(STRATEGY, self.strategyCombo.currentText)
        self.scriptedEffect.setParameter(DIRECTION, self.directionCombo.currentText)
        self.scriptedEffect.setParameter(MAX_SLICES, self.maxSlices.value)

    def propagationLogic(self):
        if self.logic is None:
            context = EffectContext(self.scriptedEffect)  # installs missing packages (asks) before the import
            from SmartPropagationLib.smart_propagation_logic import SmartPropagationLogic
            self.logic = SmartPropagationLogic(context.bridge)
        self.logic.options = PropagationOptions(strategy=self.scriptedEffect.parameter(STRATEGY),
                                                direction=self.scriptedEffect.parameter(DIRECTION),
                                                max_slices=self.scriptedEffect.integerParameter(MAX_SLICES))
        return self.logic

    def runPreview(self, repropagate):
        from SmartPropagationLib.algorithms import PropagationCancelled
        widget = slicer.app.layoutManager().sliceWidget(self.viewCombo.currentText)
        with progress_dialog(_("Propagating...")) as (report, cancel), user_action(_("Smart Propagation")):
            try:
                logic = self.propagationLogic()
                plane = EffectContext(self.scriptedEffect).plane_of_view(widget)
                run = logic.repropagate_from if repropagate else logic.compute_preview
                self.showPreview(run(plane, progress=report, cancel=cancel))
            except PropagationCancelled:
                self.statusLabel.text = _("Cancelled")
        self.updateGUIFromMRML()

    def showPreview(self, preview):
        volume = self.logic.bridge.work_volume()
        mask = preview.volume_mask(volume.shape)
        layout = slicer.app.layoutManager()
        for name in layout.sliceViewNames():
            overlay = self.overlays.setdefault(name, ViewOverlay(layout.sliceWidget(name)))
            overlay.show_volume_mask(mask, volume.index_to_ras)
        slices = sorted(preview.masks)
        self.statusLabel.text = (_("Preview: slices {first} to {last} ({strategy}).").format(
            first=slices[0], last=slices[-1], strategy=preview.strategy) + " "
            + " ".join(preview.stop_messages() + self.logic.notes))
        self.logic.notes.clear()

    def onApply(self):
        with user_action(_("Smart Propagation")):
            self.scriptedEffect.confirmCurrentSegmentVisible()
            self.propagationLogic().apply()
        self.clearPreview()

    def clearPreview(self):
        if self.logic is not None:
            self.logic.preview = None
        for overlay in self.overlays.values():
            overlay.hide()
        self.statusLabel.text = ""
        self.updateGUIFromMRML()

    def deactivate(self):
        self.clearPreview()
        for overlay in self.overlays.values():
            overlay.remove()
        self.overlays = {}

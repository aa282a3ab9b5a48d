"""Smart Brush effect: paint strokes like the Paint effect; a classifier learns them and labels similar tissue."""
import ctk
import numpy as np
import qt
import slicer
import vtk
from slicer.i18n import tr as _
from SegmentEditorEffects import AbstractScriptedSegmentEditorPaintEffect

from MVASlicerLib.effect_support import BackgroundTask, EffectContext, clone_effect, effect_icon, user_action
from MVASlicerLib.view_overlay import ViewOverlay
from SmartBrushLib.brush_options import BrushOptions

MODE = "BrushMode"
SHOW_UNCERTAINTY = "ShowUncertainty"


class SegmentEditorEffect(AbstractScriptedSegmentEditorPaintEffect):
    def __init__(self, scriptedEffect):
        scriptedEffect.name = "Smart Brush"
        scriptedEffect.title = _("Smart Brush")
        AbstractScriptedSegmentEditorPaintEffect.__init__(self, scriptedEffect)
        self.logic = None
        self.overlays = {}
        self.eraseStroke = False

    def clone(self):
        return clone_effect(__file__, paint=True)

    def icon(self):
        return effect_icon(__file__)

    def helpText(self):
        return "<html>" + _(
            "Paint a few strokes on the tissue you want and (with <b>shift</b>, or on other segments) on what you "
            "do not want. The brush learns what the painted tissue looks like and previews similar tissue on the "
            "slice at once. <b>Fill</b>: press Apply to write the preview (one undo step). <b>Assist</b>: the "
            "brush itself stops at edges. <b>Predict 3D</b> labels a box around the strokes in the background; "
            "strokes are kept per segment until you clear them.</html>")

    def setupOptionsFrame(self):
        # Slicer's paint machinery (radius in mm, sphere/2D) supplies the brush options frame.
        self.scriptedEffect.setColorSmudgeCheckboxVisible(False)
        brushBox = ctk.ctkCollapsibleGroupBox()
        brushBox.setTitle(_("Brush"))
        brushBox.setLayout(qt.QVBoxLayout())
        brushBox.layout().addWidget(self.scriptedEffect.paintOptionsFrame())
        self.scriptedEffect.addOptionsWidget(brushBox)
        self.modeCombo = qt.QComboBox()
        self.modeCombo.addItems(["fill", "assist"])
        self.scriptedEffect.addLabeledOptionsWidget(_("Mode:"), self.modeCombo)
        self.uncertaintyCheck = qt.QCheckBox(_("Show uncertainty"))
        self.scriptedEffect.addOptionsWidget(self.uncertaintyCheck)
        buttons = qt.QHBoxLayout()
        self.applyButton = qt.QPushButton(_("Apply"))
        self.predict3DButton = qt.QPushButton(_("Predict 3D"))
        self.clearButton = qt.QPushButton(_("Clear strokes"))
        for button in (self.applyButton, self.predict3DButton, self.clearButton):
            buttons.addWidget(button)
        self.scriptedEffect.addOptionsWidget(buttons)
        self.statusLabel = qt.QLabel()
        self.scriptedEffect.addOptionsWidget(self.statusLabel)
        self.modeCombo.connect("currentIndexChanged(int)", self.updateMRMLFromGUI)
        self.uncertaintyCheck.connect("toggled(bool)", self.updateMRMLFromGUI)
        self.applyButton.connect("clicked()", self.onApply)
        self.predict3DButton.connect("clicked()", self.onPredict3D)
        self.clearButton.connect("clicked()", self.onClear)

    def setMRMLDefaults(self):  # the C++ paint effect sets its own brush defaults first
        self.scriptedEffect.setParameterDefault(MODE, BrushOptions().mode)
        self.scriptedEffect.setParameterDefault(SHOW_UNCERTAINTY, 0)

    def updateGUIFromMRML(self):
        self.modeCombo.blockSignals(True)
        self.modeCombo.currentText = self.scriptedEffect.parameter(MODE)
        self.modeCombo.blockSignals(False)
        self.uncertaintyCheck.blockSignals(True)
        self.uncertaintyCheck.checked = self.scriptedEffect.integerParameter(SHOW_UNCERTAINTY) != 0
        self.uncertaintyCheck.blockSignals(False)

    def updateMRMLFromGUI(self):
        self.scriptedEffect.setParameter(MODE, self.modeCombo.currentText)
        self.scriptedEffect.setParameter(SHOW_UNCERTAINTY, 1 if self.uncertaintyCheck.checked else 0)

    def brushLogic(self):
        if self.logic is None:
            context = EffectContext(self.scriptedEffect)  # installs missing packages (asks) before the import
            from SmartBrushLib.smart_brush_logic import SmartBrushLogic
            self.logic = SmartBrushLogic(context.bridge)
        self.logic.options.mode = self.scriptedEffect.parameter(MODE)
        return self.logic

    def processInteractionEvents(self, callerInteractor, eventId, viewWidget):
        if eventId == vtk.vtkCommand.LeftButtonPressEvent:
            self.eraseStroke = bool(callerInteractor.GetShiftKey())  # shift-stroke: "not this tissue"
        return False  # Slicer's paint effect draws the stroke and then calls paintApply

    def paintApply(self, viewWidget):
        """Slicer's brush painted a stroke: learn from it (and, in assist mode, paint it edge-aware)."""
        stroke = self.scriptedEffect.defaultModifierLabelmap()
        self.scriptedEffect.paintBrushesIntoLabelmap(stroke, viewWidget)
        self.scriptedEffect.clearBrushes()
        erase = self.eraseStroke
        context = EffectContext(self.scriptedEffect)
        with user_action(_("Smart Brush")):
            logic = self.brushLogic()
            plane = context.plane_of_view(viewWidget)
            from MVABridgeLib.image_data import array_view, index_to_ras
            values = array_view(stroke)
            stroke_2d = plane.sample(values, index_to_ras(stroke), order=0) > 0
            if not stroke_2d.any():
                return
            if logic.options.mode == "assist":
                start = tuple(int(v) for v in np.argwhere(stroke_2d)[0])
                self.scriptedEffect.saveStateForUndo()
                logic.paint_assisted(plane, stroke_2d, start, erase)
            else:
                preview = logic.add_stroke(plane, stroke_2d, erase)
                self.showPreview(viewWidget, preview)

    def showPreview(self, viewWidget, preview):
        """Overlay the predicted segment (and, if asked, where the classifier is unsure) on the view."""
        name = viewWidget.mrmlSliceNode().GetLayoutName()
        volume = self.logic.bridge.work_volume()
        layers = [("preview", preview.mask_2d, (1.0, 0.85, 0.2))]
        if self.scriptedEffect.integerParameter(SHOW_UNCERTAINTY):
            layers.append(("uncertainty", preview.uncertainty_2d > 0.5, (1.0, 0.2, 0.9)))
        for layer, mask_2d, colour in layers:
            overlay = self.overlays.setdefault((name, layer), ViewOverlay(viewWidget, colour=colour))
            selected, _ = preview.plane.mask_to_volume(mask_2d, volume.index_to_ras, volume.shape)
            overlay.show_volume_mask(selected.full(volume.shape), volume.index_to_ras)
        self.statusLabel.text = _("Preview: {count} pixels. Apply to write them.").format(
            count=int(preview.mask_2d.sum()))

    def onApply(self):
        with user_action(_("Smart Brush")):
            self.scriptedEffect.confirmCurrentSegmentVisible()
            self.brushLogic().apply()
        for overlay in self.overlays.values():
            overlay.hide()

    def onPredict3D(self):
        """Predict a box around the strokes in a worker thread; write it (one undo step) when done."""
        from MVABridgeLib.edit_backend import EditMode
        from SmartBrushLib.algorithms import SmartBrushCancelled
        widget = slicer.app.layoutManager().sliceWidget("Red")
        with user_action(_("Smart Brush")):
            logic = self.brushLogic()
            plane = EffectContext(self.scriptedEffect).plane_of_view(widget)
            logic.bridge.work_volume()  # read VTK data here, on the Qt thread

            def write(patch):
                with user_action(_("Smart Brush")):
                    self.scriptedEffect.confirmCurrentSegmentVisible()
                    logic.bridge.apply(patch, EditMode.REPLACE)

            def failed(error):
                message = _("3D prediction cancelled") if isinstance(error, SmartBrushCancelled) else str(error)
                self.statusLabel.text = message

            self.task = BackgroundTask(_("Predicting in 3D..."),
                                       lambda progress, cancel: logic.predict_volume(plane, progress=progress,
                                                                                      cancel=cancel), write, failed)

    def onClear(self):
        if self.logic is not None:
            self.logic.clear(self.scriptedEffect.parameterSetNode().GetSelectedSegmentID())
        for overlay in self.overlays.values():
            overlay.hide()

    def deactivate(self):
        for overlay in self.overlays.values():
            overlay.remove()
        self.overlays = {}

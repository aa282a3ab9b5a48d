"""Smart Regions effect: click or drag over superpixels / supervoxels to add them to the selected segment."""
import qt
import slicer
import vtk
from slicer.i18n import tr as _
from SegmentEditorEffects import AbstractScriptedSegmentEditorEffect

from MVASlicerLib.effect_support import BackgroundTask, EffectContext, clone_effect, effect_icon, user_action
from MVASlicerLib.view_overlay import ViewOverlay
from SmartRegionsLib.regions_options import RegionsOptions

REGION_SIZE = "RegionSizeMm"
COMPACTNESS = "Compactness"
MODE = "Mode"
SMART_MERGE = "SmartMerge"


class SegmentEditorEffect(AbstractScriptedSegmentEditorEffect):
    def __init__(self, scriptedEffect):
        scriptedEffect.name = "Smart Regions"
        scriptedEffect.title = _("Smart Regions")
        AbstractScriptedSegmentEditorEffect.__init__(self, scriptedEffect)
        self.logic = None
        self.overlays = {}
        self.hovers = {}
        self.stroke = None

    def clone(self):
        return clone_effect(__file__)

    def icon(self):
        return effect_icon(__file__)

    def helpText(self):
        return "<html>" + _(
            "Click a region to add it to the selected segment; <b>shift+click</b> removes it; drag to paint over "
            "regions. Regions follow intensity edges: <b>3D</b> uses supervoxels of the whole volume (computed once), "
            "<b>2D</b> superpixels of the clicked slice. <b>Smart merge</b> also takes similar neighbouring regions. "
            "Each click is one undo step and honours the masking and overwrite settings.</html>")

    # --- options ----------------------------------------------------------------------------------------------
    def setupOptionsFrame(self):
        self.sizeSlider = slicer.qMRMLSliderWidget()
        self.sizeSlider.minimum, self.sizeSlider.maximum, self.sizeSlider.singleStep = 2, 60, 1
        self.sizeSlider.suffix = " mm"
        self.sizeSlider.toolTip = _("Size of the grid cell that bounds one region")
        self.scriptedEffect.addLabeledOptionsWidget(_("Region size:"), self.sizeSlider)
        self.compactnessSlider = slicer.qMRMLSliderWidget()
        self.compactnessSlider.minimum, self.compactnessSlider.maximum, self.compactnessSlider.singleStep = 0, 1, 0.05
        self.compactnessSlider.toolTip = _("Higher values merge small fragments into their neighbours")
        self.scriptedEffect.addLabeledOptionsWidget(_("Compactness:"), self.compactnessSlider)
        self.modeCombo = qt.QComboBox()
        self.modeCombo.addItems(["3d", "2d"])
        self.scriptedEffect.addLabeledOptionsWidget(_("Regions:"), self.modeCombo)
        self.mergeCheck = qt.QCheckBox(_("Smart merge (take similar neighbouring regions)"))
        self.scriptedEffect.addOptionsWidget(self.mergeCheck)
        self.computeButton = qt.QPushButton(_("Compute regions"))
        self.computeButton.toolTip = _("Compute the supervoxels now (otherwise on the first click)")
        self.scriptedEffect.addOptionsWidget(self.computeButton)
        self.showBoundaries = qt.QCheckBox(_("Show region boundaries"))
        self.scriptedEffect.addOptionsWidget(self.showBoundaries)
        for widget, signal in ((self.sizeSlider, "valueChanged(double)"), (self.compactnessSlider, "valueChanged(double)"),
                               (self.modeCombo, "currentIndexChanged(int)"), (self.mergeCheck, "toggled(bool)")):
            widget.connect(signal, self.updateMRMLFromGUI)
        self.computeButton.connect("clicked()", self.onCompute)
        self.showBoundaries.connect("toggled(bool)", self.refreshOverlays)

    def setMRMLDefaults(self):
        defaults = RegionsOptions()
        self.scriptedEffect.setParameterDefault(REGION_SIZE, defaults.region_size_mm)
        self.scriptedEffect.setParameterDefault(COMPACTNESS, defaults.compactness)
        self.scriptedEffect.setParameterDefault(MODE, defaults.mode)
        self.scriptedEffect.setParameterDefault(SMART_MERGE, 1)

    def updateGUIFromMRML(self):
        for widget in (self.sizeSlider, self.compactnessSlider, self.modeCombo, self.mergeCheck):
            widget.blockSignals(True)
        self.sizeSlider.value = self.scriptedEffect.doubleParameter(REGION_SIZE)
        self.compactnessSlider.value = self.scriptedEffect.doubleParameter(COMPACTNESS)
        self.modeCombo.currentText = self.scriptedEffect.parameter(MODE)
        self.mergeCheck.checked = self.scriptedEffect.integerParameter(SMART_MERGE) != 0
        for widget in (self.sizeSlider, self.compactnessSlider, self.modeCombo, self.mergeCheck):
            widget.blockSignals(False)

    def updateMRMLFromGUI(self):
        self.scriptedEffect.setParameter(REGION_SIZE, self.sizeSlider.value)
        self.scriptedEffect.setParameter(COMPACTNESS, self.compactnessSlider.value)
        self.scriptedEffect.setParameter(MODE, self.modeCombo.currentText)
        self.scriptedEffect.setParameter(SMART_MERGE, 1 if self.mergeCheck.checked else 0)

    def options(self):
        return RegionsOptions(region_size_mm=self.scriptedEffect.doubleParameter(REGION_SIZE),
                              compactness=self.scriptedEffect.doubleParameter(COMPACTNESS),
                              mode=self.scriptedEffect.parameter(MODE),
                              merge_tolerance="auto" if self.scriptedEffect.integerParameter(SMART_MERGE) else None)

    def regionsLogic(self):
        if self.logic is None:
            context = EffectContext(self.scriptedEffect)  # installs missing packages (asks) before the import
            from SmartRegionsLib.smart_regions_logic import SmartRegionsLogic
            self.logic = SmartRegionsLogic(context.bridge)
        self.logic.options = self.options()
        return self.logic

    # --- actions ----------------------------------------------------------------------------------------------
    def onCompute(self):
        """Compute the supervoxels in a worker thread (progress, cancel); recomputed only when options change."""
        from SmartRegionsLib.algorithms.region_errors import SupervoxelsCancelled
        with user_action(_("Smart Regions")):
            logic = self.regionsLogic()
            logic.bridge.work_volume()  # read VTK data here, on the Qt thread
            token = logic.volume_token()

            def failed(error):
                if isinstance(error, SupervoxelsCancelled):
                    slicer.util.showStatusMessage(_("Supervoxel computation cancelled"), 3000)
                else:
                    slicer.util.errorDisplay(str(error))

            self.task = BackgroundTask(_("Computing supervoxels..."),
                                       lambda progress, cancel: logic.volume_labels(progress, cancel, token),
                                       lambda labels: self.refreshOverlays(), failed)

    def processInteractionEvents(self, callerInteractor, eventId, viewWidget):
        if viewWidget.className() != "qMRMLSliceWidget":
            return False
        context = EffectContext(self.scriptedEffect)
        xy = callerInteractor.GetEventPosition()
        if eventId == vtk.vtkCommand.LeftButtonPressEvent:
            with user_action(_("Smart Regions")):
                self.stroke = (context.plane_of_view(viewWidget), [], not callerInteractor.GetShiftKey())
                self.stroke[1].append(context.pixel_at(self, xy, viewWidget, self.stroke[0]))
            return True
        if eventId == vtk.vtkCommand.MouseMoveEvent and self.stroke is None:
            self.highlightRegionUnderCursor(viewWidget, xy)
            return False
        if eventId == vtk.vtkCommand.MouseMoveEvent and self.stroke is not None:
            plane, pixels, _add = self.stroke
            try:
                pixels.append(context.pixel_at(self, xy, viewWidget, plane))
            except ValueError:
                pass  # dragging outside the volume: ignore those positions
            return True
        if eventId == vtk.vtkCommand.LeftButtonReleaseEvent and self.stroke is not None:
            plane, pixels, add = self.stroke
            self.stroke = None
            with user_action(_("Smart Regions")):
                self.scriptedEffect.confirmCurrentSegmentVisible()
                self.regionsLogic().drag(plane, pixels, add)
            return True
        return False

    def highlightRegionUnderCursor(self, viewWidget, xy):
        """Highlight the region the next click would take (only once regions exist: never computes them)."""
        if self.logic is None or (self.logic.options.mode == "3d" and not self.logic.has_volume_labels()):
            return
        name = viewWidget.mrmlSliceNode().GetLayoutName()
        overlay = self.hovers.setdefault(name, ViewOverlay(viewWidget, colour=(1.0, 1.0, 1.0), opacity=0.35))
        plane = overlay.view_plane()
        pixel, _ = plane.ras_to_pixel([self.xyToRas(xy, viewWidget)])
        try:
            overlay.show_view_mask(self.logic.hover(plane, pixel[0]))
        except ValueError:
            overlay.hide()

    def refreshOverlays(self, *args):
        for widget, overlay in self.overlays.items():
            overlay.hide()
        if not self.showBoundaries.checked or self.logic is None:
            return
        layout = slicer.app.layoutManager()
        for name in layout.sliceViewNames():
            widget = layout.sliceWidget(name)
            overlay = self.overlays.setdefault(name, ViewOverlay(widget, colour=(0.3, 0.9, 1.0), opacity=0.6))
            plane = overlay.view_plane()
            with user_action(_("Smart Regions")):
                overlay.show_view_mask(self.logic.boundaries(plane))

    def deactivate(self):
        for overlay in list(self.overlays.values()) + list(self.hovers.values()):
            overlay.remove()
        self.overlays, self.hovers = {}, {}
        self.stroke = None

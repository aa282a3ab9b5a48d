"""Segment Anything effect: positive/negative points and a box on any slice view; three candidate masks."""
import qt
import vtk
from slicer.i18n import tr as _
from SegmentEditorEffects import AbstractScriptedSegmentEditorEffect

from MVASlicerLib.effect_support import EffectContext, clone_effect, effect_icon, user_action

PREFETCH_SLICES = 3


class SegmentEditorEffect(AbstractScriptedSegmentEditorEffect):
    def __init__(self, scriptedEffect):
        scriptedEffect.name = "Segment Anything"
        scriptedEffect.title = _("Segment Anything")
        AbstractScriptedSegmentEditorEffect.__init__(self, scriptedEffect)
        self.logic = None
        self.boxStart = None
        self.statusTimer = None

    def clone(self):
        return clone_effect(__file__)

    def icon(self):
        return effect_icon(__file__)

    def helpText(self):
        return "<html>" + _(
            "<b>Click</b>: include this point; <b>shift+click</b>: exclude it; <b>ctrl+drag</b>: box. "
            "Each prompt refines the previous mask on this slice and is one undo step. <b>C</b> cycles the three "
            "candidate masks; <b>Esc</b> starts a new object. Works in any slice view, oblique included. "
            "Choose the model and device in the SegmentAnythingMVA module; image embeddings of neighbouring "
            "slices are computed in the background.</html>")

    def setupOptionsFrame(self):
        self.candidateLabel = qt.QLabel(_("Click on a slice to start"))
        self.scriptedEffect.addOptionsWidget(self.candidateLabel)
        buttons = qt.QHBoxLayout()
        self.cycleButton = qt.QPushButton(_("Next candidate (C)"))
        self.newObjectButton = qt.QPushButton(_("New object (Esc)"))
        buttons.addWidget(self.cycleButton)
        buttons.addWidget(self.newObjectButton)
        self.scriptedEffect.addOptionsWidget(buttons)
        self.statusLabel = qt.QLabel()
        self.scriptedEffect.addOptionsWidget(self.statusLabel)
        self.cycleButton.connect("clicked()", self.onCycle)
        self.newObjectButton.connect("clicked()", self.onNewObject)

    def samLogic(self):
        context = EffectContext(self.scriptedEffect)  # installs missing packages (asks) before the imports
        from MVASlicerLib.sam_session import shared_engine, shared_prefetcher
        from SegmentAnythingLib.segment_anything_logic import SegmentAnythingLogic
        engine = shared_engine()
        if self.logic is None or self.logic.engine is not engine:
            self.logic = SegmentAnythingLogic(context.bridge, engine, engine.model_name, prefetcher=shared_prefetcher())
        return self.logic

    def activate(self):
        self.statusTimer = qt.QTimer()
        self.statusTimer.setInterval(1000)
        self.statusTimer.connect("timeout()", self.updateStatus)
        self.statusTimer.start()

    def deactivate(self):
        if self.statusTimer is not None:
            self.statusTimer.stop()
            self.statusTimer = None
        if self.logic is not None:
            self.logic.reset()

    def updateStatus(self):
        if self.logic is not None:
            self.statusLabel.text = self.logic.status()

    def processInteractionEvents(self, callerInteractor, eventId, viewWidget):
        if viewWidget.className() != "qMRMLSliceWidget":
            return False
        if eventId == vtk.vtkCommand.KeyPressEvent:
            key = callerInteractor.GetKeySym()
            if key in ("c", "C"):
                self.onCycle()
                return True
            if key == "Escape":
                self.onNewObject()
                return True
            return False
        if eventId not in (vtk.vtkCommand.LeftButtonPressEvent, vtk.vtkCommand.LeftButtonReleaseEvent):
            return False
        context = EffectContext(self.scriptedEffect)
        xy = callerInteractor.GetEventPosition()
        with user_action(_("Segment Anything")):
            logic = self.samLogic()
            plane = context.plane_of_view(viewWidget)
            pixel = context.pixel_at(self, xy, viewWidget, plane)
            if eventId == vtk.vtkCommand.LeftButtonPressEvent:
                self.boxStart = pixel if callerInteractor.GetControlKey() else None
                if self.boxStart is None:
                    self.scriptedEffect.confirmCurrentSegmentVisible()
                    logic.add_point(plane, pixel, positive=not callerInteractor.GetShiftKey())
            elif self.boxStart is not None:
                self.scriptedEffect.confirmCurrentSegmentVisible()
                logic.set_box(plane, self.boxStart, pixel)
                self.boxStart = None
            self.showCandidates()
            logic.prefetch_around(plane, PREFETCH_SLICES)
        return True

    def showCandidates(self):
        session = self.logic.session if self.logic else None
        if session is None or session.prediction is None:
            self.candidateLabel.text = _("Click on a slice to start")
            return
        scores = ", ".join(f"{'[' if i == session.candidate else ''}{s:.2f}{']' if i == session.candidate else ''}"
                           for i, s in enumerate(session.prediction.scores))
        self.candidateLabel.text = _("Candidates (predicted IoU): ") + scores

    def onCycle(self):
        with user_action(_("Segment Anything")):
            self.samLogic().cycle_candidate()
            self.showCandidates()

    def onNewObject(self):
        if self.logic is not None:
            self.logic.reset()
        self.showCandidates()

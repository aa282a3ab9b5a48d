"""Segment Anything effect: positive/negative points and a box on any slice view; three candidate masks."""
import logging

import qt
import slicer
import vtk
from slicer.i18n import tr as _
from SegmentEditorEffects import AbstractScriptedSegmentEditorEffect

from MVASlicerLib.effect_support import BackgroundTask, EffectContext, clone_effect, effect_icon, user_action

PREFETCH_SLICES = 3
SCROLL_SETTLE_MS = 300  # prefetch once the user stops scrolling for this long


class SegmentEditorEffect(AbstractScriptedSegmentEditorEffect):
    def __init__(self, scriptedEffect):
        scriptedEffect.name = "Segment Anything"
        scriptedEffect.title = _("Segment Anything")
        AbstractScriptedSegmentEditorEffect.__init__(self, scriptedEffect)
        self.logic = None
        self.boxStart = None
        self.statusTimer = None
        self.embeddingTask = None  # computing the clicked slice's embedding; clicks wait for it
        self.sliceObservations = []
        self.scrolledView = None
        self.scrollTimer = None

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
        self.scrollTimer = qt.QTimer()
        self.scrollTimer.setSingleShot(True)
        self.scrollTimer.setInterval(SCROLL_SETTLE_MS)
        self.scrollTimer.connect("timeout()", self.prefetchScrolledView)
        layout = slicer.app.layoutManager()
        for name in layout.sliceViewNames():
            sliceNode = layout.sliceWidget(name).mrmlSliceNode()
            tag = sliceNode.AddObserver(vtk.vtkCommand.ModifiedEvent,
                                        lambda caller, event, view=name: self.onSliceScrolled(view))
            self.sliceObservations.append((sliceNode, tag))

    def deactivate(self):
        for sliceNode, tag in self.sliceObservations:
            sliceNode.RemoveObserver(tag)
        self.sliceObservations = []
        for timer in (self.statusTimer, self.scrollTimer):
            if timer is not None:
                timer.stop()
        self.statusTimer = self.scrollTimer = None
        if self.logic is not None:
            self.logic.reset()

    def onSliceScrolled(self, viewName):
        self.scrolledView = viewName
        if self.scrollTimer is not None:
            self.scrollTimer.start()  # restarts: prefetch when scrolling settles

    def prefetchScrolledView(self):
        """Embed the slice the user scrolled to, and its neighbours, in the background (model already loaded)."""
        from MVASlicerLib.sam_session import loaded_engine
        if self.scrolledView is None or loaded_engine() is None:
            return
        viewWidget = slicer.app.layoutManager().sliceWidget(self.scrolledView)
        try:
            logic = self.samLogic()
            logic.prefetch_around(EffectContext(self.scriptedEffect).plane_of_view(viewWidget), PREFETCH_SLICES)
        except (ValueError, RuntimeError) as error:  # no source volume yet, or a view outside it
            logging.debug("Segment Anything prefetch skipped: %s", error)

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
        if self.embeddingTask is not None:
            return True  # the previous click waits for its slice's embedding
        context = EffectContext(self.scriptedEffect)
        xy = callerInteractor.GetEventPosition()
        with user_action(_("Segment Anything")):
            logic = self.samLogic()
            plane = context.plane_of_view(viewWidget)
            pixel = context.pixel_at(self, xy, viewWidget, plane)
            prompt = None
            if eventId == vtk.vtkCommand.LeftButtonPressEvent:
                self.boxStart = pixel if callerInteractor.GetControlKey() else None
                if self.boxStart is None:
                    positive = not callerInteractor.GetShiftKey()
                    prompt = lambda: logic.add_point(plane, pixel, positive=positive)  # noqa: E731
            elif self.boxStart is not None:
                corner, self.boxStart = self.boxStart, None
                prompt = lambda: logic.set_box(plane, corner, pixel)  # noqa: E731
            if prompt is not None:
                self.promptWhenEmbedded(logic, plane, prompt)
        return True

    def promptWhenEmbedded(self, logic, plane, prompt):
        """Run `prompt` now if the slice is embedded, else after embedding it in a worker (progress, cancel)."""
        def run(_result=None):
            task, self.embeddingTask = self.embeddingTask, None
            if task is not None and task.cancelled:
                return  # the embedding is cached for later; the click is dropped as asked
            with user_action(_("Segment Anything")):
                self.scriptedEffect.confirmCurrentSegmentVisible()
                prompt()
                self.showCandidates()
                logic.prefetch_around(plane, PREFETCH_SLICES)

        def failed(error):
            self.embeddingTask = None
            slicer.util.errorDisplay(_("Segment Anything could not embed this slice: ") + str(error))

        job = logic.embedding_job(plane)
        if job is None:
            run()
            return
        self.embeddingTask = BackgroundTask(_("Computing this slice's image embedding..."),
                                            lambda progress, cancel: job(), run, failed)

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

"""In-Slicer test (slicer_add_python_unittest): each effect activated by name in the Segment Editor, an
interaction replayed through its controller, the segment checked, and one undo taking it back.

Runs only inside the Slicer application (it needs the real Segment Editor widget and scripted adaptors);
the headless suite drives the same controllers through stand-ins (test_effects_in_slicer_standins.py)."""
import time
import unittest

import numpy as np
from slicer.ScriptedLoadableModule import ScriptedLoadableModuleTest

EFFECT_NAMES = ("Smart Brush", "Smart Regions", "Smart Propagation", "Segment Anything")


class SmartEffectsInSlicerTest(ScriptedLoadableModuleTest):
    def setUp(self):
        import slicer
        slicer.mrmlScene.Clear(0)
        k, j, i = np.mgrid[0:31, 0:41, 0:41]
        ball = (k - 15) ** 2 + (j - 20) ** 2 + (i - 20) ** 2 <= 64
        self.volume = slicer.util.addVolumeFromArray(np.where(ball, 300, 10).astype(np.int16), name="Ball")
        self.segmentation = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode")
        self.segmentation.CreateDefaultDisplayNodes()
        self.segmentation.SetReferenceImageGeometryParameterFromVolumeNode(self.volume)
        self.segment_id = self.segmentation.GetSegmentation().AddEmptySegment("Ball")
        slicer.util.setSliceViewerLayers(background=self.volume, fit=True)
        slicer.util.selectModule("SegmentEditor")
        self.editor = slicer.modules.segmenteditor.widgetRepresentation().self().editor
        self.editor.setSegmentationNode(self.segmentation)
        self.editor.setSourceVolumeNode(self.volume)
        self.editor.setCurrentSegmentID(self.segment_id)
        self.red = slicer.app.layoutManager().sliceWidget("Red")
        self.red.mrmlSliceNode().SetOrientationToAxial()
        self.red.mrmlSliceNode().JumpSlice(*self.centre_ras())

    def tearDown(self):
        self.editor.setActiveEffectByName("")

    def centre_ras(self):
        matrix = np.eye(4)
        import vtk
        vtk_matrix = vtk.vtkMatrix4x4()
        self.volume.GetIJKToRASMatrix(vtk_matrix)
        matrix = np.array([[vtk_matrix.GetElement(r, c) for c in range(4)] for r in range(4)])
        return (matrix @ np.array([20.0, 20.0, 15.0, 1.0]))[:3]

    def segment(self):
        import slicer
        return slicer.util.arrayFromSegmentBinaryLabelmap(self.segmentation, self.segment_id, self.volume)

    def activate(self, name):
        self.editor.setActiveEffectByName(name)
        effect = self.editor.activeEffect()
        self.assertIsNotNone(effect, f"{name} is not registered")
        self.assertEqual(effect.name, name)
        return effect.self().shell

    def replay(self, shell, kinds, point_ras=None, **modifiers):
        from MVAControllersLib.view_events import EventKind, ViewEvent
        from MVAControllersLib.view_planes import ras_to_xy
        node = self.red.mrmlSliceNode()
        xy = ras_to_xy(node, self.centre_ras() if point_ras is None else point_ras)
        for kind in kinds:
            shell.run(lambda c, kind=kind: c.handle(ViewEvent(EventKind[kind], xy, node, **modifiers)))
        self.wait(shell)

    def wait(self, shell, timeout=120):
        import slicer
        deadline = time.time() + timeout
        while shell.controller is not None and shell.controller.busy and time.time() < deadline:
            slicer.app.processEvents()
            time.sleep(0.05)
        shell.poll()

    def assertOneUndoTakesItBack(self, before):
        self.assertGreater(self.segment().sum(), before)
        self.editor.undo()
        self.assertEqual(self.segment().sum(), before)

    def test_smart_brush_stroke_then_apply(self):
        shell = self.activate("Smart Brush")
        self.replay(shell, ["PRESS", "MOVE", "RELEASE"])
        self.assertEqual(self.segment().sum(), 0)  # a preview writes nothing
        shell.run(lambda c: c.apply())
        self.assertOneUndoTakesItBack(0)

    def test_smart_brush_predict_3d_in_the_compute_worker(self):
        import os
        shell = self.activate("Smart Brush")
        self.replay(shell, ["PRESS", "MOVE", "RELEASE"])
        shell.run(lambda c: c.predict_3d())
        self.assertIsNotNone(shell.controller.runner.request_id)  # sent to the PythonSlicer worker
        self.wait(shell)
        self.assertNotIn(shell.controller.runner.client.worker_pid, (None, os.getpid()))
        self.assertOneUndoTakesItBack(0)

    def test_smart_regions_click(self):
        shell = self.activate("Smart Regions")
        self.replay(shell, ["PRESS", "RELEASE"])
        self.assertOneUndoTakesItBack(0)

    def test_smart_propagation_preview_then_apply(self):
        from MVABridgeLib.edit_backend import EditMode
        shell = self.activate("Smart Propagation")
        shell.run(lambda c: None)  # builds the controller (and its bridge)
        controller = shell.controller
        plane = controller.plane_of(self.red.mrmlSliceNode())
        volume = controller.bridge.work_volume()
        seed = plane.sample(volume.array, volume.index_to_ras, order=0) > 100
        controller.bridge.apply_slice_mask(plane, seed, EditMode.REPLACE)
        drawn = self.segment().sum()
        shell.run(lambda c: c.preview(self.red.mrmlSliceNode()))
        self.wait(shell)
        shell.run(lambda c: c.apply())
        self.assertOneUndoTakesItBack(drawn)

    def test_segment_anything_click_with_the_test_model(self):
        import importlib.util

        import qt
        if importlib.util.find_spec("torch") is None or importlib.util.find_spec("segment_anything") is None:
            self.skipTest("torch and segment_anything are not installed in this Slicer")
        settings = qt.QSettings()
        previous = {key: settings.value(key) for key in ("SegmentAnythingMVA/Model", "Developer/DeveloperMode")}
        settings.setValue("SegmentAnythingMVA/Model", "tiny")  # random weights: offered to developers only
        settings.setValue("Developer/DeveloperMode", "true")
        try:
            shell = self.activate("Segment Anything")
            self.replay(shell, ["PRESS", "RELEASE"])
            self.assertOneUndoTakesItBack(0)
        finally:
            for key, value in previous.items():
                settings.remove(key) if value is None else settings.setValue(key, value)


if __name__ == "__main__":
    unittest.main()

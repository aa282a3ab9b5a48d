"""In-Slicer test: every shared scenario, in the running application's scene (slicer_add_python_unittest)."""
import unittest

from slicer.ScriptedLoadableModule import ScriptedLoadableModuleTest


class SegmentAnythingMVAInSlicerTest(ScriptedLoadableModuleTest):
    def setUp(self):
        import slicer
        slicer.mrmlScene.Clear(0)

    def test_all_shared_scenarios(self):
        from MVAEvaluationLib import scenarios
        scenarios.run_in_slicer(self)


if __name__ == "__main__":
    unittest.main()

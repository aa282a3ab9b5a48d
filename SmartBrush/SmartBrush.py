"""Hidden module that registers the Smart Brush and Smart Regions Segment Editor effects."""
from slicer.ScriptedLoadableModule import ScriptedLoadableModule, ScriptedLoadableModuleTest


class SmartBrush(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        parent.title = "Smart Brush"
        parent.categories = ["Segmentation"]
        parent.dependencies = ["Segmentations"]
        parent.contributors = ["SegmentAnythingMVA developers"]
        parent.hidden = True
        parent.helpText = ("Adds the Smart Brush (strokes train a classifier that labels similar tissue) and "
                           "Smart Regions (click superpixels/supervoxels) effects to the Segment Editor.")
        parent.acknowledgementText = "Part of the SegmentAnythingMVA extension."
        from MVASlicerLib.effect_registration import connect_registration
        connect_registration(__file__, ["SegmentEditorSmartBrushLib", "SegmentEditorSmartRegionsLib"])


class SmartBrushTest(ScriptedLoadableModuleTest):
    def runTest(self):
        from MVAEvaluationLib import scenarios
        scenarios.run_in_slicer(self, ["smart_brush", "smart_regions"])

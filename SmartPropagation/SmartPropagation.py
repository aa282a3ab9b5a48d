"""Hidden module that registers the Smart Propagation Segment Editor effect."""
from slicer.ScriptedLoadableModule import ScriptedLoadableModule, ScriptedLoadableModuleTest


class SmartPropagation(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        parent.title = "Smart Propagation"
        parent.categories = ["Segmentation"]
        parent.dependencies = ["Segmentations"]
        parent.contributors = ["SegmentAnythingMVA developers"]
        parent.hidden = True
        parent.helpText = ("Adds the Smart Propagation effect to the Segment Editor: carry a slice's segment to "
                           "neighbouring slices, stop where the object ends, preview, then apply.")
        parent.acknowledgementText = "Part of the SegmentAnythingMVA extension."
        from MVASlicerLib.effect_registration import connect_registration
        connect_registration(__file__, ["SegmentEditorSmartPropagationLib"])


class SmartPropagationTest(ScriptedLoadableModuleTest):
    def runTest(self):
        from MVAEvaluationLib import scenarios
        scenarios.run_in_slicer(self, ["smart_propagation"])

"""SegmentAnythingMVA: model manager and settings for the smart Segment Editor effects."""
import logging

import qt
import slicer
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule, ScriptedLoadableModuleLogic, ScriptedLoadableModuleTest, ScriptedLoadableModuleWidget)

EFFECT_PACKAGES = ["SegmentEditorSegmentAnythingLib"]


class SegmentAnythingMVA(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        parent.title = "SegmentAnythingMVA"
        parent.categories = ["Segmentation"]
        parent.dependencies = ["Segmentations"]
        parent.contributors = ["SegmentAnythingMVA developers"]
        parent.helpText = (
            "Smart Segment Editor effects: Segment Anything, Smart Brush, Smart Regions and Smart Propagation. "
            "This module chooses the Segment Anything model and device, downloads checkpoints and shows the "
            "embedding cache. The effects are in the Segment Editor.")
        parent.acknowledgementText = (
            "Uses Meta's segment-anything models and Slicer's segment editor logic. "
            "Inspired by the Medical Volume Annotator.")
        from MVASlicerLib.effect_registration import connect_registration
        connect_registration(__file__, EFFECT_PACKAGES)


class SegmentAnythingMVALogic(ScriptedLoadableModuleLogic):
    """Dependency installation and model management; the work itself is in the Qt-free Lib packages."""

    def ensure_dependencies(self, model_name=None):
        """Install missing Python packages after asking the user (never at import time); `sam2` too for a SAM 2
        model, without touching the PyTorch extension's torch."""
        from MVASlicerLib.dependencies import ensure_dependencies, ensure_sam2
        ensure_dependencies(torch=True, ask_again=True)
        from SegmentAnythingLib.sam2_engine_factory import is_sam2_model
        if model_name is not None and is_sam2_model(model_name):
            ensure_sam2()


class SegmentAnythingMVAWidget(ScriptedLoadableModuleWidget):
    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        self.logic = SegmentAnythingMVALogic()
        form = qt.QFormLayout()
        self.layout.addLayout(form)
        self.installButton = qt.QPushButton("Install or update Python packages")
        form.addRow(self.installButton)
        self.modelCombo = qt.QComboBox()
        form.addRow("Model:", self.modelCombo)
        self.checkpointPath = ctk_path_line_edit()
        form.addRow("Checkpoint file:", self.checkpointPath)
        buttons = qt.QHBoxLayout()
        self.downloadButton = qt.QPushButton("Download / load model")
        self.deleteButton = qt.QPushButton("Delete downloaded file")
        buttons.addWidget(self.downloadButton)
        buttons.addWidget(self.deleteButton)
        form.addRow(buttons)
        self.deviceCombo = qt.QComboBox()
        self.deviceCombo.addItems(["auto", "cuda", "mps", "cpu"])
        form.addRow("Device:", self.deviceCombo)
        self.inputSizeCombo = qt.QComboBox()
        self.inputSizeCombo.toolTip = ("Side of the image the encoder sees. Smaller is several times faster on a CPU "
                                       "but departs from how the model was trained; check the masks. Applies when "
                                       "the model is (re)loaded.")
        form.addRow("Encoder input:", self.inputSizeCombo)
        self.cacheSpin = qt.QSpinBox()
        self.cacheSpin.setRange(64, 65536)
        self.cacheSpin.suffix = " MB"
        form.addRow("Embedding cache:", self.cacheSpin)
        self.prefetchCheck = qt.QCheckBox("Compute embeddings of neighbouring slices in the background")
        form.addRow(self.prefetchCheck)
        self.remoteUrlEdit = qt.QLineEdit()
        self.remoteUrlEdit.placeholderText = "https://gpu-server/ (mva inference-service); empty: this computer"
        form.addRow("Remote inference:", self.remoteUrlEdit)
        self.remoteTokenEdit = qt.QLineEdit()
        self.remoteTokenEdit.echoMode = qt.QLineEdit.Password
        form.addRow("Remote token:", self.remoteTokenEdit)
        import ctk
        self.embeddingStorePath = ctk.ctkPathLineEdit()
        self.embeddingStorePath.filters = ctk.ctkPathLineEdit.Dirs
        self.embeddingStorePath.toolTip = "mva embed's store; empty: mva-embeddings.zarr beside the volume's file"
        form.addRow("Embedding store:", self.embeddingStorePath)
        self.statusLabel = qt.QLabel()
        self.statusLabel.wordWrap = True
        form.addRow("Status:", self.statusLabel)
        self.cacheLabel = qt.QLabel()
        form.addRow("Embeddings:", self.cacheLabel)
        self.clearCacheButton = qt.QPushButton("Clear embedding cache")
        form.addRow(self.clearCacheButton)
        from MVASlicerLib.workflow_panel import WorkflowPanel
        self.workflowPanel = WorkflowPanel(self.layout)
        self.layout.addStretch(1)
        self.cacheTimer = qt.QTimer()
        self.cacheTimer.setInterval(2000)
        self.cacheTimer.connect("timeout()", self.updateCacheStatus)
        self.cacheTimer.start()
        self.clearCacheButton.connect("clicked()", self.onClearCache)

        self.installButton.connect("clicked()", self.onInstall)
        self.downloadButton.connect("clicked()", self.onLoadModel)
        self.deleteButton.connect("clicked()", self.onDelete)
        self.modelCombo.connect("currentIndexChanged(int)", self.saveSettings)
        self.deviceCombo.connect("currentIndexChanged(int)", self.saveSettings)
        self.inputSizeCombo.connect("currentIndexChanged(int)", self.saveSettings)
        self.cacheSpin.connect("valueChanged(int)", self.saveSettings)
        self.prefetchCheck.connect("toggled(bool)", self.saveSettings)
        self.remoteUrlEdit.connect("editingFinished()", self.saveSettings)
        self.remoteTokenEdit.connect("editingFinished()", self.saveSettings)
        self.embeddingStorePath.connect("currentPathChanged(QString)", self.saveSettings)
        self.checkpointPath.connect("currentPathChanged(QString)", self.saveSettings)
        self.loadSettings()

    def updateCacheStatus(self):
        from MVASlicerLib import sam_session
        self.cacheLabel.text = sam_session.engines().status()

    def onClearCache(self):
        from MVASlicerLib import sam_session
        engine = sam_session.engines().loaded()
        if engine is not None:
            engine.cache.clear()
        self.updateCacheStatus()

    def cleanup(self):
        self.cacheTimer.stop()

    def onInstall(self):
        try:
            self.logic.ensure_dependencies()
            self.loadSettings()
        except RuntimeError as error:
            slicer.util.errorDisplay(str(error))

    def loadSettings(self):
        try:
            from MVAControllersLib.sam_engines import offered_models
            from MVASlicerLib import sam_session
            from SegmentAnythingLib.engine_factory import INPUT_SIZE_LABELS
        except ImportError as error:
            self.statusLabel.text = f"Python packages missing ({error.name}): press 'Install or update'."
            return
        for widget in (self.modelCombo, self.deviceCombo, self.inputSizeCombo, self.cacheSpin, self.prefetchCheck):
            widget.blockSignals(True)
        self.modelCombo.clear()
        self.modelCombo.addItems(offered_models(sam_session.developer_mode()))  # "tiny" (random) for developers only
        self.modelCombo.currentText = sam_session.setting("Model")
        self.deviceCombo.currentText = sam_session.setting("Device")
        self.inputSizeCombo.clear()
        for size, label in INPUT_SIZE_LABELS.items():
            self.inputSizeCombo.addItem(label, size)
        self.inputSizeCombo.currentIndex = max(0, self.inputSizeCombo.findData(sam_session.setting("InputSize")))
        self.cacheSpin.value = sam_session.setting("CacheMB")
        self.prefetchCheck.checked = sam_session.setting("Prefetch")
        self.checkpointPath.currentPath = sam_session.setting("Checkpoint")
        self.remoteUrlEdit.text = sam_session.setting("RemoteURL")
        self.remoteTokenEdit.text = sam_session.setting("RemoteToken")
        self.embeddingStorePath.currentPath = sam_session.setting("EmbeddingStore")
        for widget in (self.modelCombo, self.deviceCombo, self.inputSizeCombo, self.cacheSpin, self.prefetchCheck):
            widget.blockSignals(False)

    def saveSettings(self, *args):
        from MVASlicerLib import sam_session
        for name, value in (("Model", self.modelCombo.currentText), ("Device", self.deviceCombo.currentText),
                            ("CacheMB", self.cacheSpin.value), ("Prefetch", self.prefetchCheck.checked),
                            ("Checkpoint", self.checkpointPath.currentPath), ("RemoteURL", self.remoteUrlEdit.text),
                            ("RemoteToken", self.remoteTokenEdit.text),
                            ("EmbeddingStore", self.embeddingStorePath.currentPath)):
            sam_session.set_setting(name, value)
        if self.inputSizeCombo.currentIndex >= 0:
            sam_session.set_setting("InputSize", self.inputSizeCombo.currentData)

    def onLoadModel(self):
        from MVASlicerLib import sam_session
        progress = slicer.util.createProgressDialog(labelText="Preparing the model...", maximum=100)

        def report(fraction):
            progress.value = int(100 * fraction)
            slicer.app.processEvents()

        try:
            self.logic.ensure_dependencies(self.modelCombo.currentText)
            engine = sam_session.engines().load(progress=report, cancel=lambda: progress.wasCanceled)
            self.statusLabel.text = (f"{engine.model_name} loaded on {engine.device}, "
                                     f"encoder input {engine.input_size or engine.native_size}")
        except Exception as error:  # noqa: BLE001 - shown to the user (missing packages, checkpoint, memory...)
            logging.warning("Loading the Segment Anything model failed: %s", error)
            slicer.util.errorDisplay(f"The model could not be loaded:\n{error}")
            self.statusLabel.text = str(error)
        finally:
            progress.close()

    def onDelete(self):
        from SegmentAnythingLib.algorithms.sam2_checkpoints import SAM2_CHECKPOINTS
        from SegmentAnythingLib.algorithms.sam_checkpoints import CHECKPOINTS, checkpoint_folder
        info = {**CHECKPOINTS, **SAM2_CHECKPOINTS}.get(self.modelCombo.currentText)
        if info is None:
            return
        path = checkpoint_folder() / info.file_name
        if path.exists() and slicer.util.confirmOkCancelDisplay(f"Delete {path}?"):
            path.unlink()
            self.statusLabel.text = f"Deleted {path}"


def ctk_path_line_edit():
    import ctk
    widget = ctk.ctkPathLineEdit()
    widget.filters = ctk.ctkPathLineEdit.Files
    widget.nameFilters = ["PyTorch checkpoints (*.pth *.pt)"]
    return widget


class SegmentAnythingMVATest(ScriptedLoadableModuleTest):
    def runTest(self):
        from MVAEvaluationLib import scenarios
        scenarios.run_in_slicer(self)

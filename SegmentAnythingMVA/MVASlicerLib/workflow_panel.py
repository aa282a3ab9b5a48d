"""The desktop side of the annotation workflow: log in, pick a case from the queue, annotate it with the
Segment Editor, save, submit, and (for reviewers) accept or return it. Same storage as `mva project` and the
browser annotator; the work is done by MVAWorkflowLib (service and scene_cases)."""
import ctk
import qt
import slicer


class WorkflowPanel:
    """A collapsible section of the SegmentAnythingMVA module."""

    def __init__(self, parent_layout):
        self.service, self.token, self.project, self.opened, self.cases = None, None, None, None, []
        box = ctk.ctkCollapsibleButton()
        box.text = "Annotation workflow"
        box.collapsed = True
        parent_layout.addWidget(box)
        form = qt.QFormLayout(box)
        self.databaseEdit = qt.QLineEdit()
        self.databaseEdit.placeholderText = "database URL or SQLite file (as for mva project --db)"
        self.userEdit = qt.QLineEdit()
        self.passwordEdit = qt.QLineEdit()
        self.passwordEdit.echoMode = qt.QLineEdit.Password
        self.loginButton = qt.QPushButton("Log in")
        for label, widget in (("Database:", self.databaseEdit), ("User:", self.userEdit),
                              ("Password:", self.passwordEdit)):
            form.addRow(label, widget)
        form.addRow(self.loginButton)
        self.projectCombo = qt.QComboBox()
        form.addRow("Project:", self.projectCombo)
        self.queueList = qt.QListWidget()
        form.addRow("Queue:", self.queueList)
        buttons = qt.QHBoxLayout()
        self.openButton, self.saveButton, self.submitButton = (qt.QPushButton(t) for t in ("Open", "Save", "Submit"))
        self.acceptButton, self.returnButton = qt.QPushButton("Accept"), qt.QPushButton("Return")
        for button in (self.openButton, self.saveButton, self.submitButton, self.acceptButton, self.returnButton):
            buttons.addWidget(button)
        form.addRow(buttons)
        self.commentEdit = qt.QLineEdit()
        self.commentEdit.placeholderText = "review comment"
        form.addRow("Comment:", self.commentEdit)
        self.statusLabel = qt.QLabel()
        self.statusLabel.wordWrap = True
        form.addRow(self.statusLabel)
        self.loginButton.connect("clicked()", lambda: self.run(self.login))
        self.projectCombo.connect("currentIndexChanged(int)", lambda index: self.run(self.refreshQueue))
        self.openButton.connect("clicked()", lambda: self.run(self.openCase))
        self.saveButton.connect("clicked()", lambda: self.run(self.save))
        self.submitButton.connect("clicked()", lambda: self.run(self.submit))
        self.acceptButton.connect("clicked()", lambda: self.run(lambda: self.review("accept")))
        self.returnButton.connect("clicked()", lambda: self.run(lambda: self.review("return")))

    def run(self, action):
        """Run a workflow action; role, conflict and input errors become a message, nothing half-done."""
        try:
            action()
        except (ValueError, OSError, RuntimeError) as error:  # WorkflowError subclasses ValueError
            self.statusLabel.text = str(error)
            slicer.util.errorDisplay(str(error))

    def login(self):
        from MVASlicerLib.dependencies import ensure_dependencies
        ensure_dependencies()
        from MVAWorkflowLib.service import WorkflowService
        self.service = WorkflowService.open(self.databaseEdit.text.strip() or "mva-workflow.db")
        self.token = self.service.login(self.userEdit.text.strip(), self.passwordEdit.text).token
        self.passwordEdit.text = ""
        self.projectCombo.blockSignals(True)
        self.projectCombo.clear()
        self.projects = self.service.list_projects(self.token)
        self.projectCombo.addItems([project.name for project in self.projects])
        self.projectCombo.blockSignals(False)
        self.refreshQueue()

    def refreshQueue(self):
        if self.service is None or not self.projects:
            return
        self.project = self.projects[self.projectCombo.currentIndex]
        queue = self.service.queue(self.token, self.project.id)
        self.queueList.clear()
        self.cases = []
        for group in ("mine", "available", "to_review"):
            for case in getattr(queue, group, ()):
                self.cases.append((group, case))
                self.queueList.addItem(f"{group.replace('_', ' ')}: {case.name} ({case.status})")
        self.statusLabel.text = f"{len(self.cases)} case(s)"

    def selected(self):
        row = self.queueList.currentRow
        if row < 0:
            raise ValueError("Select a case in the queue first")
        return self.cases[row]

    def openCase(self):
        from MVAWorkflowLib.scene_cases import open_case
        group, case = self.selected()
        if group == "available":
            case = self.service.claim(self.token, case.id)
        annotator = None
        if group == "to_review" and case.assignments:
            annotator = case.assignments[0].annotator
        self.opened = open_case(self.service, self.token, self.project.id, case.id, slicer.mrmlScene, annotator)
        slicer.util.setSliceViewerLayers(background=self.opened.volume_node, fit=True)
        editor = slicer.modules.segmenteditor.widgetRepresentation().self().editor
        editor.setSegmentationNode(self.opened.segmentation_node)
        editor.setSourceVolumeNode(self.opened.volume_node)
        self.statusLabel.text = f"Opened {case.name}"

    def save(self):
        if self.opened is None:
            raise ValueError("Open a case first")
        self.service.save_annotation(self.token, self.opened.case_id, self.opened.labelmap())
        self.statusLabel.text = "Saved"

    def submit(self):
        if self.opened is None:
            raise ValueError("Open a case first")
        self.service.submit(self.token, self.opened.case_id, self.opened.labelmap())
        self.statusLabel.text = "Submitted for review"
        self.refreshQueue()

    def review(self, decision):
        group, case = self.selected()
        self.service.review(self.token, case.id, decision, self.commentEdit.text)
        self.statusLabel.text = f"Case {case.name}: {decision}ed"
        self.refreshQueue()

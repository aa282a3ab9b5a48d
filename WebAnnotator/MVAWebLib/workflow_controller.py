"""The workflow in the page: login, queue, open / claim, form, save, submit, review (`mva serve --project`).

Page actions -> `WorkflowSession` (service calls) -> the app's scene (volume, one segment per project label).
Every workflow error (`MVAWorkflowLib.errors.WorkflowError`, a ValueError) ends up as a message in the page
(`wf_error`); version conflicts say so and ask to reload.

One trame server process holds one page state, shared by every tab connected to it: when a new browser
connects while someone is logged in, that user is logged out, so nobody inherits another user's session.
"""
import logging
import time

import numpy as np
from MVABridgeLib.segments import replace_segment_from_mask, segment_mask
from MVAWorkflowLib.errors import ConflictError, PermissionDeniedError, WorkflowError
from MVAWorkflowLib.storage import Labelmap

from MVAWebLib.workflow_session import VIEWING

_LOG = logging.getLogger(__name__)


def hex_to_rgb(color):
    color = color.lstrip("#")
    return [int(color[i:i + 2], 16) / 255.0 for i in (0, 2, 4)]


class WorkflowController:
    """Binds a `WorkflowSession` to an `MVAWebApp` (its state, controller and scene)."""

    def __init__(self, app, session):
        self.app = app
        self.session = session
        self.segment_values = {}  # segment id -> project label value
        self.timings = {}  # action -> last duration in seconds (login_to_queue, save, submit, review, open)

    # --- wiring -------------------------------------------------------------------------------------------
    def bind(self):
        state, ctrl = self.app.state, self.app.ctrl
        state.workflow_mode = True
        state.wf_user = None
        state.wf_project = self.session.project_name or ""
        state.wf_error = ""
        state.wf_info = ""
        state.wf_queue = {"mine": [], "available": [], "to_review": []}
        state.wf_case = None
        state.form_questions = []
        state.form_answers = {}
        state.review_comment = ""
        state.login_username = ""
        state.login_password = ""
        ctrl.wf_login = lambda username="", password="": self._action("login", self.login, username, password)
        ctrl.wf_logout = lambda: self._action("logout", self.logout)
        ctrl.wf_refresh = lambda: self._action("refresh", self.refresh_queue)
        ctrl.wf_claim = lambda case_id: self._action("claim", self.claim_and_open, case_id)
        ctrl.wf_open = lambda case_id, mode="annotate": self._action("open", self.open, case_id, mode)
        ctrl.wf_save = lambda answers=None: self._action("save", self.save, answers)
        ctrl.wf_submit = lambda answers=None: self._action("submit", self.submit, answers)
        ctrl.wf_review = lambda decision, comment="": self._action("review", self.review, decision, comment)
        ctrl.on_client_connected.add(self._on_client_connected)

    def _on_client_connected(self, *_args, **_kwargs):
        if self.session.session is not None:
            _LOG.warning("A new browser connected: logging %s out", self.session.user.username)
            self.logout()
            self.app.state.wf_error = "A new browser window connected: log in again"

    def _action(self, name, function, *args):
        state = self.app.state
        state.wf_error = ""
        started = time.perf_counter()
        try:
            result = function(*args)
        except ConflictError as error:
            state.wf_error = f"Conflict: {error}"
            result = None
        except PermissionDeniedError as error:
            state.wf_error = f"Not allowed: {error}"
            result = None
        except (WorkflowError, ValueError, OSError) as error:
            state.wf_error = str(error)
            result = None
        self.timings[name] = time.perf_counter() - started
        state.wf_timings = {k: round(v * 1000) for k, v in self.timings.items()}
        state.flush()
        return result

    # --- accounts and queue ----------------------------------------------------------------------------
    def login(self, username, password):
        user = self.session.login(username, password)
        state = self.app.state
        state.login_password = ""
        state.wf_user = {"name": user.username, "role": user.role}
        state.wf_project = self.session.project.name
        self.refresh_queue()
        state.wf_info = f"Logged in as {user.username} ({user.role})"
        return user

    def logout(self):
        self.session.logout()
        state = self.app.state
        state.wf_user, state.wf_case, state.form_questions, state.form_answers = None, None, [], {}
        state.wf_queue = {"mine": [], "available": [], "to_review": []}
        state.wf_info = "Logged out"
        self._clear_scene()

    def refresh_queue(self):
        self.app.state.wf_queue = self.session.queue_rows()

    # --- cases ----------------------------------------------------------------------------------------------
    def claim_and_open(self, case_id):
        self.session.claim(case_id)
        return self.open(case_id, "annotate")

    def open(self, case_id, mode="annotate"):
        current = self.session.open(int(case_id), mode)
        array, ijk_to_ras = current.volume
        self.app.load_volume_array(array, ijk_to_ras, current.case.name)
        self._label_segments(current.labelmap, ijk_to_ras)
        state = self.app.state
        state.wf_case = {"id": current.case.id, "name": current.case.name, "status": current.case.status,
                         "mode": mode, "annotator": current.annotator,
                         "comment": current.case.reviews[-1].comment if current.case.reviews else ""}
        state.form_questions = self.session.questions()
        state.form_answers = {q["key"]: _form_value(current.answers.get(q["key"])) for q in state.form_questions}
        state.review_comment = ""
        state.wf_info = f"{current.case.name} opened to {mode} in {self.app.load_seconds:.2f} s"
        self.refresh_queue()
        return current

    def save(self, answers=None):
        assignment = self.session.save(self.labelmap(), _answers(answers, self.app.state))
        self.app.state.wf_info = f"Saved revision {assignment.revision}"
        self.refresh_queue()
        return assignment

    def submit(self, answers=None):
        case = self.session.submit(self.labelmap(), _answers(answers, self.app.state))
        self.app.state.wf_info = f"Submitted {case.name}: {case.status}"
        self._close_case()
        return case

    def review(self, decision, comment=""):
        case = self.session.review(decision, comment)
        self.app.state.wf_info = f"{case.name}: {case.status}"
        self._close_case()
        return case

    def _close_case(self):
        self.app.state.wf_case, self.app.state.form_questions = None, []
        self._clear_scene()
        self.refresh_queue()

    def _clear_scene(self):
        self.app.unload_case()
        self.segment_values = {}

    # --- segments <-> labelmap ---------------------------------------------------------------------------
    def _label_segments(self, labelmap, ijk_to_ras):
        """One segment per project label (value, name, colour), filled from the stored labelmap."""
        editor = self.app.editor
        for segment_id in list(editor.get_segment_ids()):
            editor.remove_segment(segment_id)
        self.segment_values = {}
        node = editor.active_segmentation_node
        for label in self.session.labels():
            segment_id = editor.add_empty_segment(segment_name=label.name, segment_color=hex_to_rgb(label.color),
                                                  segment_value=label.value)
            self.segment_values[segment_id] = label.value
            if labelmap is not None and np.any(labelmap.array_kji == label.value):
                replace_segment_from_mask(node, segment_id, labelmap.array_kji == label.value,
                                          labelmap.ijk_to_ras)
        if self.segment_values:
            editor.set_active_segment_id(next(iter(self.segment_values)))
        if editor.undo_stack is not None:
            editor.undo_stack.clear()
        self.app.refresh_display()

    def labelmap(self):
        """The open case's segments as a `Labelmap` in the case volume's grid (later labels win overlaps)."""
        current = self.session.open_case
        if current is None:
            raise WorkflowError("Open a case first")
        array, ijk_to_ras = current.volume
        labels = np.zeros(array.shape, np.uint16 if max(self.segment_values.values(), default=0) > 255
                          else np.uint8)
        node = self.app.editor.active_segmentation_node
        for segment_id, value in self.segment_values.items():
            labels[segment_mask(node, segment_id, array.shape, ijk_to_ras) > 0] = value
        return Labelmap(labels, ijk_to_ras)

    def on_tool_changed(self, title):
        self.session.clock.switch(title or VIEWING)

    def on_tool_job(self, label):
        self.session.clock.interaction(label)


def _answers(answers, state):
    return dict(answers if answers is not None else (state.form_answers or {}))


def _form_value(value):
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return "" if value is None else str(value)

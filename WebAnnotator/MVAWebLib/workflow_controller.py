"""The workflow in the page: login, queue, open / claim, form, save, submit, review (`mva serve --project` and
the team deployment's session processes).

Page actions -> `WorkflowSession` (service calls) -> the app's scene (volume, one segment per project label).
Every error ends up as a readable message in the page's snackbar (`wf_error`), never a traceback; a version
conflict also offers Reload. Unsaved work is never dropped without asking: opening another case or logging out
with unsaved changes asks save / discard / cancel (`wf_pending`), and an expired login autosaves the working
labelmap (autosave.py) before the page goes back to the login, to be offered to the same user on the same case.

The login is either the page's own dialog (`mva serve`, one browser: the password travels as a call argument
and is a client-only state key, never server state) or the gateway's (`managed`: team deployment).
"""
import asyncio
import dataclasses
import logging
import time

import numpy as np
from MVABridgeLib.segments import replace_segment_from_mask, segment_mask
from MVAWorkflowLib.errors import (AuthenticationError, ConflictError, InvalidStateError, OperationCancelledError,
                                   PermissionDeniedError, WorkflowError)
from MVAWorkflowLib.storage import Labelmap
from sqlalchemy.exc import SQLAlchemyError

from MVAWebLib.workflow_session import VIEWING
from MVAWebLib.workflow_unsaved import UnsavedWork, answered_text

_LOG = logging.getLogger(__name__)
CHECK_EVERY_S = 30  # login still valid? unsaved work autosaved?
EMPTY_QUEUE = {"mine": [], "available": [], "to_review": []}


def hex_to_rgb(color):
    color = color.lstrip("#")
    return [int(color[i:i + 2], 16) / 255.0 for i in (0, 2, 4)]


@dataclasses.dataclass
class ManagedLogin:
    """The team deployment: the gateway logged the user in; logout and expiry send the page back to it."""
    gateway_url: str
    on_logged_out: object = None  # callable: the session process ends soon after


class WorkflowController(UnsavedWork):
    """Binds a `WorkflowSession` to an `MVAWebApp` (its state, controller and scene)."""

    def __init__(self, app, session, managed=None, autosave=None):
        self.app = app
        self.session = session
        self.managed = managed
        self.autosave = autosave  # an AutosaveStore, or None (no autosave)
        self.segment_values = {}  # segment id -> project label value
        self.timings = {}  # action -> last duration in seconds (login_to_queue, save, submit, review, open)
        self._baseline = None  # (labels array, answers) as last opened / saved: what "unsaved" compares to
        self._pending = None  # (name, function, args) waiting for the save / discard answer
        self._watched_node = None  # the segmentation node whose edits set `wf_dirty`

    # --- wiring -------------------------------------------------------------------------------------------
    def bind(self):
        state, server = self.app.state, self.app.server
        state.workflow_mode = True
        state.wf_managed = self.managed is not None
        state.wf_user = None
        state.wf_project = self.session.project_name or ""
        state.wf_error = ""
        state.wf_info = ""
        state.wf_conflict = False
        state.wf_pending = None
        state.wf_restore = None
        state.wf_dirty = False  # the open case may have unsaved changes (the page asks before the tab closes)
        state.wf_expiry_warning = ""
        state.wf_queue = EMPTY_QUEUE
        state.wf_case = None
        state.form_questions = []
        state.form_answers = {}
        state.review_comment = ""
        state.login_username = ""
        state.redirect_to = ""
        state.client_only("login_password")  # typed in the page, sent only as an argument of the login call
        actions = {
            "wf_login": lambda username="", password="": self._action("login", self.login, username, password),
            "wf_logout": lambda: self._action("logout", self._unless_unsaved, "logout", self.logout),
            "wf_refresh": lambda: self._action("refresh", self.refresh_queue),
            "wf_claim": lambda case_id: self._action("claim", self._unless_unsaved, "claim", self.claim_and_open,
                                                     case_id),
            "wf_open": lambda case_id, mode="annotate": self._action("open", self._unless_unsaved, "open",
                                                                     self.open, case_id, mode),
            "wf_save": lambda answers=None: self._action("save", self.save, answers, True),
            "wf_submit": lambda answers=None: self._action("submit", self.submit, answers),
            "wf_review": lambda decision, comment="": self._action("review", self.review, decision, comment),
            "wf_reload": lambda: self._action("reload", self.reload),
            "wf_resolve": lambda choice: self._action("resolve", self.resolve_pending, choice),
            "wf_restore_choice": lambda choice: self._action("restore", self.restore_choice, choice),
        }
        for name, function in actions.items():
            self.app.ctrl[name] = function
            server.trigger(name)(function)  # a stable name: page scripts (and attack tests) can call it
        self.watch_form()
        self.app.ctrl.on_server_ready.add(lambda **_: asyncio.ensure_future(self._check_periodically()))

    def _action(self, name, function, *args):
        state = self.app.state
        state.wf_error = ""
        state.wf_conflict = False
        started = time.perf_counter()
        result = None
        try:
            if self.saving() and name not in ("save", "refresh"):
                raise InvalidStateError("The annotation is being saved: wait a moment, then try again")
            result = function(*args)
        except AuthenticationError as error:
            if name == "login":
                state.wf_error = str(error)
            else:
                self.expired()
        except ConflictError as error:
            state.wf_error = f"Conflict: {error}"
            state.wf_conflict = True
        except OperationCancelledError as error:
            state.wf_info = str(error)
        except PermissionDeniedError as error:
            state.wf_error = f"Not allowed: {error}"
        except (WorkflowError, ValueError, OSError) as error:
            state.wf_error = str(error)
        except SQLAlchemyError:
            _LOG.exception("Database error during %s", name)
            state.wf_error = "The database did not answer as expected: try again, or ask the administrator"
        self.timings[name] = time.perf_counter() - started
        state.wf_timings = {k: round(v * 1000) for k, v in self.timings.items()}
        state.flush()
        return result

    # --- accounts and queue ----------------------------------------------------------------------------
    def login(self, username, password):
        if self.managed is not None:
            raise PermissionDeniedError("Log in on the login page")
        user = self.session.login(username, password)
        self._logged_in(user)
        return user

    def adopt(self, session_info):
        """Team deployment: the browser brought a ticket that was redeemed for `session_info`."""
        user = self.session.adopt(session_info)
        self._logged_in(user)
        return user

    def _logged_in(self, user):
        state = self.app.state
        state.wf_user = {"name": user.username, "role": user.role}
        state.wf_project = self.session.project.name
        self.refresh_queue()
        state.wf_info = f"Logged in as {user.username} ({user.role})"

    def logout(self):
        self._discard_autosave()
        self.session.logout()
        self._logged_out("Logged out")
        if self.managed is not None:
            self.app.state.redirect_to = self.managed.gateway_url + "logout"
            if self.managed.on_logged_out is not None:
                self.managed.on_logged_out()

    def _logged_out(self, info):
        state = self.app.state
        state.wf_user, state.wf_case, state.form_questions, state.form_answers = None, None, [], {}
        state.wf_queue, state.wf_pending, state.wf_restore = EMPTY_QUEUE, None, None
        state.wf_info = info
        self._pending = None
        self._clear_scene()

    def expired(self):
        """The login expired or was revoked: keep unsaved work, show nothing of the project, ask to log in."""
        kept = self.autosave_now()
        self.session.session, self.session.open_case = None, None
        self._logged_out("")
        kept_text = f" Your unsaved work on {kept} was kept: open the case again to restore it." if kept else ""
        self.app.state.wf_error = "Your login has expired: log in again." + kept_text
        if self.managed is not None:
            self.app.state.redirect_to = self.managed.gateway_url + "?expired=1"
            if self.managed.on_logged_out is not None:
                self.managed.on_logged_out()

    async def _check_periodically(self):
        while True:
            await asyncio.sleep(CHECK_EVERY_S)
            self.check()

    def check(self):
        """Expired login -> `expired()`; unsaved changes -> autosave. Called every CHECK_EVERY_S seconds."""
        if self.session.session is None:
            return
        try:
            self.session.check_login()
        except AuthenticationError:
            self.expired()
            self.app.state.flush()
            return
        unsaved = self.update_dirty()
        self.warn_before_expiry(unsaved)
        if unsaved:
            self.autosave_now(unsaved=True)
        self.app.state.flush()

    def refresh_queue(self):
        self.app.state.wf_queue = self.session.queue_rows()

    # --- cases --------------------------------------------------------------------------------------------
    def claim_and_open(self, case_id):
        self.session.claim(case_id)
        return self.open(case_id, "annotate")

    def open(self, case_id, mode="annotate"):
        current = self.session.open(int(case_id), mode)
        self.app.set_read_only(mode == "review")
        self._baseline = None
        array, ijk_to_ras = current.volume
        self.app.load_volume_array(array, ijk_to_ras, current.case.name)
        self._label_segments(current.labelmap)
        state = self.app.state
        state.wf_case = {"id": current.case.id, "name": current.case.name, "status": current.case.status,
                         "mode": mode, "annotator": current.annotator,
                         "comment": current.case.reviews[-1].comment if current.case.reviews else ""}
        state.form_questions = self.session.questions()
        state.form_answers = {q["key"]: _form_value(current.answers.get(q["key"])) for q in state.form_questions}
        state.review_comment = ""
        state.wf_info = f"{current.case.name} opened to {mode} in {self.app.load_seconds:.2f} s"
        self._set_baseline()
        self.watch_segments()
        if mode == "annotate":
            self._offer_autosave(current)
        self.refresh_queue()
        return current

    def reload(self):
        """Open the open case again from the database (after a conflict: the newest revision)."""
        current = self.session.open_case
        if current is None:
            raise WorkflowError("Open a case first")
        return self.open(current.case.id, current.mode)

    def save(self, answers=None, background=False):
        """Save the open case's segments and answers as a new revision.

        `background` (the page's Save): the file is written and committed in the job runner's thread, with the
        page's progress bar and Cancel (honoured until the commit starts); the outcome comes back through
        `_action` on the loop. Otherwise (unsaved-work prompt, scripts) the save is done here and returned.
        """
        if answers is not None:
            self.app.state.form_answers = dict(answers)
        self.session.check_can_save()
        labelmap, answered = self.labelmap(), _answers(answers, self.app.state)  # read on the loop: MRML
        if not background:
            return self._saved(labelmap, answered, self.session.save(labelmap, answered))
        runner = self.app.runner

        def compute():
            try:
                return self.session.save(labelmap, answered, runner.report_progress, runner.cancel_requested), None
            except (WorkflowError, SQLAlchemyError, OSError) as error:  # raised again in _action, on the loop
                return None, error

        def apply(outcome):
            self._action("save", self._save_outcome, labelmap, answered, outcome)
        previous_info, self.app.state.wf_info = self.app.state.wf_info, "Saving…"
        if not runner.submit("Save", compute, apply, kind="Saving the annotation", cancel_drops_result=False):
            self.app.state.wf_info = previous_info
            raise InvalidStateError(f"{runner.kind or 'A tool'} is still running: wait for it or cancel it, "
                                    "then save")
        return None

    def saving(self):
        """A page Save is being written or committed (other workflow actions wait for it)."""
        return self.app.runner.busy and self.app.runner.label == "Save"

    def _save_outcome(self, labelmap, answered, outcome):
        assignment, error = outcome
        if error is not None:
            raise error
        return self._saved(labelmap, answered, assignment)

    def _saved(self, labelmap, answered, assignment):
        self.app.state.wf_info = f"Saved revision {assignment.revision}"
        self._baseline = (labelmap.array_kji.copy(), answered_text(answered))  # what was saved, not edits since
        self.app.state.wf_dirty, self.app.state.wf_expiry_warning = False, ""
        self._discard_autosave()
        self.refresh_queue()
        return assignment

    def submit(self, answers=None):
        labelmap = self.labelmap()
        current, user = self.session.open_case, self.session.user
        case = self.session.submit(labelmap, _answers(answers, self.app.state))
        if self.autosave is not None:
            self.autosave.discard(user.id, current.case.id)
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
        self.app.set_read_only(False)
        self.segment_values = {}
        self._baseline = None
        self.app.state.wf_dirty, self.app.state.wf_expiry_warning = False, ""

    def _set_baseline(self):
        self._baseline = (self.labelmap().array_kji.copy(), answered_text(self.app.state.form_answers))
        self.app.state.wf_dirty, self.app.state.wf_expiry_warning = False, ""

    # --- segments <-> labelmap ---------------------------------------------------------------------------
    def _label_segments(self, labelmap):
        """One segment per project label (value, name, colour), filled from the stored labelmap."""
        editor = self.app.editor
        for segment_id in list(editor.get_segment_ids()):
            editor.remove_segment(segment_id)
        self.segment_values = {}
        for label in self.session.labels():
            segment_id = editor.add_empty_segment(segment_name=label.name, segment_color=hex_to_rgb(label.color),
                                                  segment_value=label.value)
            self.segment_values[segment_id] = label.value
        self._fill_segments(labelmap)
        if self.segment_values:
            editor.set_active_segment_id(next(iter(self.segment_values)))

    def _fill_segments(self, labelmap):
        node = self.app.editor.active_segmentation_node
        for segment_id, value in self.segment_values.items():
            mask = labelmap.array_kji == value if labelmap is not None else None
            if mask is not None and (np.any(mask) or self._baseline is not None):
                replace_segment_from_mask(node, segment_id, mask, labelmap.ijk_to_ras)
        if self.app.editor.undo_stack is not None:
            self.app.editor.undo_stack.clear()
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

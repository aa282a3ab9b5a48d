"""One browser user's work in a workflow project: a thin adapter over `MVAWorkflowLib.service.WorkflowService`.

No UI and no MRML here: the page (workflow_ui.py) and the app (workflow_controller.py) call it. It keeps the
session token, the open case and the versions it last saw (passed back as `expected_version`, so a save or a
review made on stale data fails with the service's `ConflictError`), and times the tools used on the open case
(`ToolClock`, written with `record_tool_usage`).
"""
import dataclasses
import logging
import os
import time

from MVAWorkflowLib.errors import InvalidStateError, NotFoundError, PermissionDeniedError, WorkflowError
from sqlalchemy.exc import SQLAlchemyError

_LOG = logging.getLogger(__name__)

VIEWING = "viewing"  # time on a case with no tool active


class NotLoggedInError(WorkflowError):
    """A workflow action before login (or after logout)."""


class NoOpenCaseError(WorkflowError):
    """A save, submit or review with no case open."""


def database_url(project_option):
    """`--project` value -> SQLAlchemy URL: URLs pass through; a file path becomes an SQLite URL."""
    if "://" in project_option:
        return project_option
    return "sqlite:///" + os.path.abspath(project_option)


@dataclasses.dataclass
class OpenCase:
    """The case shown in the page."""
    case: object  # CaseInfo
    mode: str  # "annotate" or "review"
    volume: tuple  # (array_kji, ijk_to_ras)
    labelmap: object  # Labelmap or None
    answers: dict
    annotator: str  # whose annotation is shown
    version: int  # AssignmentInfo.version (annotate) or CaseInfo.version (review) last seen


class ToolClock:
    """Wall time and interactions per tool on one case; `drain()` returns and resets them."""

    def __init__(self, now=time.perf_counter):
        self._now = now
        self.tool = VIEWING
        self._since = now()
        self.seconds = {}
        self.interactions = {}

    def switch(self, tool):
        self._close()
        self.tool = tool or VIEWING

    def interaction(self, tool=None):
        tool = tool or self.tool
        self.interactions[tool] = self.interactions.get(tool, 0) + 1

    def _close(self):
        now = self._now()
        self.seconds[self.tool] = self.seconds.get(self.tool, 0.0) + (now - self._since)
        self._since = now

    def drain(self):
        """[(tool, seconds, interactions)] since the last drain."""
        self._close()
        tools = sorted(set(self.seconds) | set(self.interactions))
        usage = [(t, self.seconds.get(t, 0.0), self.interactions.get(t, 0)) for t in tools]
        self.seconds, self.interactions = {}, {}
        return usage


class WorkflowSession:
    """Login, queue, open / claim, save, submit and review for one user of one project."""

    def __init__(self, service, project_name=None):
        self.service = service
        self.project_name = project_name
        self.project = None
        self.session = None
        self.open_case = None
        self.clock = ToolClock()

    # --- accounts ---------------------------------------------------------------------------------------
    @property
    def user(self):
        return self.session.user if self.session else None

    @property
    def token(self):
        if self.session is None:
            raise NotLoggedInError("Log in first")
        return self.session.token

    def login(self, username, password, address=None):
        """Log in (throttled and audited by the service) and resolve the project; raises AuthenticationError
        (LoginThrottledError when throttled) or NotFoundError with a message."""
        session = self.service.login(username, password, address=address)
        try:
            project = self._resolve_project(session.token)
        except WorkflowError:
            self.service.logout(session.token)
            raise
        self.session, self.project, self.open_case = session, project, None
        return session.user

    def adopt(self, session_info):
        """Use a session opened elsewhere (a redeemed ticket: the team deployment's login is the gateway's).

        The open case is kept when the new session belongs to the same user (a reload of the page); raises
        PermissionDeniedError for another user's session and NotFoundError when the project cannot be resolved.
        """
        if self.session is not None and self.session.user.id != session_info.user.id:
            raise PermissionDeniedError("This session process belongs to another user")
        project = self._resolve_project(session_info.token)
        previous, self.session, self.project = self.session, session_info, project
        if previous is not None and previous.token != session_info.token:
            try:
                self.service.logout(previous.token)
            except WorkflowError:
                pass  # already expired or revoked: nothing to close
        return session_info.user

    def _resolve_project(self, token):
        if self.project_name:
            return self.service.get_project(token, self.project_name)
        projects = self.service.list_projects(token)
        if len(projects) != 1:
            raise NotFoundError(f"{len(projects)} projects exist: start the server with --project-name NAME")
        return projects[0]

    def check_login(self):
        """Raise AuthenticationError when the session has expired or was revoked (no-op when logged out)."""
        if self.session is not None:
            self.service.whoami(self.session.token)

    def logout(self):
        if self.session is not None:
            self.close_case()
            self.service.logout(self.session.token)
        self.session, self.open_case = None, None

    # --- queue --------------------------------------------------------------------------------------------
    def queue_rows(self):
        """{"mine" | "available" | "to_review": [row]}; a row is a dict the page can show."""
        queue = self.service.queue(self.token, self.project.id)
        return {part: [_row(case) for case in getattr(queue, part)] for part in ("mine", "available", "to_review")}

    def questions(self):
        return [{"key": q.key, "text": q.text, "kind": q.kind, "choices": list(q.choices), "required": q.required}
                for q in self.service.list_questions(self.token, self.project.id)]

    def labels(self):
        return self.service.list_labels(self.token, self.project.id)

    # --- cases --------------------------------------------------------------------------------------------
    def claim(self, case_id):
        return self.service.claim(self.token, case_id)

    def open(self, case_id, mode):
        """Load a case to annotate (the user's own work) or to review (its first annotator's work)."""
        self.close_case()
        token, user = self.token, self.user
        case = self.service.get_case(token, case_id)
        if mode == "annotate":
            assignment = case.assignment_of(user.id)
            if assignment is None:
                raise InvalidStateError(f"Claim case {case.name!r} before opening it")
            annotator, version = user.username, assignment.version
        elif mode == "review":
            submitted = [a for a in case.assignments if a.submitted_at is not None]
            if not submitted:
                raise InvalidStateError(f"Case {case.name!r} has no submitted annotation to review")
            annotator, version = submitted[0].annotator, case.version
        else:
            raise ValueError(f"Unknown mode {mode!r}: use 'annotate' or 'review'")
        volume = self.service.load_volume(token, case_id)
        try:
            labelmap = self.service.load_annotation(token, case_id, annotator=annotator)
        except NotFoundError:
            labelmap = None
        answers = self.service.answers(token, case_id, annotator=annotator)
        self.open_case = OpenCase(case, mode, volume, labelmap, answers, annotator, version)
        self.clock = ToolClock()
        return self.open_case

    def _annotating(self):
        if self.open_case is None:
            raise NoOpenCaseError("Open a case first")
        if self.open_case.mode != "annotate":
            raise InvalidStateError("This case is open for review: annotations cannot be saved from here")
        return self.open_case

    def check_can_save(self):
        """Raise NoOpenCaseError / InvalidStateError (review mode) before any work starts."""
        self._annotating()

    def save(self, labelmap, answers, progress=None, cancel=None):
        """Save answers and a new annotation revision in one transaction (expected_version: the version last
        seen; on a conflict nothing is saved). `progress` / `cancel`: see `save_annotation`."""
        current = self._annotating()
        assignment = self.service.save_annotation(self.token, current.case.id, labelmap,
                                                  expected_version=current.version, answers=_answered(answers),
                                                  progress=progress, cancel=cancel)
        current.version = assignment.version
        try:
            self.flush_usage()
        except (WorkflowError, SQLAlchemyError) as error:  # the revision is committed: statistics must not undo that
            _LOG.warning("Tool usage of case %s not recorded: %s", current.case.id, error)
        return assignment

    def submit(self, labelmap, answers):
        current = self._annotating()
        self.flush_usage()
        case = self.service.submit(self.token, current.case.id, labelmap, _answered(answers),
                                   expected_version=current.version)
        self.open_case = None
        return case

    def review(self, decision, comment=""):
        if self.open_case is None or self.open_case.mode != "review":
            raise NoOpenCaseError("Open a case to review first")
        case = self.service.review(self.token, self.open_case.case.id, decision, comment,
                                   expected_version=self.open_case.version)
        self.open_case = None
        return case

    def flush_usage(self):
        """Write the time and interactions per tool on the open case (annotation only) to the database."""
        if self.open_case is None or self.open_case.mode != "annotate" or self.session is None:
            return []
        usage = [u for u in self.clock.drain() if u[1] > 0 or u[2] > 0]
        for tool, seconds, interactions in usage:
            self.service.record_tool_usage(self.token, self.open_case.case.id, tool, seconds, interactions)
        return usage

    def close_case(self):
        self.flush_usage()
        self.open_case = None


def _answered(answers):
    return {key: value for key, value in (answers or {}).items() if value not in (None, "")}


def _row(case):
    comment = case.reviews[-1].comment if case.reviews else ""
    return {"id": case.id, "name": case.name, "status": case.status, "version": case.version, "comment": comment}

"""Service API, part 3: the case queue, claiming, saving, submitting, reviewing, tool usage.

Versions: `CaseInfo.version` changes on every status or claim change; pass it as `expected_version` to
`review` so a decision made on a stale view fails with `ConflictError`. `AssignmentInfo.version` changes on
every save of one annotator's work; pass it to `save_annotation` / `submit` so two browser tabs of the same
user cannot overwrite each other. Two *different* annotators submitting the same double-annotated case at
once never conflict: each has their own assignment and the case's status change is retried on fresh data.
"""
import dataclasses
import logging

from sqlalchemy import select

from MVAWorkflowLib.case_sources import read_case_volume
from MVAWorkflowLib.errors import (ConflictError, InvalidInputError, InvalidStateError, NotFoundError,
                                   PermissionDeniedError)
from MVAWorkflowLib.forms import normalise_answer
from MVAWorkflowLib.models import (Assignment, AssignmentStatus, Case, CaseStatus, FormAnswer, FormQuestion,
                                   Project, Review, Role, ToolEvent, User, utcnow)
from MVAWorkflowLib.service_base import (AssignmentInfo, CaseInfo, ReviewInfo, audit, get_or_raise, require,
                                        resolve_actor)
from MVAWorkflowLib.storage import StorageError

_log = logging.getLogger(__name__)
OPEN_WORK = (AssignmentStatus.CLAIMED.value, AssignmentStatus.RETURNED.value)


@dataclasses.dataclass(frozen=True)
class Queue:
    """What one user can work on in one project.

    mine: cases this user claimed and has not submitted (including returned ones, with the reviewer's comment
    in `reviews`); available: cases still needing an annotator; to_review: cases waiting for review that this
    user did not annotate (reviewers and admins only).
    """
    mine: tuple
    available: tuple
    to_review: tuple


def case_info(session, case, viewer):
    """The `CaseInfo` of `case` as `viewer` (a `User` row) may see it: the source path only for admins."""
    assignments = session.execute(
        select(Assignment, User.username).join(User, Assignment.annotator_id == User.id)
        .where(Assignment.case_id == case.id).order_by(Assignment.id)).all()
    reviews = session.execute(
        select(Review, User.username).join(User, Review.reviewer_id == User.id)
        .where(Review.case_id == case.id).order_by(Review.id)).all()
    source_path = case.source_path if viewer.role == Role.ADMIN.value else ""
    return CaseInfo(case.id, case.project_id, case.name, source_path, case.source_kind, case.status,
                    case.version,
                    tuple(AssignmentInfo(a.id, name, a.annotator_id, a.status, a.claimed_at, a.submitted_at,
                                         a.annotation_revision, a.version) for a, name in assignments),
                    tuple(ReviewInfo(name, r.decision, r.comment, r.created_at) for r, name in reviews))


class CasesMixin:
    """Queue, claim, submit, review (saving and opening annotations: `service_annotations`)."""

    def queue(self, actor, project):
        """The user's `Queue` for a project (see `Queue`)."""
        def work(session):
            user = require(session, actor, "view_project")
            row = self._project(session, project)
            cases = list(session.scalars(select(Case).where(Case.project_id == row.id).order_by(Case.id)))
            own = {a.case_id: a for a in session.scalars(
                select(Assignment).join(Case).where(Case.project_id == row.id, Assignment.annotator_id == user.id))}
            mine, available, to_review = [], [], []
            for case in cases:
                assignment = own.get(case.id)
                if assignment is not None and assignment.status in OPEN_WORK:
                    mine.append(case_info(session, case, user))
                elif (assignment is None and case.status == CaseStatus.TO_ANNOTATE.value
                      and case.claimed_count < row.annotations_per_case and user.role != Role.REVIEWER.value):
                    available.append(case_info(session, case, user))
                elif (assignment is None and case.status == CaseStatus.IN_REVIEW.value
                      and user.role in (Role.REVIEWER.value, Role.ADMIN.value)):
                    to_review.append(case_info(session, case, user))
            return Queue(tuple(mine), tuple(available), tuple(to_review))
        return self._run(work)

    def get_case(self, actor, case_id):
        """One case with its assignments and reviews (`CaseInfo`)."""
        def work(session):
            user = resolve_actor(session, actor)
            return case_info(session, get_or_raise(session, Case, case_id, "case"), user)
        return self._run(work)

    def case_by_name(self, actor, project, name):
        """A case of a project by its name (`CaseInfo`); raises `NotFoundError`."""
        def work(session):
            user = resolve_actor(session, actor)
            row = self._project(session, project)
            case = session.scalar(select(Case).where(Case.project_id == row.id, Case.name == name))
            if case is None:
                raise NotFoundError(f"Project {row.name!r} has no case named {name!r}")
            return case_info(session, case, user)
        return self._run(work)

    def claim(self, actor, case_id):
        """Annotator / admin: take a case to annotate. Idempotent for a case the user already holds.

        Raises
        ------
        InvalidStateError
            The case is not "to annotate" or already has `annotations_per_case` annotators.
        """
        def work(session):
            user = require(session, actor, "annotate")
            case = get_or_raise(session, Case, case_id, "case")
            held = session.scalar(select(Assignment).where(Assignment.case_id == case.id,
                                                           Assignment.annotator_id == user.id))
            if held is not None:
                return case_info(session, case, user)
            project = session.get(Project, case.project_id)
            if case.status != CaseStatus.TO_ANNOTATE.value:
                raise InvalidStateError(f"Case {case.name!r} is {case.status}; only cases to annotate can be claimed")
            if case.claimed_count >= project.annotations_per_case:
                raise InvalidStateError(f"Case {case.name!r} already has {case.claimed_count} annotator(s)")
            session.add(Assignment(case_id=case.id, annotator_id=user.id, claimed_at=utcnow()))
            case.claimed_count += 1  # bumps case.version: two claims of the last slot cannot both win
            case.updated_at = utcnow()
            session.flush()
            audit(session, user, "claim", "case", case.id)
            return case_info(session, case, user)
        return self._run(work, retry_conflicts=True)

    def claim_next(self, actor, project):
        """Claim the first available case of the project; returns its `CaseInfo` or None when none is left."""
        for case in self.queue(actor, project).available:
            try:
                return self.claim(actor, case.id)
            except InvalidStateError:
                continue  # someone else took the last slot meanwhile
        return None

    def save_answers(self, actor, case_id, answers):
        """Annotator: store form answers ({question key: value}) without submitting. Returns all answers."""
        def work(session):
            user, case, assignment = self._open_assignment(session, actor, case_id, None)
            self._store_answers(session, case, assignment, answers)
            audit(session, user, "save_answers", "case", case.id, keys=sorted(answers))
            return self._answers(session, assignment)
        return self._run(work)

    def submit(self, actor, case_id, labelmap=None, answers=None, expected_version=None):
        """Annotator: submit the case for review (optionally saving a final labelmap and answers first).

        The case goes to "in review" once `annotations_per_case` annotators have submitted.

        Raises
        ------
        InvalidInputError
            No annotation saved and none given, a label value not in the project, or required answers missing.
        ConflictError
            `expected_version` differs from the assignment's version.
        """
        staged = self._stage_annotation(actor, case_id, labelmap, expected_version)

        def work(session):
            user, case, assignment = self._open_assignment(session, actor, case_id, expected_version)
            if staged is not None:
                self._commit_revision(session, assignment, staged)
            if assignment.annotation_path is None:
                raise InvalidInputError(f"Nothing to submit for case {case.name!r}: save an annotation first")
            self._store_answers(session, case, assignment, answers or {})
            given = self._answers(session, assignment)
            missing = [q.key for q in session.scalars(select(FormQuestion).where(
                FormQuestion.project_id == case.project_id, FormQuestion.required.is_(True)))
                if given.get(q.key) is None]
            if missing:
                raise InvalidInputError(f"Answer the case form before submitting: {', '.join(missing)}")
            assignment.status = AssignmentStatus.SUBMITTED.value
            assignment.submitted_at = utcnow()
            session.flush()
            self._update_case_status(session, case)
            audit(session, user, "submit", "case", case.id, revision=assignment.annotation_revision,
                  case_status=case.status)
            return case_info(session, case, user)
        return self._run_staged(work, staged)

    def review(self, actor, case_id, decision, comment="", expected_version=None):
        """Reviewer / admin: accept a case in review, or return it to its annotators with a comment.

        Parameters
        ----------
        decision : {"accept", "return"}
        comment : str
            Required when returning.
        expected_version : int, optional
            The `CaseInfo.version` the reviewer looked at; a mismatch raises `ConflictError`.

        Raises
        ------
        PermissionDeniedError
            The reviewer annotated this case (nobody accepts their own work) or is an annotator.
        InvalidStateError
            The case is not in review.
        """
        if decision not in ("accept", "return"):
            raise InvalidInputError(f"Decision must be 'accept' or 'return', not {decision!r}")
        if decision == "return" and not (comment or "").strip():
            raise InvalidInputError("Say what to fix: a returned case needs a comment")

        def work(session):
            user = require(session, actor, "review")
            case = get_or_raise(session, Case, case_id, "case")
            if expected_version is not None and case.version != expected_version:
                raise ConflictError(f"Case {case.name!r} changed since you opened it (version {case.version}, "
                                    f"you saw {expected_version}): reload it")
            assignments = list(session.scalars(select(Assignment).where(Assignment.case_id == case.id)))
            if any(a.annotator_id == user.id for a in assignments):
                raise PermissionDeniedError(f"{user.username} annotated case {case.name!r} and cannot review it")
            if case.status != CaseStatus.IN_REVIEW.value:
                raise InvalidStateError(f"Case {case.name!r} is {case.status}, not in review")
            accepted = decision == "accept"
            case.status = CaseStatus.ACCEPTED.value if accepted else CaseStatus.RETURNED.value
            case.updated_at = utcnow()
            for assignment in assignments:
                assignment.status = (AssignmentStatus.ACCEPTED if accepted else AssignmentStatus.RETURNED).value
            session.add(Review(case_id=case.id, reviewer_id=user.id, decision=decision, comment=comment or ""))
            session.flush()
            audit(session, user, "review", "case", case.id, decision=decision, comment=comment or "")
            return case_info(session, case, user)
        return self._run(work)

    def record_tool_usage(self, actor, case_id, tool, duration_s, interactions=1):
        """Log time spent and interactions made with one tool on one case (for statistics)."""
        if float(duration_s) < 0 or int(interactions) < 0:
            raise InvalidInputError("duration_s and interactions must not be negative")
        if not tool:
            raise InvalidInputError("Name the tool")

        def work(session):
            user = resolve_actor(session, actor)
            case = get_or_raise(session, Case, case_id, "case")
            session.add(ToolEvent(case_id=case.id, user_id=user.id, tool=str(tool), duration_s=float(duration_s),
                                  interactions=int(interactions)))
        self._run(work)

    def load_volume(self, actor, case_id):
        """The case's image as `(array_kji, ijk_to_ras)`, read from the source recorded for the case.

        Raises
        ------
        StorageError
            The image cannot be read; the message names the case, not the file (the path is logged).
        """
        def work(session):
            resolve_actor(session, actor)
            case = get_or_raise(session, Case, case_id, "case")
            return case.name, case.source_path, case.source_kind, case.series_uid
        name, path, kind, series_uid = self._run(work)
        try:
            return read_case_volume(path, kind, series_uid)
        except (ValueError, OSError) as error:
            _log.warning("case %s: cannot read %s: %s", case_id, path, error)
            raise StorageError(f"The image of case {name!r} cannot be read (moved, deleted or damaged): ask an "
                               "admin to check the case's source files") from None

    def answers(self, actor, case_id, annotator=None):
        """Form answers {key: value} of the caller (or, for reviewers / admins, of `annotator`)."""
        def work(session):
            user = resolve_actor(session, actor)
            target = user if annotator in (None, user.username) else self._user_by_name(session, annotator)
            if target.id != user.id:
                require(session, actor, "review")
            assignment = session.scalar(select(Assignment).where(Assignment.case_id == case_id,
                                                                 Assignment.annotator_id == target.id))
            return {} if assignment is None else self._answers(session, assignment)
        return self._run(work)

    # --- helpers ---------------------------------------------------------------------------------
    def _open_assignment(self, session, actor, case_id, expected_version):
        user = require(session, actor, "annotate")
        case = get_or_raise(session, Case, case_id, "case")
        assignment = session.scalar(select(Assignment).where(Assignment.case_id == case.id,
                                                             Assignment.annotator_id == user.id))
        if assignment is None:
            raise InvalidStateError(f"Claim case {case.name!r} before working on it")
        if assignment.status not in OPEN_WORK:
            raise InvalidStateError(f"Your work on case {case.name!r} is {assignment.status}; it can no longer "
                                    "be changed")
        if expected_version is not None and assignment.version != expected_version:
            raise ConflictError(f"Your annotation of {case.name!r} was saved elsewhere meanwhile (version "
                                f"{assignment.version}, you had {expected_version}): reload it")
        return user, case, assignment

    def _store_answers(self, session, case, assignment, answers):
        questions = {q.key: q for q in session.scalars(select(FormQuestion).where(
            FormQuestion.project_id == case.project_id))}
        unknown = sorted(set(answers) - set(questions))
        if unknown:
            raise InvalidInputError(f"The case form has no question {', '.join(unknown)}")
        existing = {a.question_id: a for a in session.scalars(select(FormAnswer).where(
            FormAnswer.assignment_id == assignment.id))}
        for key, value in answers.items():
            question = questions[key]
            stored = {"v": normalise_answer(key, question.kind, question.choices, value)}
            if question.id in existing:
                existing[question.id].value = stored
                existing[question.id].answered_at = utcnow()
            else:
                session.add(FormAnswer(assignment_id=assignment.id, question_id=question.id, value=stored))
        session.flush()

    @staticmethod
    def _answers(session, assignment):
        rows = session.execute(select(FormQuestion.key, FormAnswer.value).join(
            FormAnswer, FormAnswer.question_id == FormQuestion.id).where(FormAnswer.assignment_id == assignment.id))
        return {key: (value or {}).get("v") for key, value in rows}

    @staticmethod
    def _update_case_status(session, case):
        project = session.get(Project, case.project_id)
        statuses = list(session.scalars(select(Assignment.status).where(Assignment.case_id == case.id)))
        submitted = sum(s == AssignmentStatus.SUBMITTED.value for s in statuses)
        if submitted >= project.annotations_per_case:
            case.status = CaseStatus.IN_REVIEW.value
        # Always touch the case: its version bump makes concurrent submits of one case retry on fresh counts.
        case.updated_at = utcnow()
        session.flush()

"""Shared parts of the service API: result records, the permission table, actor checks, audit, retries.

Service methods return these frozen dataclasses (never live ORM rows), so callers can keep them across
threads, requests and sessions.
"""
import dataclasses
import datetime as _dt
import random
import time

from sqlalchemy import select
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.orm.exc import StaleDataError

from MVAWorkflowLib.errors import (AuthenticationError, ConflictError, InvalidInputError, NotFoundError,
                                   PermissionDeniedError)
from MVAWorkflowLib.models import AuditEntry, LoginSession, Role, User, utcnow
from MVAWorkflowLib.security import token_digest

# action -> roles allowed. Every public service method checks one of these.
PERMISSIONS = {
    "manage_users": {Role.ADMIN},
    "manage_suppliers": {Role.ADMIN},
    "manage_projects": {Role.ADMIN},
    "manage_labels": {Role.ADMIN},
    "manage_forms": {Role.ADMIN},
    "add_cases": {Role.ADMIN},
    "view_project": {Role.ANNOTATOR, Role.REVIEWER, Role.ADMIN},
    "annotate": {Role.ANNOTATOR, Role.ADMIN},
    "review": {Role.REVIEWER, Role.ADMIN},
    "view_statistics": {Role.REVIEWER, Role.ADMIN},
    "export": {Role.REVIEWER, Role.ADMIN},
    "view_audit": {Role.ADMIN},
}


@dataclasses.dataclass(frozen=True)
class UserInfo:
    id: int
    username: str
    role: str
    supplier: str | None
    active: bool = True


@dataclasses.dataclass(frozen=True)
class SessionInfo:
    token: str
    user: UserInfo
    expires_at: _dt.datetime


@dataclasses.dataclass(frozen=True)
class SupplierInfo:
    id: int
    name: str


@dataclasses.dataclass(frozen=True)
class ProjectInfo:
    id: int
    name: str
    description: str
    annotations_per_case: int
    storage_root: str


@dataclasses.dataclass(frozen=True)
class LabelInfo:
    value: int
    name: str
    color: str
    code_scheme: str
    code_value: str
    code_meaning: str
    category_code_value: str = "123037004"
    category_code_meaning: str = "Anatomical Structure"


@dataclasses.dataclass(frozen=True)
class QuestionInfo:
    id: int
    key: str
    text: str
    kind: str
    choices: tuple
    required: bool


@dataclasses.dataclass(frozen=True)
class ReviewInfo:
    reviewer: str
    decision: str
    comment: str
    created_at: _dt.datetime


@dataclasses.dataclass(frozen=True)
class AssignmentInfo:
    id: int
    annotator: str
    annotator_id: int
    status: str
    claimed_at: _dt.datetime
    submitted_at: _dt.datetime | None
    revision: int
    version: int


@dataclasses.dataclass(frozen=True)
class CaseInfo:
    """A case as one user sees it; `version` is what `expected_version` arguments compare against."""
    id: int
    project_id: int
    name: str
    source_path: str
    source_kind: str
    status: str
    version: int
    assignments: tuple = ()
    reviews: tuple = ()

    def assignment_of(self, user_id):
        """This user's `AssignmentInfo`, or None."""
        return next((a for a in self.assignments if a.annotator_id == user_id), None)


@dataclasses.dataclass(frozen=True)
class AuditInfo:
    at: _dt.datetime
    actor: str | None
    action: str
    entity: str
    entity_id: int | None
    detail: dict


def user_info(user):
    return UserInfo(user.id, user.username, user.role, user.supplier.name if user.supplier else None, user.active)


def resolve_actor(session, actor):
    """The active `User` row behind `actor` (a `UserInfo`, a `SessionInfo` or a session token string).

    Raises
    ------
    AuthenticationError
        Unknown / expired / revoked token, or a disabled or deleted user.
    """
    if isinstance(actor, SessionInfo):
        actor = actor.token
    if isinstance(actor, str):
        login = session.scalar(select(LoginSession).where(LoginSession.token_sha256 == token_digest(actor)))
        if login is None or login.revoked or login.expires_at <= utcnow():
            raise AuthenticationError("Session expired or unknown: log in again")
        user_id = login.user_id
    elif isinstance(actor, UserInfo):
        user_id = actor.id
    else:
        raise AuthenticationError(f"Not a user or session: {type(actor).__name__}")
    user = session.get(User, user_id)
    if user is None or not user.active:
        raise AuthenticationError("This account is disabled or was removed")
    return user


def require(session, actor, action):
    """Resolve `actor` and check that their role allows `action` (a key of `PERMISSIONS`)."""
    user = resolve_actor(session, actor)
    if Role(user.role) not in PERMISSIONS[action]:
        allowed = ", ".join(sorted(role.value for role in PERMISSIONS[action]))
        raise PermissionDeniedError(f"{user.username} ({user.role}) may not {action.replace('_', ' ')}: "
                                    f"needs role {allowed}")
    return user


def audit(session, actor_user, action, entity, entity_id=None, **detail):
    """Append one audit-log entry inside the caller's transaction."""
    session.add(AuditEntry(actor_id=actor_user.id if actor_user is not None else None, action=action,
                           entity=entity, entity_id=entity_id, detail=detail, at=utcnow()))


def get_or_raise(session, model, key, what):
    row = session.get(model, key)
    if row is None:
        raise NotFoundError(f"No {what} with id {key}")
    return row


# table -> what a duplicate of it is, in words; longest names first so "form_answers" wins over "answers"
_DUPLICATES = (("annotation_revisions", "that revision was saved by someone else at the same time: save again"),
               ("form_questions", "the case form already has a question with that key"),
               ("form_answers", "that answer was saved at the same time elsewhere: save again"),
               ("login_sessions", "that session already exists: log in again"),
               ("assignments", "this case is already assigned to that annotator"),
               ("suppliers", "a supplier with that name already exists"),
               ("projects", "a project with that name already exists"),
               ("labels", "the project already has a label with that value or name"),
               ("users", "a user with that name already exists"),
               ("cases", "the project already has a case with that name"))


def integrity_message(error):
    """A sentence for a unique / foreign-key violation, without the database's internal wording."""
    text = str(getattr(error, "orig", error)).lower()
    if "foreign key" in text:
        return "This refers to a record that no longer exists (removed meanwhile?): reload and try again"
    for table, sentence in _DUPLICATES:
        if table in text:
            return sentence[0].upper() + sentence[1:]
    return "A record with the same unique values already exists"


class ServiceBase:
    """Holds the `Database`; runs units of work with conflict handling."""

    #: how many times an optimistic-locking conflict on a counter update is retried before giving up
    RETRIES = 8

    def __init__(self, database):
        self.database = database
        #: optimistic-locking conflicts retried so far (for monitoring and tests)
        self.conflict_retries = 0

    def _run(self, work, retry_conflicts=False):
        """Run `work(session)` in one transaction.

        A `StaleDataError` (someone else updated a versioned row first) is retried with fresh data when
        `retry_conflicts` (the work recomputes its change from the current rows), else becomes `ConflictError`.
        A unique-constraint violation, or a value the database cannot store (`DataError`: a number out of
        range; over-long texts are refused before, by `database.check_string_lengths`), becomes
        `InvalidInputError`.
        """
        attempts = self.RETRIES if retry_conflicts else 1
        for attempt in range(attempts):
            try:
                with self.database.transaction() as session:
                    return work(session)
            except StaleDataError:
                self.conflict_retries += 1
                if attempt + 1 < attempts:
                    time.sleep(random.uniform(0, 0.005 * (attempt + 1)))  # jitter: racing writers spread out
                if attempt + 1 == attempts:
                    raise ConflictError("Someone else changed this case at the same time: reload it and try again"
                                        ) from None
            except IntegrityError as error:
                raise InvalidInputError(integrity_message(error)) from None
            except DataError:
                raise InvalidInputError("A value does not fit the database (too long or out of range): "
                                        "shorten or correct it") from None
        raise AssertionError("unreachable")

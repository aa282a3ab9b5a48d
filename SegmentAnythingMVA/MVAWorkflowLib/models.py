"""Database tables of the annotation workflow (SQLAlchemy 2 declarative).

Times are naive UTC (`utcnow()`), the same on SQLite and PostgreSQL. `Case` and `Assignment` carry a
`version` column used for optimistic locking: an UPDATE that finds another version raises
`sqlalchemy.orm.exc.StaleDataError`, which the service turns into `ConflictError` or retries.
The schema is created by the Alembic migrations in `migrations/`; a test checks they match these tables.
"""
import datetime as _dt
import enum

from sqlalchemy import JSON, Boolean, DateTime, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow():
    """Current time, naive UTC (stored the same way by every backend)."""
    return _dt.datetime.now(_dt.timezone.utc).replace(tzinfo=None)


class Role(str, enum.Enum):
    """What a user may do. Stored as its value."""
    ANNOTATOR = "annotator"
    REVIEWER = "reviewer"
    ADMIN = "admin"


class CaseStatus(str, enum.Enum):
    """Life cycle of a case: to_annotate -> in_review -> accepted, or returned -> in_review again."""
    TO_ANNOTATE = "to_annotate"
    IN_REVIEW = "in_review"
    ACCEPTED = "accepted"
    RETURNED = "returned"


class AssignmentStatus(str, enum.Enum):
    """One annotator's work on one case."""
    CLAIMED = "claimed"
    SUBMITTED = "submitted"
    RETURNED = "returned"
    ACCEPTED = "accepted"


class QuestionKind(str, enum.Enum):
    """Types of case-form questions."""
    CHOICE = "choice"
    NUMBER = "number"
    TEXT = "text"
    YES_NO = "yes_no"


class Base(DeclarativeBase):
    pass


class Supplier(Base):
    __tablename__ = "suppliers"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[_dt.datetime] = mapped_column(DateTime, default=utcnow)


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(100), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(20))
    supplier_id: Mapped[int | None] = mapped_column(ForeignKey("suppliers.id"), nullable=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[_dt.datetime] = mapped_column(DateTime, default=utcnow)
    supplier: Mapped[Supplier | None] = relationship()


class LoginSession(Base):
    __tablename__ = "login_sessions"
    id: Mapped[int] = mapped_column(primary_key=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[_dt.datetime] = mapped_column(DateTime, default=utcnow)
    expires_at: Mapped[_dt.datetime] = mapped_column(DateTime)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)


class LoginAttempt(Base):
    """One password check (for throttling): the user name as typed, the client address, the outcome."""
    __tablename__ = "login_attempts"
    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[_dt.datetime] = mapped_column(DateTime, default=utcnow, index=True)
    username: Mapped[str] = mapped_column(String(100), index=True)
    address: Mapped[str] = mapped_column(String(64), index=True)
    succeeded: Mapped[bool] = mapped_column(Boolean, default=False)


class SessionTicket(Base):
    """A one-time, short-lived ticket that opens a new session for the user of `session_id` (used once)."""
    __tablename__ = "session_tickets"
    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("login_sessions.id"), index=True)
    expires_at: Mapped[_dt.datetime] = mapped_column(DateTime)
    used_at: Mapped[_dt.datetime | None] = mapped_column(DateTime, nullable=True)


class Project(Base):
    __tablename__ = "projects"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    storage_root: Mapped[str] = mapped_column(Text)
    annotations_per_case: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[_dt.datetime] = mapped_column(DateTime, default=utcnow)


class Label(Base):
    __tablename__ = "labels"
    __table_args__ = (UniqueConstraint("project_id", "name"), UniqueConstraint("project_id", "value"))
    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    value: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(200))
    color: Mapped[str] = mapped_column(String(7))
    code_scheme: Mapped[str] = mapped_column(String(20), default="SCT")
    code_value: Mapped[str] = mapped_column(String(64), default="")
    code_meaning: Mapped[str] = mapped_column(String(200), default="")
    category_code_value: Mapped[str] = mapped_column(String(64), default="123037004")
    category_code_meaning: Mapped[str] = mapped_column(String(200), default="Anatomical Structure")


class Case(Base):
    __tablename__ = "cases"
    __table_args__ = (UniqueConstraint("project_id", "name"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    name: Mapped[str] = mapped_column(String(300))
    source_path: Mapped[str] = mapped_column(Text)
    source_kind: Mapped[str] = mapped_column(String(10))  # "file" or "dicom"
    series_uid: Mapped[str | None] = mapped_column(String(128), nullable=True)  # DICOM: the series in source_path
    status: Mapped[str] = mapped_column(String(20), default=CaseStatus.TO_ANNOTATE.value, index=True)
    claimed_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[_dt.datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[_dt.datetime] = mapped_column(DateTime, default=utcnow)
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    __mapper_args__ = {"version_id_col": version}


class Assignment(Base):
    __tablename__ = "assignments"
    __table_args__ = (UniqueConstraint("case_id", "annotator_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    annotator_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    status: Mapped[str] = mapped_column(String(20), default=AssignmentStatus.CLAIMED.value)
    claimed_at: Mapped[_dt.datetime] = mapped_column(DateTime, default=utcnow)
    submitted_at: Mapped[_dt.datetime | None] = mapped_column(DateTime, nullable=True)
    annotation_revision: Mapped[int] = mapped_column(Integer, default=0)
    annotation_path: Mapped[str | None] = mapped_column(Text, nullable=True)
    annotation_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    __mapper_args__ = {"version_id_col": version}


class AnnotationRevision(Base):
    """One committed save of one assignment: its file (unique name, see `storage`) and that file's SHA-256."""
    __tablename__ = "annotation_revisions"
    __table_args__ = (UniqueConstraint("assignment_id", "revision"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    assignment_id: Mapped[int] = mapped_column(ForeignKey("assignments.id"), index=True)
    revision: Mapped[int] = mapped_column(Integer)
    path: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    saved_at: Mapped[_dt.datetime] = mapped_column(DateTime, default=utcnow)


class FormQuestion(Base):
    __tablename__ = "form_questions"
    __table_args__ = (UniqueConstraint("project_id", "key"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    key: Mapped[str] = mapped_column(String(100))
    text: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(10))
    choices: Mapped[list] = mapped_column(JSON, default=list)
    required: Mapped[bool] = mapped_column(Boolean, default=True)
    position: Mapped[int] = mapped_column(Integer, default=0)


class FormAnswer(Base):
    __tablename__ = "form_answers"
    __table_args__ = (UniqueConstraint("assignment_id", "question_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    assignment_id: Mapped[int] = mapped_column(ForeignKey("assignments.id"), index=True)
    question_id: Mapped[int] = mapped_column(ForeignKey("form_questions.id"))
    value: Mapped[dict] = mapped_column(JSON)  # {"v": answer}, so None/bool/number/text all round-trip
    answered_at: Mapped[_dt.datetime] = mapped_column(DateTime, default=utcnow)


class Review(Base):
    __tablename__ = "reviews"
    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    reviewer_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    decision: Mapped[str] = mapped_column(String(20))
    comment: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[_dt.datetime] = mapped_column(DateTime, default=utcnow)


class ToolEvent(Base):
    __tablename__ = "tool_events"
    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    tool: Mapped[str] = mapped_column(String(50))
    duration_s: Mapped[float] = mapped_column(Float)
    interactions: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[_dt.datetime] = mapped_column(DateTime, default=utcnow)


class AuditEntry(Base):
    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[_dt.datetime] = mapped_column(DateTime, default=utcnow, index=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    action: Mapped[str] = mapped_column(String(50))
    entity: Mapped[str] = mapped_column(String(30))
    entity_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    detail: Mapped[dict] = mapped_column(JSON, default=dict)

"""Service API, part 4: saving and opening annotations, so that no save ever corrupts one, on any database.

A save (1) checks the caller and the labels, (2) writes the file under a name only this call can use
(`storage.new_annotation_path`), (3) in one transaction bumps the assignment's version (the check that two
concurrent saves of one assignment cannot both pass) and adds the `AnnotationRevision` row pointing to the
file. The file therefore is a revision only if that transaction wins; a loser deletes its file. A process
killed between (2) and (3) leaves a file no row points to, removed by `remove_unfinished_saves` (run by
`WorkflowService.open`). Reads verify the checksum; a damaged revision raises `DamagedAnnotationError`, which
names the earlier revisions to open instead (`load_annotation(..., revision=N)`).
"""
import dataclasses
import datetime as _dt
import logging
import os
import re

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from MVAWorkflowLib import storage
from MVAWorkflowLib.errors import InvalidInputError, NotFoundError, OperationCancelledError
from MVAWorkflowLib.models import AnnotationRevision, Assignment, Case, Label, Project
from MVAWorkflowLib.service_base import audit, get_or_raise, require, resolve_actor
from MVAWorkflowLib.storage import Labelmap, StorageError, read_labelmap, write_labelmap

_log = logging.getLogger(__name__)
_ID_FOLDER = re.compile(r"^(case|user)-\d+$")


class DamagedAnnotationError(StorageError):
    """A revision's file is missing or fails its checksum. `earlier_revisions`: what can be opened instead."""

    def __init__(self, message, revision, earlier_revisions):
        super().__init__(message)
        self.revision = revision
        self.earlier_revisions = tuple(earlier_revisions)


@dataclasses.dataclass(frozen=True)
class RevisionInfo:
    """One committed save; `intact` is None unless checked (`annotation_revisions(..., verify=True)`)."""
    revision: int
    saved_at: _dt.datetime
    current: bool
    intact: bool | None = None


@dataclasses.dataclass(frozen=True)
class _StagedFile:
    path: str
    sha256: str


class AnnotationsMixin:
    """save_annotation, load_annotation, restore_revision, annotation_revisions, remove_unfinished_saves."""

    def save_annotation(self, actor, case_id, labelmap, expected_version=None, answers=None, progress=None,
                        cancel=None):
        """Annotator: save work in progress as a new revision (earlier revisions are kept).

        Parameters
        ----------
        labelmap : Labelmap
            Values must be labels of the project (or 0).
        expected_version : int, optional
            The `AssignmentInfo.version` the caller last saw; a mismatch raises `ConflictError` and nothing
            (labelmap or answers) is saved. Without it, concurrent saves are applied one after the other.
        answers : dict, optional
            Form answers saved in the same transaction.
        progress : callable(float), optional
            Told the fraction done (checked, file written, committed).
        cancel : callable() -> bool, optional
            Polled until the commit starts; True then: the written file is removed, nothing is saved and
            `OperationCancelledError` is raised. After that point the save completes.

        Returns
        -------
        AssignmentInfo
        """
        from MVAWorkflowLib.service_cases import case_info
        report = progress or (lambda fraction: None)
        stop = cancel or (lambda: False)
        staged = self._stage_annotation(actor, case_id, labelmap, expected_version, report)
        report(0.85)
        if stop():
            if staged is not None:
                storage.discard(staged.path)
            raise OperationCancelledError("Save cancelled: nothing was saved")

        def work(session):
            user, case, assignment = self._open_assignment(session, actor, case_id, expected_version)
            self._commit_revision(session, assignment, staged)  # first: its version check orders concurrent saves
            if answers:
                self._store_answers(session, case, assignment, answers)
                audit(session, user, "save_answers", "case", case.id, keys=sorted(answers))
            audit(session, user, "save_annotation", "case", case.id, revision=assignment.annotation_revision)
            return case_info(session, case, user).assignment_of(user.id)
        saved = self._run_staged(work, staged)
        report(1.0)
        return saved

    def load_annotation(self, actor, case_id, annotator=None, revision=None):
        """A revision of an annotation as a `Labelmap` (checksum verified); default the current one.

        `annotator` (user name) defaults to the caller; others' work is readable by reviewers and admins.

        Raises
        ------
        NotFoundError
            Nothing saved, or no such revision.
        DamagedAnnotationError
            The revision's file is missing or damaged; `earlier_revisions` lists the revisions to open instead.
        """
        def work(session):
            case, target, assignment = self._annotation_of(session, actor, case_id, annotator)
            rows = {r.revision: r for r in session.scalars(
                select(AnnotationRevision).where(AnnotationRevision.assignment_id == assignment.id))}
            wanted = assignment.annotation_revision if revision is None else int(revision)
            if wanted in rows:
                path, checksum = rows[wanted].path, rows[wanted].sha256
            elif wanted == assignment.annotation_revision:  # saved before revisions were recorded
                path, checksum = assignment.annotation_path, assignment.annotation_sha256
            else:
                raise NotFoundError(f"{target.username}'s annotation of case {case.name!r} has no revision "
                                    f"{wanted}; saved revisions: {sorted(rows) or 'none'}")
            earlier = sorted((r for r in rows if r < wanted), reverse=True)
            return path, checksum, wanted, earlier, case.name, target.username
        path, checksum, wanted, earlier, case_name, username = self._run(work)
        try:
            return read_labelmap(path, checksum)
        except StorageError as error:
            advice = (f"open revision {earlier[0]} (the save before it) and save again" if earlier else
                      "no earlier revision exists: ask an admin to restore the storage folder from a backup")
            raise DamagedAnnotationError(f"Revision {wanted} of {username}'s annotation of case {case_name!r} "
                                         f"cannot be opened ({error}): {advice}", wanted, earlier) from None

    def restore_revision(self, actor, case_id, revision, expected_version=None):
        """Annotator: save an earlier revision of one's own annotation again, as the newest revision.

        The recovery path after a `DamagedAnnotationError`: the damaged revision stays on record. Returns
        `AssignmentInfo`.
        """
        labelmap = self.load_annotation(actor, case_id, revision=revision)
        return self.save_annotation(actor, case_id, labelmap, expected_version=expected_version)

    def annotation_revisions(self, actor, case_id, annotator=None, verify=False):
        """Every committed revision of an annotation, newest first (`RevisionInfo`); `verify` checks each file."""
        def work(session):
            _case, _target, assignment = self._annotation_of(session, actor, case_id, annotator)
            rows = list(session.scalars(select(AnnotationRevision).where(
                AnnotationRevision.assignment_id == assignment.id).order_by(AnnotationRevision.revision.desc())))
            return [(r.revision, r.saved_at, r.revision == assignment.annotation_revision, r.path, r.sha256)
                    for r in rows]

        def intact(path, checksum):
            try:
                return storage.file_sha256(path) == checksum
            except OSError:
                return False
        return [RevisionInfo(number, saved_at, current, intact(path, checksum) if verify else None)
                for number, saved_at, current, path, checksum in self._run(work)]

    def remove_unfinished_saves(self):
        """Delete revision files and temporaries left by saves whose process died before committing.

        Only files that no revision points to and whose writer process is gone (or that are older than
        `storage.STALE_SECONDS`, when the writer ran on another machine or its process id was reused) are
        removed. Returns how many files were removed.
        """
        roots = self._run(lambda session: [(p.id, p.storage_root) for p in session.scalars(select(Project))])
        candidates = []
        for project_id, root in roots:
            project_folder = os.path.join(root, f"project-{project_id}")
            for current, folders, _files in os.walk(project_folder):
                folders[:] = [name for name in folders if _ID_FOLDER.match(name)]
                candidates.extend(storage.unfinished_candidates(current))
        referenced = set()
        for start in range(0, len(candidates), 500):
            chunk = candidates[start:start + 500]
            referenced |= set(self._run(lambda session, chunk=chunk: list(session.scalars(
                select(AnnotationRevision.path).where(AnnotationRevision.path.in_(chunk))))))
        removed = 0
        for path in candidates:
            if path not in referenced:
                storage.discard(path)
                removed += 1
        return removed

    # --- helpers ---------------------------------------------------------------------------------
    def _annotation_of(self, session, actor, case_id, annotator):
        user = resolve_actor(session, actor)
        case = get_or_raise(session, Case, case_id, "case")
        target = user if annotator in (None, user.username) else self._user_by_name(session, annotator)
        if target.id != user.id:
            require(session, actor, "review")
        assignment = session.scalar(select(Assignment).where(Assignment.case_id == case.id,
                                                             Assignment.annotator_id == target.id))
        if assignment is None or assignment.annotation_path is None:
            raise NotFoundError(f"{target.username} has saved no annotation of case {case.name!r}")
        return case, target, assignment

    @staticmethod
    def _check_labels(session, case, labelmap):
        if not isinstance(labelmap, Labelmap):
            raise InvalidInputError("Pass a Labelmap (array_kji, ijk_to_ras)")
        allowed = set(session.scalars(select(Label.value).where(Label.project_id == case.project_id)))
        unknown = sorted(set(labelmap.label_values()) - allowed)
        if unknown:
            raise InvalidInputError(f"Label values {unknown} are not in the project's label set {sorted(allowed)}")
        from MVAWorkflowLib.case_sources import check_labelmap_grid
        check_labelmap_grid(case.name, case.source_path, case.source_kind, case.series_uid, labelmap)

    def _stage_annotation(self, actor, case_id, labelmap, expected_version, report=None):
        """Check what can be checked before writing, then write the file under a name only this call uses."""
        if labelmap is None:
            return None

        def check(session):
            _user, case, assignment = self._open_assignment(session, actor, case_id, expected_version)
            self._check_labels(session, case, labelmap)
            project = session.get(Project, case.project_id)
            return storage.new_annotation_path(project.storage_root, project.id, case.id, assignment.annotator_id)
        path = self._run(check)
        if report is not None:
            report(0.15)
        try:
            return _StagedFile(path, write_labelmap(path, labelmap))
        except BaseException:
            storage.discard(path)
            raise

    def _commit_revision(self, session, assignment, staged):
        """Make `staged` the assignment's next revision, inside the caller's transaction."""
        assignment.annotation_revision += 1
        assignment.annotation_path = staged.path
        assignment.annotation_sha256 = staged.sha256
        session.flush()  # the version check: of two concurrent saves of this assignment, one fails here
        session.add(AnnotationRevision(assignment_id=assignment.id, revision=assignment.annotation_revision,
                                       path=staged.path, sha256=staged.sha256))
        session.flush()

    def _run_staged(self, work, staged):
        """`_run(work)` (conflicts retried); if it does not commit, the staged file is removed."""
        try:
            return self._run(work, retry_conflicts=True)
        except BaseException:
            if staged is not None:
                self._discard_unless_committed(staged.path)
            raise

    def _discard_unless_committed(self, path):
        # A failure while committing leaves the outcome unknown: ask the database before deleting.
        try:
            committed = self._run(lambda session: session.scalar(
                select(AnnotationRevision.id).where(AnnotationRevision.path == path)) is not None)
        except SQLAlchemyError:
            _log.warning("database unreachable after a failed save; %s is left for the next clean-up", path)
            return
        if not committed:
            storage.discard(path)

"""Service API, part 2: projects, label sets, case forms and adding cases."""
import os
import re

from sqlalchemy import func, select

from MVAWorkflowLib.case_sources import AddedCases, UnusableCaseError, find_case_sources, screen_case_sources
from MVAWorkflowLib.errors import InvalidInputError, NotFoundError
from MVAWorkflowLib.forms import check_question
from MVAWorkflowLib.models import Case, FormQuestion, Label, Project
from MVAWorkflowLib.service_base import LabelInfo, ProjectInfo, QuestionInfo, audit, require, resolve_actor

_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")


def project_info(project, viewer):
    """The `ProjectInfo` as `viewer` (a `User` row) may see it: the storage folder only for admins."""
    return ProjectInfo(project.id, project.name, project.description, project.annotations_per_case,
                       project.storage_root if viewer.role == "admin" else "")


def label_info(label):
    return LabelInfo(label.value, label.name, label.color, label.code_scheme, label.code_value, label.code_meaning,
                     label.category_code_value, label.category_code_meaning)


def question_info(question):
    return QuestionInfo(question.id, question.key, question.text, question.kind, tuple(question.choices or ()),
                        question.required)


def parse_label(spec):
    """A `LabelInfo` from a dict / LabelInfo, or from text "value:name:#rrggbb[:SCHEME:CODE:MEANING]".

    Example: "1:Liver:#dd8065:SCT:10200004:Liver".
    """
    if isinstance(spec, LabelInfo):
        return spec
    if isinstance(spec, str):
        parts = spec.split(":")
        if len(parts) not in (3, 6):
            raise InvalidInputError(f"Label {spec!r}: write value:name:#rrggbb[:scheme:code:meaning]")
        spec = dict(zip(("value", "name", "color", "code_scheme", "code_value", "code_meaning"), parts))
    try:
        value = int(spec["value"])
        name = str(spec["name"]).strip()
        color = str(spec["color"])
    except (KeyError, TypeError, ValueError):
        raise InvalidInputError(f"Label {spec!r} needs an integer value, a name and a colour") from None
    if not 1 <= value <= 65535:
        raise InvalidInputError(f"Label value {value} must be in 1..65535 (0 is background)")
    if not name:
        raise InvalidInputError(f"Label {value} needs a name")
    if not _COLOR.match(color):
        raise InvalidInputError(f"Label {name!r}: colour must be #rrggbb, not {color!r}")
    return LabelInfo(value, name, color.lower(), spec.get("code_scheme") or "SCT", spec.get("code_value") or "",
                     spec.get("code_meaning") or name,
                     spec.get("category_code_value") or "123037004",
                     spec.get("category_code_meaning") or "Anatomical Structure")


class ProjectsMixin:
    """Projects, labels, forms, cases."""

    def create_project(self, actor, name, storage_root=None, annotations_per_case=1, description=""):
        """Admin: create a project.

        Parameters
        ----------
        storage_root : str, optional
            Folder for annotation files (shared by the team). Default: `<folder of the SQLite file>/mva-storage`
            or `./mva-storage` for PostgreSQL.
        annotations_per_case : int
            How many annotators annotate each case (2 or more: double annotation, Dice agreement).

        Returns
        -------
        ProjectInfo
        """
        if not name or not name.strip():
            raise InvalidInputError("A project needs a name")
        if int(annotations_per_case) < 1:
            raise InvalidInputError("annotations_per_case must be at least 1")
        root = os.path.abspath(storage_root or os.path.join(self.database.sqlite_folder() or os.getcwd(),
                                                            "mva-storage"))

        def work(session):
            admin = require(session, actor, "manage_projects")
            project = Project(name=name.strip(), description=description, storage_root=root,
                              annotations_per_case=int(annotations_per_case))
            session.add(project)
            session.flush()
            audit(session, admin, "create_project", "project", project.id, name=project.name,
                  annotations_per_case=project.annotations_per_case)
            return project_info(project, admin)
        return self._run(work)

    def list_projects(self, actor):
        """Any logged-in user: every project, by name."""
        def work(session):
            user = resolve_actor(session, actor)
            return [project_info(p, user) for p in session.scalars(select(Project).order_by(Project.name))]
        return self._run(work)

    def get_project(self, actor, project):
        """Any logged-in user: a project by id or name. Raises `NotFoundError`."""
        def work(session):
            user = resolve_actor(session, actor)
            return project_info(self._project(session, project), user)
        return self._run(work)

    # --- labels ----------------------------------------------------------------------------------
    def add_labels(self, actor, project, labels):
        """Admin: add labels (dicts, `LabelInfo`s or "value:name:#rrggbb[:scheme:code:meaning]" strings).

        Raises `InvalidInputError` for a bad colour / value or a value or name already used in the project.
        Returns the project's full label list.
        """
        parsed = [parse_label(spec) for spec in labels]

        def work(session):
            admin = require(session, actor, "manage_labels")
            row = self._project(session, project)
            for label in parsed:
                session.add(Label(project_id=row.id, value=label.value, name=label.name, color=label.color,
                                  code_scheme=label.code_scheme, code_value=label.code_value,
                                  code_meaning=label.code_meaning, category_code_value=label.category_code_value,
                                  category_code_meaning=label.category_code_meaning))
                audit(session, admin, "add_label", "project", row.id, value=label.value, name=label.name,
                      color=label.color, code=f"{label.code_scheme}:{label.code_value}")
            session.flush()
            return self._labels(session, row.id)
        return self._run(work)

    def update_label(self, actor, project, value, **changes):
        """Admin: change a label's name, color, code_scheme, code_value or code_meaning. Returns `LabelInfo`."""
        allowed = {"name", "color", "code_scheme", "code_value", "code_meaning", "category_code_value",
                   "category_code_meaning"}
        if set(changes) - allowed:
            raise InvalidInputError(f"Cannot change {sorted(set(changes) - allowed)} of a label")

        def work(session):
            admin = require(session, actor, "manage_labels")
            row = self._project(session, project)
            label = session.scalar(select(Label).where(Label.project_id == row.id, Label.value == int(value)))
            if label is None:
                raise NotFoundError(f"Project {row.name!r} has no label with value {value}")
            merged = parse_label({**label_info(label).__dict__, **changes})
            for key in changes:
                setattr(label, key, getattr(merged, key))
            audit(session, admin, "update_label", "project", row.id, value=int(value), **changes)
            return label_info(label)
        return self._run(work)

    def list_labels(self, actor, project):
        """Any logged-in user: the project's labels by value."""
        def work(session):
            resolve_actor(session, actor)
            return self._labels(session, self._project(session, project).id)
        return self._run(work)

    # --- forms -----------------------------------------------------------------------------------
    def add_question(self, actor, project, key, text, kind, choices=None, required=True):
        """Admin: add a case-form question ("choice", "number", "text" or "yes_no"). Returns `QuestionInfo`."""
        kind, choices = check_question(key, kind, choices)

        def work(session):
            admin = require(session, actor, "manage_forms")
            row = self._project(session, project)
            position = session.scalar(select(func.count(FormQuestion.id)).where(FormQuestion.project_id == row.id))
            question = FormQuestion(project_id=row.id, key=str(key).strip(), text=text, kind=kind, choices=choices,
                                    required=bool(required), position=position)
            session.add(question)
            session.flush()
            audit(session, admin, "add_question", "project", row.id, key=question.key, kind=kind)
            return question_info(question)
        return self._run(work)

    def list_questions(self, actor, project):
        """Any logged-in user: the project's form, in order."""
        def work(session):
            resolve_actor(session, actor)
            return self._questions(session, self._project(session, project).id)
        return self._run(work)

    # --- cases -----------------------------------------------------------------------------------
    def add_cases(self, actor, project, path, dicom=None):
        """Admin: add every volume file (or DICOM series) found at `path` as a case "to annotate".

        Cases whose name already exists in the project are skipped. Files that cannot be annotated (unreadable,
        truncated, 2D, 4D, RGB, bad spacing) are left out with a message each, the others are still added.

        Returns
        -------
        AddedCases
            The names added (a list) and `refused`: [(path, message)].

        Raises
        ------
        UnusableCaseError
            `path` is a single file that cannot be annotated.
        """
        sources, refused = screen_case_sources(find_case_sources(path, dicom))
        if refused and not sources and os.path.isfile(path):
            raise UnusableCaseError(refused[0][1])

        def work(session):
            admin = require(session, actor, "add_cases")
            row = self._project(session, project)
            existing = set(session.scalars(select(Case.name).where(Case.project_id == row.id)))
            added = []
            for source in sources:
                if source.name in existing:
                    continue
                case = Case(project_id=row.id, name=source.name, source_path=source.path,
                            source_kind=source.kind, series_uid=source.series_uid)
                session.add(case)
                session.flush()
                audit(session, admin, "add_case", "case", case.id, name=source.name, path=source.path)
                added.append(source.name)
            return added
        return AddedCases(self._run(work), refused)

    # --- helpers ---------------------------------------------------------------------------------
    @staticmethod
    def _project(session, project):
        if isinstance(project, ProjectInfo):
            project = project.id
        if isinstance(project, int):
            row = session.get(Project, project)
        else:
            row = session.scalar(select(Project).where(Project.name == str(project)))
        if row is None:
            raise NotFoundError(f"No project {project!r}")
        return row

    @staticmethod
    def _labels(session, project_id):
        return [label_info(label) for label in
                session.scalars(select(Label).where(Label.project_id == project_id).order_by(Label.value))]

    @staticmethod
    def _questions(session, project_id):
        query = select(FormQuestion).where(FormQuestion.project_id == project_id).order_by(FormQuestion.position)
        return [question_info(q) for q in session.scalars(query)]

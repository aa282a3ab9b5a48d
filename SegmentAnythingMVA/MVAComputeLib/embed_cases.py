"""What `mva embed` embeds: cases of a folder, one volume, or a project's queue; and one slice image of a case.

The slice images are made exactly as the Segment Anything logic makes them (SlicePlane.for_anatomical_axis
layout, the recorded window through window_to_rgb), so a stored embedding equals a fresh one.
"""
from __future__ import annotations

import os

import numpy as np

from MVABridgeLib.slice_geometry import ANATOMICAL_AXES, SlicePlane
from MVABridgeLib.windowing import auto_window_level, window_to_rgb
from MVAWorkflowLib.case_sources import CaseSource, find_case_sources, read_case_volume

ORIENTATIONS = ANATOMICAL_AXES


class EmbedInputError(ValueError):
    """Cases that cannot be found or read, or settings that make no sense."""


def cases_from_path(path):
    """CaseSources of a volume file, a folder of volume files, or a DICOM folder."""
    from MVAWorkflowLib.errors import InvalidInputError
    try:
        return find_case_sources(path)
    except InvalidInputError as error:
        raise EmbedInputError(str(error)) from None


def cases_from_project(database_url, project_name):
    """CaseSources of every case a project lists (and only those), in case order.

    Raises
    ------
    EmbedInputError
        No such project, or a project without cases.
    """
    from sqlalchemy import select

    from MVAWorkflowLib.database import Database
    from MVAWorkflowLib.models import Case, Project
    if os.path.isfile(os.fspath(database_url)):
        database_url = f"sqlite:///{os.path.abspath(database_url)}"
    database = Database(database_url)
    try:
        with database.transaction() as session:
            project = session.scalar(select(Project).where(Project.name == project_name))
            if project is None and str(project_name).isdigit():
                project = session.get(Project, int(project_name))
            if project is None:
                names = ", ".join(session.scalars(select(Project.name))) or "none"
                raise EmbedInputError(f"No project named {project_name!r} in {database_url} (projects: {names})")
            rows = session.scalars(select(Case).where(Case.project_id == project.id).order_by(Case.id)).all()
            cases = [CaseSource(row.name, row.source_path, row.source_kind, row.series_uid) for row in rows]
    finally:
        database.dispose()
    if not cases:
        raise EmbedInputError(f"Project {project_name!r} lists no cases; add some with `mva project add-cases`")
    return cases


def default_store_path(cases):
    """Where `mva embed` puts a store by default: mva-embeddings.zarr in the folder holding every case."""
    from SegmentAnythingLib.algorithms.sam_embedding_store import DEFAULT_STORE_NAME
    paths = [case.path if isinstance(case, CaseSource) else os.fspath(case) for case in cases]
    return os.path.join(os.path.commonpath([os.path.dirname(os.path.abspath(path)) for path in paths]),
                        DEFAULT_STORE_NAME)


def default_store_for(case_paths, project_db=None, project_name=None):
    """The default store of a list of case files or of a project when it exists, else None (never raises)."""
    from MVAWorkflowLib.errors import WorkflowError
    try:
        cases = list(case_paths) or (cases_from_project(project_db, project_name or only_project(project_db))
                                     if project_db else [])
        path = default_store_path(cases) if cases else None
    except (EmbedInputError, WorkflowError, OSError, ValueError):
        return None
    return path if path and os.path.isdir(path) else None


def only_project(database):
    """The name of the one project in a workflow database (EmbedInputError when there are none or several)."""
    from sqlalchemy import select

    from MVAWorkflowLib.database import Database
    from MVAWorkflowLib.models import Project
    url = f"sqlite:///{os.path.abspath(database)}" if os.path.isfile(os.fspath(database)) else database
    db = Database(url)
    try:
        with db.transaction() as session:
            names = list(session.scalars(select(Project.name)))
    finally:
        db.dispose()
    if len(names) != 1:
        raise EmbedInputError(f"{database} holds {len(names)} projects ({', '.join(names) or 'none'}); "
                              "name one with --project-name")
    return names[0]


def read_case(case):
    """(array_kji, ijk_to_ras) of a CaseSource."""
    from MVABridgeLib.volume_io import VolumeFileError
    from MVAWorkflowLib.errors import InvalidInputError
    try:
        return read_case_volume(case.path, case.kind, case.series_uid)
    except (VolumeFileError, InvalidInputError) as error:
        raise EmbedInputError(f"Case {case.name}: {error}") from None


def embedding_window(array_kji, window=None):
    """((width, level), source): the given window, or the automatic one of the volume ("auto")."""
    if window is not None:
        width, level = (float(v) for v in window)
        if not width > 0:
            raise EmbedInputError(f"The window width must be positive, got {width}")
        return (width, level), "given"
    return auto_window_level(array_kji), "auto"


def case_plane(orientation, index, ijk_to_ras, shape_kji):
    """The voxel slice `index` along the axis nearest `orientation`, laid out as a slice view shows it."""
    if orientation not in ORIENTATIONS:
        raise EmbedInputError(f"Unknown axis {orientation!r}; choose from {', '.join(ORIENTATIONS)}")
    return SlicePlane.for_anatomical_axis(orientation, index, ijk_to_ras, shape_kji)


def slice_image(array_kji, ijk_to_ras, plane, window):
    """uint8 RGB (rows, columns, 3) of `plane` through the volume, windowed like the logic does."""
    return window_to_rgb(plane.sample(array_kji, ijk_to_ras), *window)


def plane_layout(plane, ijk_to_ras):
    """4 x 4 (column, row, normal, 1) -> (i, j, k, 1) of a voxel-aligned plane, with the slice offset set to 0."""
    pixel_to_index = np.round(np.linalg.solve(np.asarray(ijk_to_ras, float), plane.pixel_to_ras_matrix), 6)
    pixel_to_index[2 - plane.aligned_axis, 3] = 0.0
    return pixel_to_index + 0.0

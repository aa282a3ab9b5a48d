"""Pytest fixtures for the workflow tests: a migrated database on SQLite, and on PostgreSQL when
`MVA_TEST_POSTGRES_URL` is set (see Workflow/ci/start_postgres.sh). Import the fixtures into a test module."""
import os

import numpy as np
import pytest

from MVAWorkflowLib import security
from MVAWorkflowLib.service import WorkflowService
from MVAWorkflowLib.storage import Labelmap

POSTGRES_ENV = "MVA_TEST_POSTGRES_URL"
PASSWORD = "correct horse battery"
BACKENDS = ["sqlite", "postgresql"]


def reset_postgres(url):
    """Drop everything in the `public` schema of the test database."""
    from sqlalchemy import create_engine, text
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("DROP SCHEMA public CASCADE"))
        connection.execute(text("CREATE SCHEMA public"))
    engine.dispose()


@pytest.fixture(params=BACKENDS)
def database_url(request, tmp_path):
    """An empty database: an SQLite file, or the PostgreSQL test database wiped clean."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'workflow.db'}"
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        pytest.skip(f"${POSTGRES_ENV} is not set (run Workflow/ci/start_postgres.sh)")
    reset_postgres(url)
    return url


@pytest.fixture(autouse=True)
def cheap_password_hashing():
    """Argon2 with small parameters: the tests hash many passwords."""
    security.configure_hasher(time_cost=1, memory_cost_kib=1024)
    yield
    security.configure_hasher()


@pytest.fixture
def service(database_url):
    service = WorkflowService.open(database_url)
    yield service
    service.database.dispose()


def write_case_volumes(folder, names=("case_a", "case_b"), shape_kji=(6, 8, 10)):
    """Small NRRD volumes to add as cases."""
    from MVABridgeLib.volume_io import write_volume
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(3)
    matrix = np.diag([0.8, 0.9, 2.0, 1.0])
    for name in names:
        write_volume(str(folder / f"{name}.nrrd"), rng.integers(0, 200, shape_kji).astype(np.int16), matrix)
    return matrix


def box_labelmap(shape_kji=(6, 8, 10), box=(slice(1, 4), slice(2, 6), slice(3, 8)), value=1,
                 ijk_to_ras=np.diag([0.8, 0.9, 2.0, 1.0])):
    array = np.zeros(shape_kji, np.uint8)
    array[box] = value
    return Labelmap(array, ijk_to_ras)


@pytest.fixture
def team(service, tmp_path):
    """An admin, two annotators of supplier Acme, one reviewer, a double-annotation project with two cases,
    labels Liver (1) and Tumor (2) and a two-question form. Returns a dict of session tokens and ids."""
    service.create_first_admin("ada", PASSWORD)
    admin = service.login("ada", PASSWORD).token
    service.create_supplier(admin, "Acme")
    for name, role in (("ann", "annotator"), ("bob", "annotator"), ("rita", "reviewer")):
        service.create_user(admin, name, PASSWORD, role, "Acme" if role == "annotator" else None)
    project = service.create_project(admin, "Liver study", storage_root=str(tmp_path / "storage"),
                                     annotations_per_case=2)
    service.add_labels(admin, project.id, ["1:Liver:#dd8065:SCT:10200004:Liver",
                                           {"value": 2, "name": "Tumor", "color": "#00ff00",
                                            "code_scheme": "SCT", "code_value": "108369006",
                                            "code_meaning": "Neoplasm"}])
    service.add_question(admin, project.id, "quality", "Image quality", "choice", ["good", "poor"])
    service.add_question(admin, project.id, "lesions", "Number of lesions", "number", required=False)
    write_case_volumes(tmp_path / "volumes")
    service.add_cases(admin, project.id, str(tmp_path / "volumes"))
    tokens = {name: service.login(name, PASSWORD).token for name in ("ann", "bob", "rita")}
    return {"admin": admin, "project": project, **tokens}

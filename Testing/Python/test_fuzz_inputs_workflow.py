"""Fuzz suite, workflow: `add-cases` leaves out each unusable file with its own message and still adds the good
ones; save and submit refuse a labelmap on another grid than the case's, with no revision, no file and no status
change; hostile case names are kept as they are; hostile user names are kept as typed with their files named by id,
or refused with a reason when they could pass for another name. Command-line cases run in their own process."""
import re

import numpy as np
import pytest
import SimpleITK as sitk
from fuzz_support import run_mva_cases
from sqlalchemy import select

from MVABridgeLib.volume_io import write_volume
from MVAWorkflowLib.case_sources import GridMismatchError, UnusableCaseError
from MVAWorkflowLib.errors import AuthenticationError, InvalidInputError
from MVAWorkflowLib.models import AnnotationRevision, Case
from MVAWorkflowLib.service import WorkflowService
from MVAWorkflowLib.storage import Labelmap
from MVAWorkflowLib.testing import PASSWORD, box_labelmap, cheap_password_hashing, database_url  # noqa: F401

MATRIX = np.diag([0.8, 0.9, 2.0, 1.0])
SHAPE_KJI = (6, 8, 10)


def good_volume(path):
    write_volume(path, np.random.default_rng(3).integers(0, 200, SHAPE_KJI).astype(np.int16), MATRIX)


def truncated(path):
    good_volume(path)
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])


def tiny_spacing(path):
    write_volume(path, np.zeros(SHAPE_KJI, np.int16), np.diag([1e-9, 1e-9, 1e-9, 1.0]))


BAD_FILES = {
    "truncated_nii_gz": ("scan.nii.gz", truncated, "truncated"),
    "two_d_image": ("scan.nrrd", lambda p: sitk.WriteImage(sitk.Image([10, 8], sitk.sitkInt16), str(p)), "2D image"),
    "single_slice": ("scan.nrrd", lambda p: sitk.WriteImage(sitk.Image([10, 8, 1], sitk.sitkInt16), str(p)),
                     "2D image"),
    "four_d_image": ("scan.nii.gz", lambda p: sitk.WriteImage(sitk.Image([10, 8, 6, 2], sitk.sitkInt16), str(p)),
                     "4D"),
    "rgb_image": ("scan.nrrd", lambda p: sitk.WriteImage(sitk.Image([10, 8, 6], sitk.sitkVectorUInt8, 3), str(p)),
                  "3 components"),
    "empty_file": ("scan.nrrd", lambda p: p.write_bytes(b""), "empty"),
    "text_named_nii": ("scan.nii", lambda p: p.write_text("not an image at all, just words " * 20), "Cannot read"),
    "nanometre_spacing": ("scan.nii.gz", tiny_spacing, "millimetres"),
}


@pytest.fixture
def workflow(tmp_path):
    service = WorkflowService.open(f"sqlite:///{tmp_path / 'workflow.db'}")
    service.create_first_admin("ada", PASSWORD)
    admin = service.login("ada", PASSWORD).token
    service.create_user(admin, "ann", PASSWORD, "annotator")
    project = service.create_project(admin, "Study", storage_root=str(tmp_path / "storage"))
    service.add_labels(admin, project.id, ["1:Liver:#dd8065"])
    yield service, admin, project, tmp_path
    service.database.dispose()


def case_names(service):
    with service.database.transaction() as session:
        return sorted(session.scalars(select(Case.name)))


def revisions(service):
    with service.database.transaction() as session:
        return list(session.scalars(select(AnnotationRevision.id)))


def stored_files(folder):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


@pytest.mark.parametrize("kind", sorted(BAD_FILES))
def test_add_cases_leaves_out_an_unusable_file_with_its_reason_and_adds_the_others(workflow, kind):
    service, admin, project, tmp_path = workflow
    folder = tmp_path / "volumes"
    folder.mkdir()
    good_volume(folder / "good.nrrd")
    name, make, reason = BAD_FILES[kind]
    make(folder / name)
    added = service.add_cases(admin, project.id, str(folder))
    assert list(added) == ["good"] and case_names(service) == ["good"]
    assert [path for path, _ in added.refused] == [str(folder / name)]
    assert reason in added.refused[0][1] and name in added.refused[0][1]


def test_add_cases_of_a_single_truncated_file_raises_and_adds_no_row(workflow):
    service, admin, project, tmp_path = workflow
    truncated(tmp_path / "scan.nii.gz")
    with pytest.raises(UnusableCaseError, match="truncated"):
        service.add_cases(admin, project.id, str(tmp_path / "scan.nii.gz"))
    assert case_names(service) == []


@pytest.mark.parametrize("name", ["'; DROP TABLE cases;--", "Patiënt 患者 01", "<b>bold & 'quoted'", "a" * 120])
def test_hostile_case_file_names_are_added_as_they_are(workflow, name):
    service, admin, project, tmp_path = workflow
    folder = tmp_path / "volumes"
    folder.mkdir()
    good_volume(folder / f"{name}.nrrd")
    assert list(service.add_cases(admin, project.id, str(folder))) == [name]
    assert case_names(service) == [name]


def claimed_case(service, admin, project, tmp_path):
    folder = tmp_path / "volumes"
    folder.mkdir()
    good_volume(folder / "liver_001.nrrd")
    service.add_cases(admin, project.id, str(folder))
    ann = service.login("ann", PASSWORD).token
    case = service.queue(ann, project.id).available[0]
    service.claim(ann, case.id)
    return ann, case


def shifted(matrix, offset_mm):
    moved = matrix.copy()
    moved[:3, 3] += offset_mm
    return moved


@pytest.mark.parametrize("name, labelmap", [
    ("other_shape", box_labelmap(shape_kji=(6, 8, 11))),
    ("shifted_origin", box_labelmap(ijk_to_ras=shifted(MATRIX, (0.5, 0, 0)))),
    ("other_spacing", box_labelmap(ijk_to_ras=np.diag([0.8, 0.9, 2.5, 1.0]))),
    ("axes_swapped", Labelmap(np.zeros((6, 10, 8), np.uint8), MATRIX[[1, 0, 2, 3]][:, [1, 0, 2, 3]])),
])
def test_save_of_a_labelmap_on_another_grid_is_refused_and_writes_nothing(workflow, name, labelmap):
    service, admin, project, tmp_path = workflow
    ann, case = claimed_case(service, admin, project, tmp_path)
    with pytest.raises(GridMismatchError, match="case's own grid"):
        service.save_annotation(ann, case.id, labelmap)
    assert revisions(service) == [] and stored_files(tmp_path / "storage") == []


def test_submit_of_a_labelmap_on_another_grid_is_refused_and_the_case_stays_claimed(workflow):
    service, admin, project, tmp_path = workflow
    ann, case = claimed_case(service, admin, project, tmp_path)
    status = service.get_case(ann, case.id).status
    with pytest.raises(GridMismatchError, match="shape"):
        service.submit(ann, case.id, labelmap=box_labelmap(shape_kji=(5, 8, 10)))
    assert service.get_case(ann, case.id).status == status
    assert revisions(service) == [] and stored_files(tmp_path / "storage") == []


def test_command_line_add_cases_and_submit_refuse_bad_files_with_a_message_each(workflow):
    service, admin, project, tmp_path = workflow
    folder = tmp_path / "volumes"
    folder.mkdir()
    good_volume(folder / "good.nrrd")
    truncated(folder / "cut.nii.gz")
    sitk.WriteImage(sitk.Image([10, 8], sitk.sitkInt16), str(folder / "flat.nrrd"))
    write_volume(tmp_path / "other_grid.nrrd", np.zeros((6, 8, 11), np.uint8), MATRIX)
    db = tmp_path / "workflow.db"
    runs = run_mva_cases({
        "add_cases": (("project", "--db", db, "--user", "ada", "add-cases", "Study", folder), tmp_path),
    }, tmp_path, env={"MVA_PASSWORD": PASSWORD})
    code, output, _ = runs["add_cases"]
    assert code == 2 and "Traceback" not in output
    assert "cut.nii.gz is truncated" in output and "flat.nrrd is a 2D image" in output
    assert case_names(service) == ["good"]
    ann = service.login("ann", PASSWORD).token
    case = service.queue(ann, project.id).available[0]
    service.claim(ann, case.id)
    runs = run_mva_cases({
        "submit": (("project", "--db", db, "--user", "ann", "submit", "Study", "good", tmp_path / "other_grid.nrrd"),
                   tmp_path),
    }, tmp_path, env={"MVA_PASSWORD": PASSWORD})
    code, output, _ = runs["submit"]
    assert code == 2 and "Traceback" not in output and "case's own grid" in output, output
    assert revisions(service) == []


# --- hostile user names --------------------------------------------------------------------------------------------
# Names that are harmless once files are named by id: kept exactly as typed.
KEPT_USER_NAMES = {
    "dot_dot": "..",
    "slash": "a/b",
    "traversal": "../../etc/passwd",
    "backslash": "C:\\Users\\ann",
    "sql_drop": "'; DROP TABLE users;--",
    "sql_or": "admin' OR '1'='1",
    "like_wildcards": "%_%",
    "html": "<script>alert(1)</script>",
    "accents_and_cjk": "Zoë 医生",
    "hundred_chars": "a" * 100,
}
# Names that could pass for another one on screen, or cannot be stored everywhere: refused with a reason.
REFUSED_USER_NAMES = {
    "nul": ("ann\x00root", "U+0000"),
    "three_hundred_chars": ("b" * 300, "at most 100 characters; this one has 300"),
    "right_to_left_override": ("ann\u202etxt.exe", "U+202E"),
    "zero_width_space": ("an\u200bn", "U+200B"),
    "byte_order_mark": ("\ufeffann", "U+FEFF"),
    "line_separator": ("ann\u2028bob", "U+2028"),
    "replacement_character": ("ann\ufffd", "U+FFFD"),
    "cyrillic_a_in_latin": ("\u0430nna", "Cyrillic and Latin"),
    "greek_omicron_in_latin": ("r\u03bfot", "Greek and Latin"),
    "fullwidth_look_alike": ("\uff41\uff4e\uff4e", "looks like an existing user's ('ann')"),
    "case_look_alike": ("ANN", "looks like an existing user's ('ann')"),
    "only_spaces": ("   ", "needs a user name"),
}


@pytest.fixture
def accounts(database_url, tmp_path):
    """A workflow on SQLite and on PostgreSQL (when configured) with admin ada, annotator ann and one case."""
    service = WorkflowService.open(database_url)
    service.create_first_admin("ada", PASSWORD)
    admin = service.login("ada", PASSWORD).token
    service.create_user(admin, "ann", PASSWORD, "annotator")
    project = service.create_project(admin, "Study", storage_root=str(tmp_path / "storage"))
    service.add_labels(admin, project.id, ["1:Liver:#dd8065"])
    folder = tmp_path / "volumes"
    folder.mkdir()
    good_volume(folder / "liver_001.nrrd")
    service.add_cases(admin, project.id, str(folder))
    yield service, admin, project, tmp_path
    service.database.dispose()


def user_rows(service, admin):
    return sorted((u.username, u.role) for u in service.list_users(admin))


@pytest.mark.parametrize("kind", sorted(KEPT_USER_NAMES))
def test_a_hostile_user_name_is_kept_as_typed_and_its_annotation_is_stored_under_its_id(accounts, kind):
    service, admin, project, tmp_path = accounts
    name = KEPT_USER_NAMES[kind]
    user = service.create_user(admin, name, PASSWORD, "annotator")
    assert user.username == name and (name, "annotator") in user_rows(service, admin)
    token = service.login(name, PASSWORD).token
    with pytest.raises(AuthenticationError):
        service.login(name, PASSWORD + "x")
    case = service.queue(token, project.id).available[0]
    service.claim(token, case.id)
    service.submit(token, case.id, labelmap=box_labelmap())
    storage = tmp_path / "storage"
    files = stored_files(storage)
    assert files and all(path.split("/")[:3] == [f"project-{project.id}", f"case-{case.id}", f"user-{user.id}"]
                         for path in files), files
    assert all(p.resolve().is_relative_to(storage.resolve()) for p in storage.rglob("*"))
    from MVAWorkflowLib.export import export_project
    manifest = export_project(service, admin, "Study", str(tmp_path / "export"), formats=("nifti",),
                              statuses=("in_review",))
    exported = [(a["annotator"], a["folder"]) for a in manifest["annotations"]]
    assert exported == [(name, f"case-{case.id}/user-{user.id}")]
    assert all(p.resolve().is_relative_to((tmp_path / "export").resolve()) for p in (tmp_path / "export").rglob("*"))
    # nobody else lost anything: the other accounts still log in, the case is in review with one revision
    assert service.login("ann", PASSWORD).user.username == "ann" and service.login("ada", PASSWORD)
    assert service.get_case(admin, case.id).status == "in_review" and len(revisions(service)) == 1


@pytest.mark.parametrize("kind", sorted(REFUSED_USER_NAMES))
def test_a_user_name_that_could_pass_for_another_is_refused_with_its_reason_and_adds_no_user(accounts, kind):
    service, admin, _, _ = accounts
    name, reason = REFUSED_USER_NAMES[kind]
    before = user_rows(service, admin)
    with pytest.raises(InvalidInputError) as refused:
        service.create_user(admin, name, PASSWORD, "annotator")
    assert reason in str(refused.value)
    assert user_rows(service, admin) == before
    with pytest.raises(AuthenticationError):  # logging in with it is an ordinary wrong login, not a crash
        service.login(name, PASSWORD)
    assert service.login("ann", PASSWORD).user.username == "ann"


@pytest.mark.parametrize("name, reason", [("ada\x00", "U+0000"), ("c" * 300, "at most 100"), ("\u202eada", "U+202E")])
def test_the_first_admin_gets_the_same_checks_and_a_refusal_leaves_the_database_empty(database_url, name, reason):
    service = WorkflowService.open(database_url)
    try:
        with pytest.raises(InvalidInputError, match=re.escape(reason)):
            service.create_first_admin(name, PASSWORD)
        assert not service.list_users_exist()
        assert service.create_first_admin("ada", PASSWORD).username == "ada"
    finally:
        service.database.dispose()


def test_command_line_add_user_keeps_a_slash_name_and_refuses_a_direction_override_without_a_traceback(workflow):
    service, admin, project, tmp_path = workflow
    db = tmp_path / "workflow.db"
    runs = run_mva_cases({
        "slash": (("project", "--db", db, "--user", "ada", "add-user", "a/b", "--role", "annotator"), tmp_path),
        "override": (("project", "--db", db, "--user", "ada", "add-user", "ann\u202eexe", "--role", "annotator"),
                     tmp_path),
    }, tmp_path, env={"MVA_PASSWORD": PASSWORD, "MVA_NEW_PASSWORD": PASSWORD})
    code, output, _ = runs["slash"]
    assert code == 0 and "user a/b (annotator" in output, output
    code, output, _ = runs["override"]
    assert code == 2 and "Traceback" not in output and "U+202E" in output, output
    assert user_rows(service, admin) == [("a/b", "annotator"), ("ada", "admin"), ("ann", "annotator")]

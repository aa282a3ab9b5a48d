"""Paths: export and storage folders come from ids, never from the names people choose; messages name cases,
never files (SQLite)."""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "SegmentAnythingMVA"))

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from MVAWorkflowLib.export import export_project  # noqa: E402
from MVAWorkflowLib.storage import Labelmap, StorageError  # noqa: E402
from MVAWorkflowLib.testing import PASSWORD, cheap_password_hashing, database_url, service  # noqa: E402,F401

MATRIX = np.diag([0.8, 0.9, 2.0, 1.0])
HOSTILE = ("..", "a b", "a_b")


def every_file(folder):
    return sorted(os.path.relpath(os.path.join(current, name), folder)
                  for current, _dirs, files in os.walk(folder) for name in files)


@pytest.fixture
def hostile_project(service, tmp_path):
    """Cases named "..", "a b", "a_b" (from the files `...nii.gz`, `a b.nrrd`, `a_b.nrrd`), each submitted by a
    user with the same hostile name."""
    from MVABridgeLib.volume_io import write_volume
    service.create_first_admin("ada", PASSWORD)
    admin = service.login("ada", PASSWORD).token
    project = service.create_project(admin, "P", storage_root=str(tmp_path / "root" / "storage"))
    service.add_labels(admin, project.id, ["1:Liver:#dd8065"])
    volumes = tmp_path / "root" / "volumes"
    volumes.mkdir(parents=True)
    for file_name in ("...nii.gz", "a b.nrrd", "a_b.nrrd"):
        write_volume(str(volumes / file_name), np.arange(240, dtype=np.int16).reshape(4, 6, 10), MATRIX)
    assert sorted(service.add_cases(admin, project.id, str(volumes))) == sorted(HOSTILE)
    for value, name in enumerate(HOSTILE, start=1):
        service.create_user(admin, name, PASSWORD, "annotator")
        token = service.login(name, PASSWORD).token
        case = service.case_by_name(token, project.id, name)
        service.claim(token, case.id)
        mask = np.zeros((4, 6, 10), np.uint8)
        mask[1:3, 1:1 + value, 2:5] = 1
        service.submit(token, case.id, Labelmap(mask, MATRIX))
    return admin, project


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_export_of_hostile_names_stays_inside_its_folder_keeps_them_apart_and_is_private(
        service, hostile_project, tmp_path):
    import pydicom
    admin, project = hostile_project
    before = every_file(tmp_path / "root")
    output = tmp_path / "root" / "export"
    manifest = export_project(service, admin, project.id, str(output), statuses=["in_review"])

    assert [f for f in every_file(tmp_path / "root") if not f.startswith("export" + os.sep)] == before
    assert sorted((r["case"], r["annotator"]) for r in manifest["annotations"]) == sorted(zip(HOSTILE, HOSTILE))
    folders = [r["folder"] for r in manifest["annotations"]]
    assert len(set(folders)) == 3 and all(f.startswith("case-") and "user-" in f for f in folders)
    for record in manifest["annotations"]:
        assert len(record["files"]) == 3 and all(f.startswith(record["folder"] + os.sep) for f in record["files"])
        answers = json.loads((output / record["folder"] / "answers.json").read_text())
        assert (answers["case"], answers["annotator"]) == (record["case"], record["annotator"])
    # each case's DICOM image series is its own, none overwritten by another case's
    series = {}
    for record in manifest["annotations"]:
        image_folder = output / os.path.dirname(record["folder"]) / "image-dicom"
        uids = {pydicom.dcmread(str(path)).SeriesInstanceUID for path in image_folder.iterdir()}
        assert len(uids) == 1 and len(list(image_folder.iterdir())) == 4
        series[record["case"]] = uids.pop()
    assert len(set(series.values())) == 3
    for current, _folders, files in os.walk(output):
        assert os.stat(current).st_mode & 0o777 == 0o700, current
        for name in files:
            assert os.stat(os.path.join(current, name)).st_mode & 0o777 == 0o600, name


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_case_whose_image_is_gone_says_so_without_naming_the_file(service, hostile_project, tmp_path):
    admin, project = hostile_project
    case = service.case_by_name(admin, project.id, "a b")
    os.remove(tmp_path / "root" / "volumes" / "a b.nrrd")
    with pytest.raises(StorageError, match="image of case 'a b' cannot be read") as error:
        service.load_volume(admin, case.id)
    assert str(tmp_path) not in str(error.value) and "volumes" not in str(error.value)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_only_admins_see_where_cases_and_annotations_are_stored(service, hostile_project, tmp_path):
    admin, project = hostile_project
    member = service.login("a b", PASSWORD).token
    seen_by_member = service.queue(member, project.id).mine + (service.get_case(member, 1),)
    assert seen_by_member and all(case.source_path == "" for case in seen_by_member)
    assert service.get_project(member, project.id).storage_root == ""
    assert all(p.storage_root == "" for p in service.list_projects(member))
    assert service.get_case(admin, 1).source_path.startswith(str(tmp_path))
    assert service.get_project(admin, project.id).storage_root == str(tmp_path / "root" / "storage")

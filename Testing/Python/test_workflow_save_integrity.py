"""Saves that never corrupt: several processes saving one annotation at once, and a process killed in the
middle of a save (SQLite and PostgreSQL)."""
import json
import os
import signal
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "SegmentAnythingMVA"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import pytest  # noqa: E402
from sqlalchemy import select  # noqa: E402

from MVAWorkflowLib import storage  # noqa: E402
from MVAWorkflowLib.models import AnnotationRevision  # noqa: E402
from MVAWorkflowLib.service import WorkflowService  # noqa: E402
from MVAWorkflowLib.service_annotations import DamagedAnnotationError  # noqa: E402
from MVAWorkflowLib.testing import (box_labelmap, cheap_password_hashing, database_url,  # noqa: E402,F401
                                    service, team)
from workflow_save_worker import read_tag, tagged_labelmap  # noqa: E402

WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "workflow_save_worker.py")
# A larger run for a stress test: MVA_TEST_SAVE_WRITERS=6 MVA_TEST_SAVE_COUNT=15 (CI uses 4 x 5).
WRITERS = int(os.environ.get("MVA_TEST_SAVE_WRITERS", "4"))
SAVES = int(os.environ.get("MVA_TEST_SAVE_COUNT", "5"))


def start_worker(service, token, case_id, writer, saves, mode="blind", go=None, pause=None):
    environment = {**os.environ, "MVA_WORKER_DB": service.database.url, "MVA_WORKER_TOKEN": token,
                   "MVA_WORKER_CASE": str(case_id), "MVA_WORKER_WRITER": str(writer),
                   "MVA_WORKER_SAVES": str(saves), "MVA_WORKER_MODE": mode}
    environment.update({"MVA_WORKER_GO": go} if go else {})
    environment.update({"MVA_WORKER_PAUSE": pause} if pause else {})
    return subprocess.Popen([sys.executable, WORKER], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=environment)


def read_line(process):
    line = process.stdout.readline()
    if not line:
        raise AssertionError(f"worker ended: {process.stderr.read()[-2000:]}")
    return json.loads(line)


def claimed_case(service, team):
    case = service.queue(team["ann"], team["project"].id).available[0]
    service.claim(team["ann"], case.id)
    return case, service.whoami(team["ann"]).id


def revisions_on_record(service, case_id, user_id):
    from MVAWorkflowLib.models import Assignment
    with service.database.transaction() as session:
        assignment = session.scalar(select(Assignment).where(Assignment.case_id == case_id,
                                                             Assignment.annotator_id == user_id))
        rows = session.scalars(select(AnnotationRevision).where(AnnotationRevision.assignment_id == assignment.id))
        return assignment.annotation_revision, {r.revision: (r.path, r.sha256) for r in rows}


def test_concurrent_processes_saving_one_annotation_never_mix_their_data(service, team, tmp_path):
    case, user_id = claimed_case(service, team)
    go = str(tmp_path / "go")
    writers = [start_worker(service, team["ann"], case.id, writer, saves=SAVES,
                            mode="expected" if writer % 2 else "blind", go=go) for writer in range(WRITERS)]
    for process in writers:
        assert "ready" in read_line(process)
    open(go, "w").close()
    committed, conflicts = {}, 0
    for process in writers:
        output, errors = process.communicate(timeout=120)
        assert process.returncode == 0, errors[-2000:]
        for line in output.splitlines():
            record = json.loads(line)
            if record.get("conflict"):
                conflicts += 1
            else:
                assert record["revision"] not in committed, "two saves reported the same revision"
                committed[record["revision"]] = (record["writer"], record["save"])
    current, rows = revisions_on_record(service, case.id, user_id)
    assert sorted(rows) == sorted(committed) == list(range(1, len(committed) + 1))
    assert current == len(committed) and len(committed) + conflicts == WRITERS * SAVES
    assert len(committed) >= SAVES  # blind saves are retried on conflicts (up to ServiceBase.RETRIES times)
    print(f"\n{len(committed)} revisions committed, {conflicts} saves refused as conflicts, all intact")
    for revision, (path, checksum) in rows.items():
        assert storage.file_sha256(path) == checksum, f"revision {revision} fails its checksum"
        assert read_tag(storage.read_labelmap(path, checksum)) == committed[revision], f"revision {revision}"
    folder = storage.annotation_folder(team["project"].storage_root, team["project"].id, case.id, user_id)
    assert sorted(os.path.join(folder, name) for name in os.listdir(folder)) == sorted(p for p, _ in rows.values())
    assert read_tag(service.load_annotation(team["ann"], case.id)) == committed[current]


def test_processes_killed_during_saves_leave_the_last_revisions_and_no_litter(service, team):
    # Two saves at once, on the two cases: one killed between writing its file and committing, one killed
    # while its temporary file is being written.
    cases = service.queue(team["ann"], team["project"].id).available
    user_id = service.whoami(team["ann"]).id
    workers, folders = [], []
    for case, pause in zip(cases, ("after-write", "in-write")):
        service.claim(team["ann"], case.id)
        service.save_annotation(team["ann"], case.id, tagged_labelmap(9, 1))
        workers.append(start_worker(service, team["ann"], case.id, writer=5, saves=2, pause=pause))
        folders.append(storage.annotation_folder(team["project"].storage_root, team["project"].id, case.id,
                                                 user_id))
    for worker, pause in zip(workers, ("after-write", "in-write")):
        assert "ready" in read_line(worker)
        assert read_line(worker)["revision"] == 2
        assert read_line(worker) == {"paused": pause}
        worker.send_signal(signal.SIGKILL)
        worker.wait(30)
    for case, folder in zip(cases, folders):
        assert len(os.listdir(folder)) == 3  # revisions 1 and 2 and what the killed save left
        current, rows = revisions_on_record(service, case.id, user_id)
        assert current == 2 and sorted(rows) == [1, 2]
        assert read_tag(service.load_annotation(team["ann"], case.id)) == (5, 0)

    restarted = WorkflowService.open(service.database.url)  # the next start cleans up
    restarted.database.dispose()
    for case, folder in zip(cases, folders):
        _current, rows = revisions_on_record(service, case.id, user_id)
        assert sorted(os.path.join(folder, name) for name in os.listdir(folder)) == sorted(p for p, _ in rows.values())
        assert service.save_annotation(team["ann"], case.id, tagged_labelmap(9, 2)).revision == 3


def test_the_clean_up_removes_only_files_of_dead_or_long_gone_writers_that_no_revision_uses(service, team):
    import time
    case, user_id = claimed_case(service, team)
    service.save_annotation(team["ann"], case.id, box_labelmap(value=1))
    folder = storage.annotation_folder(team["project"].storage_root, team["project"].id, case.id, user_id)
    committed = os.listdir(folder)
    host = storage.writer_tag().split("-")[0]
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    names = {"dead": f"annotation-{host}-{dead.pid}-ab12.nrrd", "live": f"annotation-{host}-{os.getpid()}-cd34.nrrd",
             "old": f"annotation-{host}-{os.getpid()}-ef56.nrrd", "temporary": f".tmp-{host}-{dead.pid}-0a1b.nrrd",
             "foreign": "annotation-0000ffff-1-aa.nrrd", "not ours": "notes.txt"}
    for name in names.values():
        open(os.path.join(folder, name), "w").close()
    two_hours_ago = time.time() - 7200
    os.utime(os.path.join(folder, names["old"]), (two_hours_ago, two_hours_ago))
    assert service.remove_unfinished_saves() == 3
    assert sorted(os.listdir(folder)) == sorted(committed + [names["live"], names["foreign"], names["not ours"]])
    assert service.load_annotation(team["ann"], case.id).label_values() == [1]


def test_a_save_that_loses_the_version_check_leaves_no_file(service, team):
    from MVAWorkflowLib.errors import ConflictError
    case, user_id = claimed_case(service, team)
    first = service.save_annotation(team["ann"], case.id, box_labelmap(value=1))
    service.save_annotation(team["ann"], case.id, box_labelmap(value=2), expected_version=first.version)
    with pytest.raises(ConflictError, match="reload it"):
        service.save_annotation(team["ann"], case.id, box_labelmap(value=1), expected_version=first.version)
    folder = storage.annotation_folder(team["project"].storage_root, team["project"].id, case.id, user_id)
    assert len(os.listdir(folder)) == 2


def test_a_damaged_current_revision_names_the_previous_one_and_that_one_opens(service, team):
    case, user_id = claimed_case(service, team)
    service.save_annotation(team["ann"], case.id, box_labelmap(value=1))
    service.save_annotation(team["ann"], case.id, box_labelmap(value=2))
    _current, rows = revisions_on_record(service, case.id, user_id)
    with open(rows[2][0], "r+b") as stream:
        stream.seek(-3, os.SEEK_END)
        stream.write(b"\0\0\0")
    with pytest.raises(DamagedAnnotationError, match="open revision 1") as damaged:
        service.load_annotation(team["ann"], case.id)
    assert damaged.value.earlier_revisions == (1,)
    assert team["project"].storage_root not in str(damaged.value)
    assert service.load_annotation(team["ann"], case.id, revision=1).label_values() == [1]
    assert [(r.revision, r.current, r.intact) for r in service.annotation_revisions(
        team["ann"], case.id, verify=True)] == [(2, True, False), (1, False, True)]
    assert service.load_annotation(team["rita"], case.id, annotator="ann", revision=1).label_values() == [1]


def test_annotation_files_are_0600_in_0700_folders(service, team):
    case, user_id = claimed_case(service, team)
    service.save_annotation(team["ann"], case.id, box_labelmap(value=1))
    _current, rows = revisions_on_record(service, case.id, user_id)
    path = rows[1][0]
    assert os.stat(path).st_mode & 0o777 == 0o600
    folder = os.path.dirname(path)
    while folder != os.path.dirname(team["project"].storage_root):
        assert os.stat(folder).st_mode & 0o777 == 0o700, folder
        folder = os.path.dirname(folder)

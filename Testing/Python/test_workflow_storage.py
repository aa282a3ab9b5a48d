"""Atomic saves of annotations, and migrations that match the models (SQLite and PostgreSQL)."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "SegmentAnythingMVA"))

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from MVAWorkflowLib import storage  # noqa: E402
from MVAWorkflowLib.database import Database  # noqa: E402
from MVAWorkflowLib.storage import Labelmap, StorageError, atomic_write, read_labelmap, write_labelmap  # noqa: E402
from MVAWorkflowLib.testing import (box_labelmap, cheap_password_hashing, database_url,  # noqa: E402,F401
                                    service, team)


def test_a_labelmap_round_trips_with_values_and_geometry(tmp_path):
    matrix = np.array([[0, 0.8, 0, 10], [-0.9, 0, 0, -5], [0, 0, 2.0, 3], [0, 0, 0, 1]])
    labelmap = box_labelmap(value=2, ijk_to_ras=matrix)
    checksum = write_labelmap(str(tmp_path / "a.nrrd"), labelmap)
    back = read_labelmap(str(tmp_path / "a.nrrd"), checksum)
    np.testing.assert_array_equal(back.array_kji, labelmap.array_kji)
    np.testing.assert_allclose(back.ijk_to_ras, matrix, atol=1e-6)


def test_a_crash_before_the_rename_leaves_the_previous_file_intact_and_no_temporary(tmp_path, monkeypatch):
    path = str(tmp_path / "annotation.nrrd")
    checksum = write_labelmap(path, box_labelmap(value=1))

    def crash(*_args):
        raise OSError("simulated power loss")
    monkeypatch.setattr(storage.os, "replace", crash)
    with pytest.raises(OSError, match="simulated power loss"):
        write_labelmap(path, box_labelmap(value=2))
    assert read_labelmap(path, checksum).label_values() == [1]
    assert os.listdir(tmp_path) == ["annotation.nrrd"]


def test_a_writer_dying_half_way_never_touches_the_target(tmp_path):
    path = str(tmp_path / "answers.json")
    atomic_write(path, lambda temporary: open(temporary, "w").write('{"ok": true}'))

    def half_write(temporary):
        with open(temporary, "w") as stream:
            stream.write('{"trunc')
        raise RuntimeError("killed")
    with pytest.raises(RuntimeError):
        atomic_write(path, half_write)
    assert open(path).read() == '{"ok": true}' and os.listdir(tmp_path) == ["answers.json"]


def test_a_file_changed_on_disk_is_detected_by_its_checksum(tmp_path):
    path = str(tmp_path / "a.nrrd")
    checksum = write_labelmap(path, box_labelmap())
    with open(path, "r+b") as stream:
        stream.seek(-4, os.SEEK_END)
        stream.write(b"\0\0\0\0")
    with pytest.raises(StorageError, match="checksum"):
        read_labelmap(path, checksum)


def test_labelmaps_must_be_3d_integers():
    with pytest.raises(ValueError, match="3D"):
        Labelmap(np.zeros((4, 4), np.uint8), np.eye(4))
    with pytest.raises(ValueError, match="integers"):
        Labelmap(np.zeros((2, 4, 4), np.float32), np.eye(4))


def test_a_failed_save_keeps_the_case_on_its_previous_revision(service, team, monkeypatch):
    case = service.queue(team["ann"], team["project"].id).available[0]
    service.claim(team["ann"], case.id)
    first = service.save_annotation(team["ann"], case.id, box_labelmap(value=1))

    def crash(*_args):
        raise OSError("disk full")
    monkeypatch.setattr(storage.os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        service.save_annotation(team["ann"], case.id, box_labelmap(value=2))
    monkeypatch.undo()
    assert service.get_case(team["ann"], case.id).assignment_of(first.annotator_id).revision == 1
    assert service.load_annotation(team["ann"], case.id).label_values() == [1]
    second = service.save_annotation(team["ann"], case.id, box_labelmap(value=2))
    assert second.revision == 2
    folder = storage.annotation_folder(team["project"].storage_root, team["project"].id, case.id,
                                       first.annotator_id)
    assert len(os.listdir(folder)) == 2  # the two revisions, nothing of the failed save


def test_the_migrations_create_exactly_the_tables_of_the_models(database_url):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from MVAWorkflowLib.models import Base
    database = Database(database_url)
    database.migrate()
    database.migrate()  # a second run is a no-op
    with database.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    database.dispose()
    assert differences == []


def test_upgrading_a_database_from_before_revision_records_keeps_the_current_annotation(service, team):
    from alembic import command
    from alembic.config import Config
    from MVAWorkflowLib.database import MIGRATIONS_DIR
    case = service.queue(team["ann"], team["project"].id).available[0]
    service.claim(team["ann"], case.id)
    service.save_annotation(team["ann"], case.id, box_labelmap(value=1))
    service.save_annotation(team["ann"], case.id, box_labelmap(value=2))
    config = Config()
    config.set_main_option("script_location", MIGRATIONS_DIR)
    with service.database.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0002")
    service.database.migrate()
    assert [(r.revision, r.current) for r in service.annotation_revisions(team["ann"], case.id)] == [(2, True)]
    assert service.load_annotation(team["ann"], case.id).label_values() == [2]
    assert service.save_annotation(team["ann"], case.id, box_labelmap(value=1)).revision == 3

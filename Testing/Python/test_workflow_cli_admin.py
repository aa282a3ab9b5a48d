"""`mva project users ...` and `mva project audit`, readable errors, and secrets kept off command lines and
out of the output (SQLite; PostgreSQL for the password tests when MVA_TEST_POSTGRES_URL is set)."""
import argparse
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "SegmentAnythingMVA"))

import pytest  # noqa: E402

from MVAWorkflowLib.project_cli import add_project_command, run_project  # noqa: E402
from MVAWorkflowLib.testing import POSTGRES_ENV, cheap_password_hashing, reset_postgres  # noqa: E402,F401

ADMIN_PASSWORD, MEMBER_PASSWORD = "admin password", "member password"


def mva(*argv):
    parser = argparse.ArgumentParser(prog="mva")
    add_project_command(parser.add_subparsers(dest="command", required=True))
    return run_project(parser.parse_args(list(argv)))


@pytest.fixture
def db(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'team.db'}"
    monkeypatch.setenv("MVA_PASSWORD", ADMIN_PASSWORD)
    monkeypatch.setenv("MVA_NEW_PASSWORD", MEMBER_PASSWORD)
    assert mva("project", "--db", url, "--user", "ada", "init", "Liver", "--storage", str(tmp_path / "files")) == 0
    assert mva("project", "--db", url, "--user", "ada", "add-user", "ann", "--role", "annotator") == 0
    return url


def as_user(monkeypatch, db, user, password, *argv):
    monkeypatch.setenv("MVA_PASSWORD", password)
    return mva("project", "--db", db, "--user", user, *argv)


def test_admins_list_disable_enable_and_reset_users_from_the_command_line(db, monkeypatch, capsys):
    capsys.readouterr()
    assert as_user(monkeypatch, db, "ada", ADMIN_PASSWORD, "users", "list") == 0
    listing = capsys.readouterr().out
    assert "ann" in listing and "annotator" in listing and "ada" in listing and "NO" not in listing
    assert as_user(monkeypatch, db, "ada", ADMIN_PASSWORD, "users", "disable", "ann") == 0
    assert as_user(monkeypatch, db, "ann", MEMBER_PASSWORD, "queue", "Liver") == 2
    assert "Wrong user name or password" in capsys.readouterr().err
    assert as_user(monkeypatch, db, "ada", ADMIN_PASSWORD, "users", "list") == 0
    assert [line for line in capsys.readouterr().out.splitlines() if " ann " in line][0].endswith("NO")
    assert as_user(monkeypatch, db, "ada", ADMIN_PASSWORD, "users", "enable", "ann") == 0
    assert as_user(monkeypatch, db, "ann", MEMBER_PASSWORD, "queue", "Liver") == 0
    monkeypatch.setenv("MVA_NEW_PASSWORD", "a brand new password")
    assert as_user(monkeypatch, db, "ada", ADMIN_PASSWORD, "users", "reset-password", "ann") == 0
    assert as_user(monkeypatch, db, "ann", MEMBER_PASSWORD, "queue", "Liver") == 2
    assert as_user(monkeypatch, db, "ann", "a brand new password", "queue", "Liver") == 0
    assert as_user(monkeypatch, db, "ann", "a brand new password", "users", "list") == 2
    assert "may not manage users" in capsys.readouterr().err
    assert as_user(monkeypatch, db, "ada", ADMIN_PASSWORD, "users", "disable", "nobody") == 2
    assert "No user named 'nobody'" in capsys.readouterr().err


def test_the_audit_command_shows_failed_logins_and_admin_changes(db, monkeypatch, capsys):
    import json
    assert as_user(monkeypatch, db, "ann", "guessing wrong", "queue", "Liver") == 2
    assert as_user(monkeypatch, db, "ada", ADMIN_PASSWORD, "users", "disable", "ann") == 0
    capsys.readouterr()
    assert as_user(monkeypatch, db, "ada", ADMIN_PASSWORD, "audit", "--action", "login_failed", "--json") == 0
    failed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(failed) == 1 and failed[0]["detail"]["username"] == "ann"
    assert failed[0]["detail"]["address"].startswith("cli:")
    assert as_user(monkeypatch, db, "ada", ADMIN_PASSWORD, "audit", "--limit", "6") == 0
    lines = capsys.readouterr().out.splitlines()
    # newest first: this command's login, the previous command's logout and login, then the disabling
    assert len(lines) == 6 and ["login", "logout", "login", "logout", "update_user"] == [
        line.split()[3] for line in lines[:5]] and "active=False" in lines[4]


def test_duplicates_and_bad_input_get_a_sentence_not_a_database_error(db, monkeypatch, capsys):
    capsys.readouterr()
    assert as_user(monkeypatch, db, "ada", ADMIN_PASSWORD, "init", "Liver") == 2
    error = capsys.readouterr().err
    assert "A project with that name already exists" in error and "UNIQUE" not in error
    assert as_user(monkeypatch, db, "ada", ADMIN_PASSWORD, "add-user", "ann", "--role", "reviewer") == 2
    error = capsys.readouterr().err
    assert "A user with that name already exists" in error and "constraint" not in error.lower()
    assert as_user(monkeypatch, db, "ada", ADMIN_PASSWORD, "add-cases", "Liver", "/no/such/folder") == 2
    assert "Traceback" not in capsys.readouterr().err


def test_the_database_file_is_private(db, tmp_path):
    from MVAWorkflowLib.database import Database
    assert os.stat(db[len("sqlite:///"):]).st_mode & 0o777 == 0o600
    fresh = Database(f"sqlite:///{tmp_path / 'new' / 'folder' / 'team.db'}")
    fresh.migrate()
    fresh.dispose()
    assert os.stat(tmp_path / "new" / "folder" / "team.db").st_mode & 0o777 == 0o600
    assert {os.stat(tmp_path / name).st_mode & 0o777 for name in ("new", "new/folder")} == {0o700}
    shared = tmp_path / "shared.db"
    shared.touch(0o644)
    shared.chmod(0o644)
    Database(f"sqlite:///{shared}").dispose()
    assert os.stat(shared).st_mode & 0o777 == 0o600


def test_a_password_in_the_database_url_on_the_command_line_is_refused_unseen(capsys):
    assert mva("project", "--db", "postgresql+psycopg://mva:hunter2-secret@127.0.0.1:1/mva", "users", "list") == 2
    error = capsys.readouterr().err
    assert "MVA_DATABASE_PASSWORD" in error and "hunter2-secret" not in error


def postgres_url():
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        pytest.skip(f"${POSTGRES_ENV} is not set (run Workflow/ci/start_postgres.sh)")
    reset_postgres(url)
    from sqlalchemy.engine import make_url
    parsed = make_url(url)
    return parsed._replace(password=None).render_as_string(hide_password=False), parsed.password


def watch_command_lines(process, secret):
    """Poll /proc/<pid>/cmdline and environ of a running process; True when `secret` was seen in either."""
    seen = False
    while process.poll() is None:
        for name in ("cmdline", "environ"):
            try:
                with open(f"/proc/{process.pid}/{name}", "rb") as stream:
                    seen = seen or secret.encode() in stream.read()
            except OSError:
                pass
        time.sleep(0.05)
    return seen


def test_the_postgresql_password_comes_from_a_file_and_shows_nowhere(tmp_path, monkeypatch, capsys):
    url, password = postgres_url()
    secret_file = tmp_path / "pg-password"
    secret_file.write_text(password + "\n")
    secret_file.chmod(0o600)
    for name, value in (("MVA_DATABASE_PASSWORD_FILE", str(secret_file)), ("MVA_USER", "ada"),
                        ("MVA_PASSWORD", ADMIN_PASSWORD), ("MVA_NEW_PASSWORD", MEMBER_PASSWORD)):
        monkeypatch.setenv(name, value)
    monkeypatch.delenv(POSTGRES_ENV)
    monkeypatch.delenv("MVA_DATABASE_URL", raising=False)
    assert mva("project", "--db", url, "init", "P", "--storage", str(tmp_path / "files")) == 0
    # a separate process, as an admin runs it: the password is in neither its command line nor its environment
    process = subprocess.Popen([os.path.join(os.path.dirname(sys.executable), "mva"), "project", "--db", url,
                                "users", "list"], env=dict(os.environ), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT)
    assert not watch_command_lines(process, password)
    output = process.stdout.read().decode()
    assert process.returncode == 0 and "ada" in output and password not in output
    # a wrong password file: a readable refusal, still without any password
    secret_file.write_text("not-the-password\n")
    capsys.readouterr()
    assert mva("project", "--db", url, "users", "list") == 2
    captured = capsys.readouterr()
    assert "cannot use postgresql" in captured.err and "password authentication failed" in captured.err
    assert "not-the-password" not in captured.err + captured.out and password not in captured.err


def test_a_damaged_revision_is_shown_and_the_previous_one_restored_from_the_command_line(db, monkeypatch, capsys,
                                                                                        tmp_path):
    from MVAWorkflowLib.service import WorkflowService
    from MVAWorkflowLib.testing import box_labelmap, write_case_volumes
    write_case_volumes(tmp_path / "volumes", names=("c1",))
    assert as_user(monkeypatch, db, "ada", ADMIN_PASSWORD, "add-labels", "Liver", "1:Liver:#dd8065", "2:Cyst:#00ff00") == 0
    assert as_user(monkeypatch, db, "ada", ADMIN_PASSWORD, "add-cases", "Liver", str(tmp_path / "volumes")) == 0
    service = WorkflowService.open(db)
    token = service.login("ann", MEMBER_PASSWORD).token
    case = service.claim_next(token, "Liver")
    service.save_annotation(token, case.id, box_labelmap(value=1))
    service.save_annotation(token, case.id, box_labelmap(value=2))
    damaged = [r for r in service.annotation_revisions(token, case.id)][0]
    from sqlalchemy import select
    from MVAWorkflowLib.models import AnnotationRevision
    with service.database.transaction() as session:
        path = session.scalar(select(AnnotationRevision.path).where(AnnotationRevision.revision == damaged.revision))
    with open(path, "ab") as stream:
        stream.write(b"garbage")
    capsys.readouterr()
    assert as_user(monkeypatch, db, "ann", MEMBER_PASSWORD, "revisions", "Liver", "c1") == 0
    listing = capsys.readouterr().out.splitlines()
    assert "r2" in listing[0] and "DAMAGED" in listing[0] and "(current)" in listing[0] and "intact" in listing[1]
    assert as_user(monkeypatch, db, "ann", MEMBER_PASSWORD, "revisions", "Liver", "c1", "--restore", "1") == 0
    assert "revision 1 saved again as revision 3" in capsys.readouterr().out
    assert service.load_annotation(token, case.id).label_values() == [1]
    service.database.dispose()

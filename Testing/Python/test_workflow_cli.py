"""`mva project ...` end to end on SQLite: init, users, labels, cases, queue, claim, submit, review, stats, export."""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "SegmentAnythingMVA"))

import numpy as np  # noqa: E402

from MVAWorkflowLib.project_cli import add_project_command, run_project  # noqa: E402
from MVAWorkflowLib.testing import cheap_password_hashing, write_case_volumes  # noqa: E402,F401


def mva(*argv):
    parser = argparse.ArgumentParser(prog="mva")
    add_project_command(parser.add_subparsers(dest="command", required=True))
    return run_project(parser.parse_args(list(argv)))


def test_the_project_commands_run_a_case_from_init_to_export(tmp_path, monkeypatch, capsys):
    from MVABridgeLib.volume_io import write_volume
    db = f"sqlite:///{tmp_path / 'team.db'}"
    monkeypatch.setenv("MVA_PASSWORD", "admin password")
    monkeypatch.setenv("MVA_NEW_PASSWORD", "member password")
    assert mva("project", "--db", db, "--user", "ada", "init", "Liver", "--storage", str(tmp_path / "files")) == 0
    assert mva("project", "--db", db, "--user", "ada", "add-user", "ann", "--role", "annotator",
               "--supplier", "Acme") == 0
    assert mva("project", "--db", db, "--user", "ada", "add-user", "rita", "--role", "reviewer") == 0
    assert mva("project", "--db", db, "--user", "ada", "add-labels", "Liver", "1:Liver:#dd8065:SCT:10200004:Liver") == 0
    matrix = write_case_volumes(tmp_path / "volumes", names=("c1",))
    assert mva("project", "--db", db, "--user", "ada", "add-cases", "Liver", str(tmp_path / "volumes")) == 0

    monkeypatch.setenv("MVA_PASSWORD", "member password")
    assert mva("project", "--db", db, "--user", "ann", "claim", "Liver") == 0
    labelmap = np.zeros((6, 8, 10), np.uint8)
    labelmap[2:4, 2:5, 2:6] = 1
    write_volume(str(tmp_path / "c1-label.nrrd"), labelmap, matrix)
    assert mva("project", "--db", db, "--user", "ann", "submit", "Liver", "c1", str(tmp_path / "c1-label.nrrd")) == 0
    capsys.readouterr()
    assert mva("project", "--db", db, "--user", "rita", "queue", "Liver") == 0
    assert "c1" in capsys.readouterr().out.split("to review:")[1]
    assert mva("project", "--db", db, "--user", "ann", "review", "Liver", "c1", "accept") == 2
    assert "may not review" in capsys.readouterr().err
    assert mva("project", "--db", db, "--user", "rita", "review", "Liver", "c1", "accept") == 0
    assert mva("project", "--db", db, "--user", "rita", "stats", "Liver", "--output", str(tmp_path / "stats")) == 0
    assert os.path.exists(tmp_path / "stats" / "throughput_per_annotator.png")
    assert mva("project", "--db", db, "--user", "rita", "export", "Liver", "--output", str(tmp_path / "out"),
               "--format", "nifti") == 0
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert [(r["case"], r["annotator"]) for r in manifest["annotations"]] == [("c1", "ann")]
    assert os.path.exists(tmp_path / "out" / manifest["annotations"][0]["folder"] / "labelmap.nii.gz")


def test_a_wrong_password_exits_with_status_2_and_a_message(tmp_path, monkeypatch, capsys):
    db = f"sqlite:///{tmp_path / 'team.db'}"
    monkeypatch.setenv("MVA_PASSWORD", "admin password")
    assert mva("project", "--db", db, "--user", "ada", "init", "P") == 0
    monkeypatch.setenv("MVA_PASSWORD", "wrong password")
    assert mva("project", "--db", db, "--user", "ada", "queue", "P") == 2
    assert "Wrong user name or password" in capsys.readouterr().err

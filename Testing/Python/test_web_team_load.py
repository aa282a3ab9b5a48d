"""A small load test of the team deployment in CI: 3 annotators for 60 s and a reviewer (team_load.py; run it
with more users for the report: `.venv/bin/python Testing/Python/team_load.py --users 6 --seconds 180`)."""
import json
import os

import pytest

pytest.importorskip("playwright.async_api")
pytest.importorskip("trame_slicer")
from web_harness import CHROMIUM  # noqa: E402

if not os.path.exists(CHROMIUM):
    pytest.skip("Chromium is not installed (apt-get install -y chromium)", allow_module_level=True)

pytestmark = pytest.mark.slow


def test_three_annotators_and_a_reviewer_lose_no_save_and_every_case_is_accepted(tmp_path):
    from team_load import run_load
    report = run_load(users=3, seconds=60, folder=str(tmp_path))
    print("\nteam load:", json.dumps(report))
    assert report["lost_saves"] == 0 and report["corrupt_saves"] == 0
    assert report["save_errors"] == []
    assert report["saves_confirmed"] >= 3
    assert report["statuses"] == ["accepted"] * 3
    assert set(report["actions"]) >= {"login to queue", "claim and open", "brush stroke", "save", "submit",
                                      "accept"}
    assert len(report["session_memory_mb"]) >= 1

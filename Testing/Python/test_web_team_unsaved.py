"""Unsaved work in the browser workflow, server side (no browser): `wf_dirty` follows every edit of the segments
and of the form (the page's beforeunload prompt asks while it is set), the periodic check warns before the login
expires with unsaved work and autosaves it, and a save clears both."""
import asyncio
import dataclasses
import datetime as _dt
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                                "WebAnnotator"))
pytest.importorskip("trame_slicer")

from MVAWebLib.workflow_unsaved import BEFORE_UNLOAD_SCRIPT, EXPIRY_WARNING_S, expiry_warning  # noqa: E402
from MVAWorkflowLib.models import utcnow  # noqa: E402
from MVAWorkflowLib.testing import PASSWORD, write_case_volumes  # noqa: E402

PROJECT = "Unsaved study"


def test_the_expiry_warning_comes_only_with_unsaved_work_in_the_last_minutes():
    now = _dt.datetime(2026, 1, 1, 12, 0, 0)
    soon = now + _dt.timedelta(seconds=EXPIRY_WARNING_S - 60)
    assert "ends in 14 min" in expiry_warning(soon, unsaved=True, now=now)
    assert expiry_warning(soon, unsaved=False, now=now) == ""
    assert expiry_warning(now + _dt.timedelta(hours=2), unsaved=True, now=now) == ""
    assert "ends now" in expiry_warning(now - _dt.timedelta(seconds=1), unsaved=True, now=now)
    assert "wf_dirty" in BEFORE_UNLOAD_SCRIPT and "preventDefault" in BEFORE_UNLOAD_SCRIPT


@pytest.fixture(scope="module")
def workflow_app(tmp_path_factory):
    from MVAWorkflowLib import security
    from MVAWorkflowLib.service import WorkflowService
    from trame.app import get_server

    from MVAWebLib.autosave import AutosaveStore
    from MVAWebLib.web_app import MVAWebApp
    from MVAWebLib.workflow_session import WorkflowSession
    os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")
    asyncio.set_event_loop(asyncio.new_event_loop())
    security.configure_hasher(time_cost=1, memory_cost_kib=1024)
    folder = tmp_path_factory.mktemp("unsaved")
    service = WorkflowService.open(f"sqlite:///{folder / 'team.db'}")
    service.create_first_admin("ada", PASSWORD)
    admin = service.login("ada", PASSWORD).token
    service.create_user(admin, "ann", PASSWORD, "annotator")
    project = service.create_project(admin, PROJECT, storage_root=str(folder / "storage"))
    service.add_labels(admin, project.id, ["1:Lesion:#ff0000"])
    service.add_question(admin, project.id, "quality", "Image quality", "choice", ["good", "poor"])
    write_case_volumes(folder / "volumes", names=("case_a",), shape_kji=(8, 24, 24))
    service.add_cases(admin, project.id, str(folder / "volumes"))
    app = MVAWebApp(get_server("mva_web_unsaved_test", client_type="vue3"),
                    workflow=WorkflowSession(service, PROJECT), autosave=AutosaveStore(folder / "autosave"))
    app.state.ready()  # as a started server: state changes reach their listeners
    yield app, service, admin
    app.runner.shutdown()
    service.database.dispose()
    security.configure_hasher()


def test_edits_and_answers_mark_the_case_dirty_and_the_check_warns_before_expiry_and_autosaves(workflow_app):
    app, service, admin = workflow_app
    state, workflow = app.state, app.workflow
    app.ctrl.wf_login("ann", PASSWORD)
    assert state.wf_user["name"] == "ann", state.wf_error
    case = state.wf_queue["available"][0]
    app.ctrl.wf_claim(case["id"])
    assert state.wf_case["name"] == "case_a", state.wf_error
    assert state.wf_dirty is False
    app.bridge.write_blocks((2, 5, 5), add=np.ones((2, 4, 4), bool))  # any edit of the segments
    assert state.wf_dirty is True
    workflow.session.session = dataclasses.replace(workflow.session.session,
                                                   expires_at=utcnow() + _dt.timedelta(minutes=5))
    workflow.check()
    assert "Your login ends in" in state.wf_expiry_warning
    user_id = workflow.session.user.id
    kept = workflow.autosave.load(user_id, case["id"])
    assert kept is not None and int(kept.labelmap.array_kji.sum()) == 32  # autosaved by the check
    app.ctrl.wf_save()
    assert state.wf_info == "Saved revision 1", state.wf_error
    assert state.wf_dirty is False and state.wf_expiry_warning == ""
    assert workflow.autosave.load(user_id, case["id"]) is None
    state.form_answers = {"quality": "good"}
    state.flush()
    assert state.wf_dirty is True  # a changed answer is unsaved work too
    workflow.check()  # the exact comparison agrees
    assert state.wf_dirty is True
    app.ctrl.wf_save({"quality": "good"})
    assert state.wf_dirty is False
    workflow.check()
    assert state.wf_dirty is False and state.wf_expiry_warning == ""  # nothing unsaved: no warning


def save_from_the_page(app, cancel_at=None):
    """The page's Save (a job: progress bar, Cancel) on a running loop; returns the fractions it reported."""
    runner, fractions = app.runner, []
    report = runner.report_progress

    def recording(fraction):
        fractions.append(float(fraction))
        if cancel_at is not None and fraction >= cancel_at:
            runner.cancel()  # as the page's Cancel button does
        report(fraction)

    async def scenario():
        app.ctrl.wf_save()
        assert runner.busy and app.workflow.saving()
        app.ctrl.wf_submit()  # another workflow action waits for the save
        assert "being saved" in app.state.wf_error
        while runner.busy:
            await asyncio.sleep(0.02)
    runner.report_progress = recording
    try:
        asyncio.get_event_loop().run_until_complete(scenario())
    finally:
        del runner.report_progress
    return fractions


def test_a_save_from_the_page_fills_the_bar_and_a_cancel_before_the_commit_saves_nothing(workflow_app):
    app, service, admin = workflow_app
    state, workflow = app.state, app.workflow
    case_id = state.wf_case["id"]
    revision = service.get_case(admin, case_id).assignments[0].revision
    storage = os.path.join(service.get_project(admin, PROJECT).storage_root)
    files = sorted(os.path.join(d, f) for d, _, names in os.walk(storage) for f in names)
    app.bridge.write_blocks((5, 10, 10), add=np.ones((1, 3, 3), bool))
    assert state.wf_dirty is True
    fractions = save_from_the_page(app, cancel_at=0.85)
    assert state.wf_info == "Save cancelled: nothing was saved", (state.wf_info, state.wf_error)
    assert service.get_case(admin, case_id).assignments[0].revision == revision
    assert sorted(os.path.join(d, f) for d, _, names in os.walk(storage) for f in names) == files  # no litter
    assert state.wf_dirty is True and fractions[-1] == 0.85
    fractions = save_from_the_page(app)
    assert state.wf_info == f"Saved revision {revision + 1}", (state.wf_info, state.wf_error)
    assert any(0 < value < 1 for value in fractions) and fractions == sorted(fractions) and fractions[-1] == 1.0
    assert state.wf_dirty is False and workflow.has_unsaved_changes() is False
    saved = service.load_annotation(admin, case_id, annotator="ann").array_kji
    assert int(saved.sum()) == 32 + 9

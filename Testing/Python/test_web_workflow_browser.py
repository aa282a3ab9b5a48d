"""The annotation workflow in the browser (`mva serve --project`), end to end in real Chromium.

An annotator logs in, claims a case, paints with the Smart Brush, answers the form, saves (and meets a version
conflict), submits; a reviewer logs in and accepts. The database is checked afterwards: states, annotation file,
audit entries, tool usage. Tests run in order and share one server and one browser.
"""
import asyncio
import os
import shutil
import time

import numpy as np
import pytest
from web_harness import CHROMIUM, ServedApp, browser_points, open_browser, wait_until

pytest.importorskip("playwright.async_api")
pytest.importorskip("trame_slicer")
if not os.path.exists(CHROMIUM):
    pytest.skip("Chromium is not installed (apt-get install -y chromium)", allow_module_level=True)

from MVAWorkflowLib import security
from MVAWorkflowLib.service import WorkflowService

PASSWORD = "correct horse battery"
PROJECT = "Brain study"
TIMINGS = {}


@pytest.fixture(scope="module")
def team(tmp_path_factory):
    from MVAWebLib.cases import default_case
    security.configure_hasher(time_cost=1, memory_cost_kib=1024)
    folder = tmp_path_factory.mktemp("workflow")
    shutil.copy(default_case(), folder / "mni_t1.nii.gz")
    service = WorkflowService.open(f"sqlite:///{folder / 'team.db'}")
    service.create_first_admin("ada", PASSWORD)
    admin = service.login("ada", PASSWORD).token
    service.create_supplier(admin, "Acme")
    service.create_user(admin, "ann", PASSWORD, "annotator", "Acme")
    service.create_user(admin, "rita", PASSWORD, "reviewer")
    project = service.create_project(admin, PROJECT, storage_root=str(folder / "storage"))
    service.add_labels(admin, project.id, ["1:White matter:#f0e0a0:SCT:68523003:White matter"])
    service.add_question(admin, project.id, "quality", "Image quality", "choice", ["good", "poor"])
    service.add_question(admin, project.id, "lesions", "Number of lesions", "number", required=False)
    service.add_cases(admin, project.id, str(folder))
    yield {"service": service, "admin": admin, "project": project}
    service.database.dispose()
    security.configure_hasher()


@pytest.fixture(scope="module")
def served(team):
    from MVAWebLib.workflow_session import WorkflowSession
    served = ServedApp(name="mva_web_workflow_test", workflow=WorkflowSession(team["service"], PROJECT)).start()
    yield served
    served.stop()


@pytest.fixture(scope="module")
def browser(served):
    started = time.perf_counter()
    playwright, browser, page = served.run(open_browser(served.url))
    served.run(page.wait_for_selector("#mva-login-user", timeout=30000))
    TIMINGS["page load to login form (s)"] = round(time.perf_counter() - started, 3)
    yield {"browser": browser, "page": page}
    served.run(browser.close())
    served.run(playwright.stop())


def state(served):
    return served.app.state


async def login(page, served, username, password=PASSWORD):
    await page.wait_for_selector("#mva-login-user", timeout=30000)
    await page.fill("#mva-login-user", username)
    await page.fill("#mva-login-password", password)
    started = time.perf_counter()
    await page.click("#mva-login")
    return started


async def wait_for_text(page, selector, text, timeout=20000):
    await page.wait_for_function(
        "([s, t]) => { const e = document.querySelector(s); return e && e.innerText.includes(t); }",
        arg=[selector, text], timeout=timeout)


def mask_voxels(served):
    return int(served.app.bridge.selected_mask().sum())


def test_the_page_asks_for_a_login_and_refuses_a_wrong_password(browser, served):
    page = browser["page"]

    async def scenario():
        await login(page, served, "ann", "not the password")
        await wait_for_text(page, "#mva-login-error", "password")
        assert await page.locator("#mva-queue").count() == 0
    served.run(scenario())
    assert state(served).wf_user is None
    assert not state(served).is_volume_loaded


def test_an_annotator_logs_in_sees_the_queue_and_claims_a_case_which_opens_its_volume(browser, served):
    page = browser["page"]

    async def scenario():
        started = await login(page, served, "ann")
        await page.wait_for_selector("#mva-annotate-mni_t1, #mva-claim-mni_t1", timeout=20000)
        TIMINGS["login to queue (s)"] = round(time.perf_counter() - started, 3)
        started = time.perf_counter()
        await page.click("#mva-claim-mni_t1")
        await page.wait_for_selector("#mva-case-panel", timeout=30000)
        await page.wait_for_function(
            "document.querySelector('img.image-display-area') && "
            "document.querySelector('img.image-display-area').naturalWidth > 0", timeout=30000)
        TIMINGS["claim to case shown (s)"] = round(time.perf_counter() - started, 3)
        assert "ann (annotator)" in await page.inner_text("#mva-user")
    served.run(scenario())
    assert state(served).is_volume_loaded
    assert served.app.editor.get_segment_names() == ["White matter"]
    assert [row["name"] for row in state(served).wf_queue["mine"]] == ["mni_t1"]


def test_the_annotator_paints_with_the_smart_brush_answers_and_saves_a_revision(browser, served, team):
    page = browser["page"]

    async def scenario():
        points = await browser_points(page, served.app, count=3, step=4)
        await page.click("#mva-tool-0")
        jobs = len(served.app.runner.history)
        await page.mouse.move(*points[0])
        await page.mouse.down()
        for point in points[1:]:
            await page.mouse.move(*point, steps=3)
        await page.mouse.up()
        await wait_until(lambda: len(served.app.runner.history) > jobs and not served.app.runner.busy,
                         what="the Smart Brush job")
        await page.get_by_label("good").check()
        await page.fill("#mva-q-lesions input, input#mva-q-lesions", "2")
        await page.click("#mva-logout")  # unsaved work: the page asks before logging out
        await page.wait_for_selector("#mva-unsaved-cancel", timeout=20000)
        await page.click("#mva-unsaved-cancel")
        await page.wait_for_selector("#mva-unsaved", state="detached", timeout=20000)
        started = time.perf_counter()
        await page.click("#mva-wf-save")
        await wait_for_text(page, "#mva-wf-info", "Saved revision 1")
        TIMINGS["save (s)"] = round(time.perf_counter() - started, 3)
    served.run(scenario())
    assert state(served).wf_user["name"] == "ann"  # Cancel kept the user logged in with the case open
    assert mask_voxels(served) > 50
    case = team["service"].case_by_name(team["admin"], PROJECT, "mni_t1")
    assert case.assignments[0].revision == 1
    assert team["service"].answers(team["admin"], case.id, annotator="ann") == {"quality": "good", "lesions": 2.0}


def test_a_save_from_another_tab_makes_the_next_save_fail_with_a_conflict_message(browser, served, team):
    page = browser["page"]
    service = team["service"]
    other_tab = service.login("ann", PASSWORD).token
    case = service.case_by_name(other_tab, PROJECT, "mni_t1")
    service.save_annotation(other_tab, case.id, service.load_annotation(other_tab, case.id),
                            expected_version=case.assignment_of(case.assignments[0].annotator_id).version)

    async def scenario():
        await page.click("#mva-wf-save")
        await wait_for_text(page, "#mva-wf-error", "Conflict")
        text = await page.inner_text("#mva-wf-error")
        await page.click("#mva-wf-reload")  # the snackbar's Reload opens the newest revision
        await wait_for_text(page, "#mva-wf-info", "opened to annotate")
        return text
    assert "reload" in served.run(scenario())
    assert service.case_by_name(team["admin"], PROJECT, "mni_t1").assignments[0].revision == 2
    assert mask_voxels(served) > 50  # the reloaded revision holds the painted voxels


def test_a_second_tab_is_refused_and_sees_nothing_while_the_first_keeps_working(browser, served):
    async def scenario():
        context = await browser["browser"].new_context()
        intruder = await context.new_page()
        await intruder.goto(served.url)
        await wait_until(lambda: served.guard.refused > 0, what="the second tab's hello to be refused")
        await asyncio.sleep(1)
        seen = await intruder.evaluate("() => window.trame && window.trame.state && "
                                       "window.trame.state.get('wf_user')")
        await context.close()
        await browser["page"].click("#mva-queue-refresh")
        return seen
    assert served.run(scenario()) is None
    assert state(served).wf_user["name"] == "ann"


def test_a_role_error_is_shown_in_the_page(browser, served):
    page = browser["page"]
    served.app.ctrl.wf_review("accept", "")  # what a crafted message from an annotator's page would ask for
    served.run(wait_for_text(page, "#mva-wf-error", "review"))
    assert "Open a case to review" in state(served).wf_error


def test_the_annotator_submits_the_case_for_review_and_logs_out(browser, served, team):
    page = browser["page"]

    async def scenario():
        await page.get_by_label("good").check()
        started = time.perf_counter()
        await page.click("#mva-wf-submit")
        await wait_for_text(page, "#mva-wf-info", "Submitted")
        TIMINGS["submit (s)"] = round(time.perf_counter() - started, 3)
        await page.click("#mva-logout")
        await page.wait_for_selector("#mva-login-user", timeout=10000)
    served.run(scenario())
    assert team["service"].case_by_name(team["admin"], PROJECT, "mni_t1").status == "in_review"
    assert not state(served).is_volume_loaded


def test_a_reviewer_sees_the_submitted_annotation_and_accepts_it(browser, served, team):
    page = browser["page"]

    async def scenario():
        await login(page, served, "rita")
        await page.click("#mva-review-mni_t1", timeout=20000)
        await page.wait_for_selector("#mva-accept", timeout=30000)
        assert await page.locator("#mva-wf-save").count() == 0
        assert await page.locator("#mva-q-quality-good").is_checked()
        voxels = mask_voxels(served)
        started = time.perf_counter()
        await page.click("#mva-accept")
        await wait_for_text(page, "#mva-wf-info", "accepted")
        TIMINGS["review accept (s)"] = round(time.perf_counter() - started, 3)
        return voxels
    assert served.run(scenario()) > 50
    print("\nworkflow web timings:", TIMINGS, state(served).wf_timings)


def test_the_database_holds_the_states_the_annotation_file_the_audit_and_the_tool_usage(team):
    from MVAWorkflowLib.statistics import project_statistics
    service, admin = team["service"], team["admin"]
    case = service.case_by_name(admin, PROJECT, "mni_t1")
    assert case.status == "accepted"
    assert case.assignments[0].status == "accepted"
    assert case.reviews[0].reviewer == "rita" and case.reviews[0].decision == "accept"
    labelmap = service.load_annotation(admin, case.id, annotator="ann")
    assert labelmap.label_values() == [1]
    assert int((labelmap.array_kji == 1).sum()) > 50
    assert labelmap.array_kji.shape == service.load_volume(admin, case.id)[0].shape
    actions = [entry.action for entry in service.audit_log(admin, entity="case", entity_id=case.id)]
    for action in ("claim", "save_answers", "save_annotation", "submit", "review"):
        assert action in actions
    tools = {row["tool"]: row for row in project_statistics(service, admin, PROJECT)["tools"]}
    assert tools["Smart Brush"]["interactions"] >= 1
    assert all(len(name) <= 50 and "." not in name for name in tools), sorted(tools)  # titles, not class paths
    assert sum(row["time_s"] for row in tools.values()) > 0
    assert np.isfinite(tools["Smart Brush"]["time_s"])

"""The team deployment end to end: wslink's launcher, the login gateway and one session process per user, as
the README tells an admin to start them, driven by real Chromium (one browser context per person).

Attack tests are regular tests here: a tab without a ticket, a used ticket, another user's ticket, crafted calls
of a reviewer, a killed session process, an expired login. Tests run in order and share the deployment.
"""
import os
import signal
import stat
import time

import pytest

pytest.importorskip("playwright.sync_api")
pytest.importorskip("trame_slicer")
from web_harness import CHROMIUM, CHROMIUM_ARGS  # noqa: E402

if not os.path.exists(CHROMIUM):
    pytest.skip("Chromium is not installed (apt-get install -y chromium)", allow_module_level=True)

import team_deployment as team  # noqa: E402

pytestmark = pytest.mark.slow
# the page's beforeunload handler on a stand-in event: a real one would make trame's client close its websocket
WOULD_ASK_BEFORE_CLOSING = ("() => { let asked = false; window.mvaBeforeUnload({preventDefault: () => { asked = true; "
                            "}, stopImmediatePropagation: () => {}}); return asked; }")
SESSION_START_S = 300  # a session process starts in 10-20 s on an idle 2-core machine, minutes on a loaded one
FACTS = {}


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    from MVAWorkflowLib import security
    security.configure_hasher(time_cost=1, memory_cost_kib=1024)
    folder = tmp_path_factory.mktemp("team")
    service, admin, url = team.create_project(str(folder), annotators=("ann", "bob"), reviewers=("rita",))
    deployed = team.TeamDeployment(folder, url, grace_s=120).start_gateway()
    yield {"deployed": deployed, "service": service, "admin": admin}
    deployed.stop()
    print("\nteam deployment facts:", FACTS)
    service.database.dispose()
    team.drop_database(url)
    security.configure_hasher()


@pytest.fixture(scope="module")
def chromium():
    from playwright.sync_api import sync_playwright
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def people(chromium):
    """One browser context (own cookies, own tabs) per person."""
    contexts = {name: chromium.new_context(viewport={"width": 1400, "height": 900}) for name in ("ann", "bob",
                                                                                                 "rita", "eve")}
    pages = {name: context.new_page() for name, context in contexts.items()}
    yield {"contexts": contexts, "pages": pages}
    for context in contexts.values():
        context.close()


def submit_login(page, url, username, password=team.PASSWORD):
    page.goto(url)
    page.fill("#mva-login-user", username)
    page.fill("#mva-login-password", password)
    page.click("#mva-login", no_wait_after=True)


def wait_logged_in(page, username):
    page.wait_for_function("([n]) => window.trame && window.trame.state && window.trame.state.get('wf_user') "
                           "&& window.trame.state.get('wf_user').name === n", arg=[username],
                           timeout=SESSION_START_S * 1000)


def state_of(page, key):
    return page.evaluate("(k) => window.trame.state.get(k)", key)


def ticket_address(context, url, username=None):
    """The session address (with a one-time ticket) the gateway answers, without following it."""
    if username is not None:
        reply = context.request.post(url + "login", form={"username": username, "password": team.PASSWORD},
                                     max_redirects=0, timeout=SESSION_START_S * 1000)
    else:
        reply = context.request.get(url, max_redirects=0, timeout=SESSION_START_S * 1000)
    assert reply.status == 303, reply.text()[:300]
    return reply.headers["location"]


def test_each_user_logs_in_through_the_gateway_and_gets_a_session_process_of_their_own(deployment, people):
    deployed, pages = deployment["deployed"], people["pages"]
    started = time.perf_counter()
    submit_login(pages["ann"], deployed.url, "ann")
    submit_login(pages["bob"], deployed.url, "bob")
    wait_logged_in(pages["ann"], "ann")
    wait_logged_in(pages["bob"], "bob")
    FACTS["two logins to both sessions shown (s)"] = round(time.perf_counter() - started, 1)
    pids = {name: state_of(pages[name], "session_pid") for name in ("ann", "bob")}
    assert pids["ann"] != pids["bob"]
    records = {record["pid"] for record in deployed.sessions().values()}
    assert set(pids.values()) <= records
    assert [row["name"] for row in state_of(pages["ann"], "wf_queue")["available"]] == ["case_01", "case_02"]
    for name in ("ann", "bob"):
        keys = pages[name].evaluate("() => window.trame.state.getAllKeys()")
        text = pages[name].evaluate("(keys) => JSON.stringify(keys.map((k) => window.trame.state.get(k)))", keys)
        assert team.PASSWORD not in text  # credentials never reach a session process's state
        assert "sessionURL" not in pages[name].url and "secret" not in pages[name].url
    FACTS["session memory (MB)"] = {n: round(team.process_memory_mb(p)) for n, p in pids.items()}


def test_a_session_page_without_a_ticket_goes_to_the_login_page(deployment, people):
    deployed, eve = deployment["deployed"], people["pages"]["eve"]
    port = next(iter(deployed.sessions().values()))["port"]
    eve.goto(f"http://127.0.0.1:{port}/")
    eve.wait_for_selector("#mva-login-form", timeout=20000)
    assert eve.url.startswith(deployed.url)


def test_a_used_ticket_and_another_users_ticket_are_refused_at_the_hello(deployment, people):
    deployed, contexts, eve = deployment["deployed"], people["contexts"], people["pages"]["eve"]
    bob_address = ticket_address(contexts["bob"], deployed.url)  # bob's cookie: a fresh ticket for bob
    ann_port = deployed.sessions()[user_id(deployment, "ann")]["port"]
    bob_port = deployed.sessions()[user_id(deployment, "bob")]["port"]
    stolen = bob_address.replace(f":{bob_port}/", f":{ann_port}/")
    eve.goto(stolen)
    # bob's ticket does not open ann's session; the refused page goes back to the gateway, which shows eve (no
    # login cookie) the login page instead of leaving her on a dead page
    eve.wait_for_selector("#mva-login-form", timeout=60000)
    assert not seen_user(eve)
    eve.goto(bob_address)  # the same ticket again (already redeemed by ann's process, which refused it)
    eve.wait_for_selector("#mva-login-form", timeout=60000)
    assert not seen_user(eve)
    assert state_of(people["pages"]["ann"], "wf_user")["name"] == "ann"  # ann's page is untouched


def test_a_refused_page_of_a_logged_in_user_gets_in_through_the_gateway_or_says_it_is_not_connected(
        deployment, people):
    """A hello refused for a used or expired ticket (a loaded host serving the page slowly) is not the end."""
    from MVAWebLib.session_page import RETURNS, STORAGE_KEY
    deployed, ann_context = deployment["deployed"], people["contexts"]["ann"]
    address = ticket_address(ann_context, deployed.url)
    ticket = address.split("secret=", 1)[1]
    assert deployment["service"].redeem_ticket(ticket)  # used up, as one that expired
    retry = ann_context.new_page()
    retry.goto(address)
    wait_logged_in(retry, "ann")  # back through the gateway (ann's cookie): a fresh ticket, the same process
    retry.close()
    people["pages"]["ann"].reload()  # the tab the test goes on with takes its session back
    wait_logged_in(people["pages"]["ann"], "ann")
    stuck = ann_context.browser.new_context()
    stuck.add_init_script(f"sessionStorage.setItem('{STORAGE_KEY}', '{RETURNS}')")  # it went back enough
    page = stuck.new_page()
    page.goto(address)
    page.wait_for_selector("#mva-back-to-login", timeout=60000)
    assert "could not connect" in page.inner_text("#mva-connect-failed")
    stuck.close()


def seen_user(page, wait_s=6):
    """Whatever user the page got to see within `wait_s` seconds (None: the hello was refused)."""
    deadline = time.time() + wait_s
    while time.time() < deadline:
        user = page.evaluate("() => window.trame && window.trame.state && window.trame.state.get('wf_user')")
        if user:
            return user
        time.sleep(0.5)
    return None


def user_id(deployment, name):
    users = {u.username: u.id for u in deployment["service"].list_users(deployment["admin"])}
    return users[name]


def test_killing_one_session_process_leaves_the_other_working_and_its_user_gets_a_new_one(deployment, people):
    deployed, pages = deployment["deployed"], people["pages"]
    bob_pid = state_of(pages["bob"], "session_pid")
    os.kill(bob_pid, signal.SIGKILL)
    pages["ann"].click("#mva-claim-case_01")
    pages["ann"].wait_for_selector("#mva-case-panel", timeout=120000)
    assert state_of(pages["ann"], "wf_case")["name"] == "case_01"
    pages["bob"].wait_for_selector("#mva-back-to-login", timeout=60000)
    pages["bob"].click("#mva-back-to-login", no_wait_after=True)
    wait_logged_in(pages["bob"], "bob")  # the cookie is still good: the gateway starts a new process
    assert state_of(pages["bob"], "session_pid") != bob_pid


def paint_stroke(page):
    """A Smart Brush stroke across the middle of the first slice view (brain tissue on the MNI T1)."""
    page.wait_for_function("document.querySelector('img.image-display-area') && "
                           "document.querySelector('img.image-display-area').naturalWidth > 0", timeout=60000)
    box = page.locator("img.image-display-area").first.bounding_box()
    x, y = box["x"] + box["width"] * 0.42, box["y"] + box["height"] * 0.45
    page.click("#mva-tool-0")
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 12, y, steps=4)
    page.mouse.up()
    page.wait_for_function("() => (window.trame.state.get('tool_status') || '').includes('Smart Brush:') && "
                           "!window.trame.state.get('job_busy')", timeout=60000)


def test_an_expired_login_autosaves_the_work_returns_to_the_login_page_and_restores_for_the_same_user(
        deployment, people):
    from MVAWorkflowLib.models import LoginSession, utcnow
    from sqlalchemy import update
    deployed, service, admin = deployment["deployed"], deployment["service"], deployment["admin"]
    ann = people["pages"]["ann"]
    paint_stroke(ann)
    ann.wait_for_function("() => window.trame.state.get('wf_dirty') === true", timeout=30000)
    assert ann.evaluate(WOULD_ASK_BEFORE_CLOSING)  # closing the tab now asks first
    ann_id = user_id(deployment, "ann")
    with service.database.transaction() as session:
        session.execute(update(LoginSession).where(LoginSession.user_id == ann_id).values(expires_at=utcnow()))
    ann.click("#mva-wf-save")
    ann.wait_for_selector("#mva-login-error", timeout=60000)
    assert "expired" in ann.inner_text("#mva-login-error")
    case = service.case_by_name(admin, team.PROJECT, "case_01")
    autosave = os.path.join(deployed.runtime, "autosave", str(ann_id), f"{case.id}.npz")
    assert stat.S_IMODE(os.stat(autosave).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(autosave)).st_mode) == 0o700
    assert case.assignments[0].revision in (None, 0)  # nothing was saved: the work is only in the autosave
    submit_login(ann, deployed.url, "ann")
    wait_logged_in(ann, "ann")
    ann.click("#mva-annotate-case_01")
    ann.wait_for_selector("#mva-restore-yes", timeout=120000)
    ann.click("#mva-restore-yes")
    ann.wait_for_function("() => (window.trame.state.get('wf_info') || '').includes('Restored')", timeout=60000)
    ann.click("#mva-wf-save")
    ann.wait_for_function("() => (window.trame.state.get('wf_info') || '').includes('Saved revision 1')",
                          timeout=60000)
    labelmap = service.load_annotation(admin, case.id, annotator="ann")
    assert int((labelmap.array_kji == 1).sum()) > 20
    assert not os.path.exists(autosave)  # saved: the autosave is gone
    assert not ann.evaluate(WOULD_ASK_BEFORE_CLOSING)  # nothing unsaved: the tab closes without a question


def test_a_reviewer_gets_a_read_only_viewer_and_the_session_refuses_writes(deployment, people):
    deployed, service, admin = deployment["deployed"], deployment["service"], deployment["admin"]
    ann, rita = people["pages"]["ann"], people["pages"]["rita"]
    ann.get_by_label("good").check()
    ann.click("#mva-wf-submit")
    ann.wait_for_function("() => (window.trame.state.get('wf_info') || '').includes('Submitted')", timeout=60000)
    submit_login(rita, deployed.url, "rita")
    wait_logged_in(rita, "rita")
    rita.click("#mva-review-case_01")
    rita.wait_for_selector("#mva-accept", timeout=120000)
    assert rita.locator("#mva-wf-save").count() == 0
    assert not rita.locator("#mva-edit-tools").is_visible()
    case = service.case_by_name(admin, team.PROJECT, "case_01")
    before = service.load_annotation(admin, case.id, annotator="ann").array_kji.copy()
    rita.evaluate("() => window.trame.trigger('activate_smart_tool', ['SmartBrushEffect'])")
    rita.wait_for_function("() => (window.trame.state.get('tool_error') || '').includes('review')", timeout=30000)
    assert state_of(rita, "smart_tool") == ""
    rita.evaluate("() => window.trame.trigger('wf_save', [{}])")
    rita.wait_for_function("() => (window.trame.state.get('wf_error') || '').includes('review')", timeout=30000)
    assert rita.locator("#mva-snackbar").is_visible()
    after = service.load_annotation(admin, case.id, annotator="ann").array_kji
    assert (before == after).all()
    assert service.case_by_name(admin, team.PROJECT, "case_01").version == case.version
    rita.click("#mva-snackbar-close")
    rita.click("#mva-accept")
    rita.wait_for_function("() => (window.trame.state.get('wf_info') || '').includes('accepted')", timeout=60000)
    assert service.case_by_name(admin, team.PROJECT, "case_01").status == "accepted"


def test_logout_ends_the_session_and_a_reload_shows_only_the_login_page(deployment, people):
    deployed, bob = deployment["deployed"], people["pages"]["bob"]
    pid = state_of(bob, "session_pid")
    bob.click("#mva-logout")
    bob.wait_for_selector("#mva-login-form", timeout=60000)
    bob.reload()
    bob.wait_for_selector("#mva-login-form", timeout=30000)
    deadline = time.time() + 30
    while time.time() < deadline and team.pid_alive(pid):
        time.sleep(0.5)
    assert not team.pid_alive(pid)


def test_no_password_or_ticket_appears_in_the_logs_or_on_a_command_line(deployment):
    deployed = deployment["deployed"]
    assert team.PASSWORD not in deployed.log_text()
    command_lines = []
    for pid in [deployed.launcher.pid, deployed.gateway.pid] + [r["pid"] for r in deployed.sessions().values()]:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as stream:
                command_lines.append(stream.read().decode(errors="replace"))
        except OSError:
            pass
    assert command_lines and not any(team.PASSWORD in line or "secret" in line for line in command_lines)
    assert not any(deployed.database.split("://")[0] + "://" in line for line in command_lines)

"""Parts of the team deployment without a browser: runtime and autosave files, the launcher configuration,
the one-browser guard, the job runner's progress and cancel, and the gateway's login endpoint."""
import asyncio
import os
import stat
import sys
import time

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                                "WebAnnotator"))

from MVAWebLib.autosave import AutosaveStore  # noqa: E402
from MVAWebLib.deploy_cli import launcher_config, nginx_site  # noqa: E402
from MVAWebLib.job_runner import JobRunner  # noqa: E402
from MVAWebLib.runtime_files import RuntimeFileError, RuntimeFolder  # noqa: E402
from MVAWebLib.session_guard import SessionGuard, shared_secret_check  # noqa: E402
from MVAWorkflowLib.storage import Labelmap  # noqa: E402


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_a_launch_request_is_private_and_can_be_taken_only_once(tmp_path):
    runtime = RuntimeFolder(tmp_path / "runtime")
    name = runtime.write_request({"user_id": 3})
    path = os.path.join(runtime.requests, name + ".json")
    assert mode(runtime.root) == 0o700 and mode(runtime.requests) == 0o700 and mode(path) == 0o600
    assert runtime.take_request(name) == {"user_id": 3}
    with pytest.raises(RuntimeFileError):
        runtime.take_request(name)
    with pytest.raises(RuntimeFileError, match="Malformed"):
        runtime.take_request("../../etc/passwd")


def test_a_session_record_of_a_dead_process_is_ignored_and_removed(tmp_path):
    runtime = RuntimeFolder(tmp_path / "runtime")
    runtime.record_session(5, 9101)
    assert runtime.live_session(5)["port"] == 9101
    runtime.record_session(6, 9102, pid=2 ** 22 + 12345)  # no such process
    assert runtime.live_session(6) is None
    assert not os.path.exists(os.path.join(runtime.sessions, "6.json"))


def test_an_autosave_is_0600_in_a_0700_folder_and_is_offered_only_to_its_user(tmp_path):
    store = AutosaveStore(tmp_path / "autosave")
    labels = np.zeros((4, 5, 6), np.uint8)
    labels[1, 2, 3] = 1
    path = store.save(7, 11, Labelmap(labels, np.eye(4)), {"quality": "good"})
    assert mode(path) == 0o600 and mode(os.path.dirname(path)) == 0o700 and mode(store.root) == 0o700
    kept = store.load(7, 11)
    assert np.array_equal(kept.labelmap.array_kji, labels) and kept.answers == {"quality": "good"}
    assert store.load(8, 11) is None  # another user
    os.makedirs(os.path.dirname(store.path(8, 11)), exist_ok=True)
    os.link(path, store.path(8, 11))  # even a copy placed under another user's name is not theirs
    assert store.load(8, 11) is None
    store.discard(7, 11)
    assert store.load(7, 11) is None


def test_the_launcher_configuration_pins_every_property_against_launch_requests(tmp_path):
    from wslink.launcher import replaceList
    config = launcher_config(tmp_path / "runtime", port=9000, session_ports=(9101, 9102), grace_s=30,
                             python="/opt/mva/bin/python")
    assert config["configuration"]["host"] == "127.0.0.1"
    command = config["apps"]["annotator"]["cmd"]
    hostile = {"application": "annotator", "request": "$(rm -rf ~)", "python": "/bin/sh",
               "runtime": "/tmp/evil", "grace": "0", "port": 9101}
    resolved = replaceList(command, [hostile, config["properties"]], config["configuration"]["sanitize"])
    assert resolved[0] == "/opt/mva/bin/python"
    assert str(tmp_path / "runtime") in resolved and "/tmp/evil" not in resolved
    assert "refused" in resolved and "30" in resolved


def test_the_nginx_site_proxies_only_the_session_port_range_and_logs_no_query_strings():
    text = nginx_site(listen=8443, gateway_port=8080, session_ports=(9101, 9103))
    assert "location ~ ^/session/(9101|9102|9103)/(.*)$" in text
    assert "listen 8443 ssl;" in text and "proxy_pass http://127.0.0.1:8080;" in text
    assert "mva_no_query" in text and "$request " not in text and "@" not in text


def test_the_nginx_site_waits_for_a_slow_session_start_on_login_instead_of_answering_504():
    text = nginx_site(listen=8443, gateway_port=8080, session_ports=(9101, 9103))
    gateway_block = text.split("location / {", 1)[1].split("}", 1)[0]
    timeout = gateway_block.split("proxy_read_timeout", 1)[1].split(";", 1)[0].strip()
    seconds = int(timeout[:-1]) * {"s": 1, "m": 60, "h": 3600}[timeout[-1]]
    assert seconds >= 300  # nginx's default of 60 s gave a 504 while a loaded server built the session (62 s)
    from MVAWebLib.gateway import LAUNCH_TIMEOUT_S, RECORD_WAIT_S
    assert seconds > LAUNCH_TIMEOUT_S + RECORD_WAIT_S  # the gateway's "try again" page, not nginx's 504


def run(coroutine):
    return asyncio.new_event_loop().run_until_complete(coroutine)


def test_the_one_browser_guard_refuses_a_second_tab_until_the_first_has_gone():
    left = []
    guard = SessionGuard(shared_secret_check("wslink-secret"), on_owner_left=lambda: left.append(1))
    assert run(guard.validateToken("wslink-secret", "tab-a"))
    assert not run(guard.validateToken("wslink-secret", "tab-b"))
    assert guard.refused == 1
    guard.onClose("tab-b")
    assert guard.owner == "tab-a" and not left
    guard.onClose("tab-a")
    assert left == [1]
    assert run(guard.validateToken("wslink-secret", "tab-b"))
    assert not run(SessionGuard(shared_secret_check("wslink-secret")).validateToken("guess", "tab-c"))


def test_a_team_guard_lets_a_newer_browser_of_the_user_take_over_and_disconnects_the_older():
    class Handler:
        def __init__(self):
            self.authentified_client_ids = {"old"}
            self.connections = {}
    tickets = {"good-1", "good-2"}
    guard = SessionGuard(lambda ticket: tickets.discard(ticket) is None and ticket.startswith("good"),
                         takeover=True)
    guard.handler = Handler()
    assert run(guard.validateToken("good-1", "old"))
    assert run(guard.validateToken("good-2", "new"))
    assert guard.owner == "new" and "old" not in guard.handler.authentified_client_ids
    assert not run(guard.validateToken("bad", "third"))


def test_the_job_runner_reports_progress_and_a_cancel_stops_a_polling_job():
    done = []
    runner = JobRunner(on_done=done.append)

    async def scenario():
        def compute():
            for step in range(200):
                if runner.cancel_requested():
                    raise RuntimeError("cancelled by the user")
                runner.report_progress(step / 200)
                time.sleep(0.01)
            return "finished"
        assert runner.submit("long", compute, lambda value: value)
        while runner.progress is None:
            await asyncio.sleep(0.01)
        assert 0 <= runner.progress < 1
        assert runner.cancel()
        while runner.busy:
            await asyncio.sleep(0.01)
    run(scenario())
    runner.shutdown()
    assert done[-1].error == "cancelled by the user" and done[-1].value is None
    assert runner.progress is None and not runner.cancel()


def test_the_gateway_refuses_wrong_passwords_without_echoing_them_and_throttles(tmp_path):
    from aiohttp.test_utils import TestClient, TestServer
    from MVAWorkflowLib import security
    from MVAWorkflowLib.login_throttle import ThrottlePolicy
    from MVAWorkflowLib.service import WorkflowService

    from MVAWebLib.gateway import Gateway, GatewayConfig
    security.configure_hasher(time_cost=1, memory_cost_kib=1024)
    url = f"sqlite:///{tmp_path / 'gateway.db'}"
    service = WorkflowService.open(url)
    service.throttle = ThrottlePolicy(user_free_failures=2, base_delay_s=30)
    service.create_first_admin("ada", "correct horse battery")
    gateway = Gateway(service, GatewayConfig(url, tmp_path / "runtime", "http://127.0.0.1:9/launcher/",
                                             secure_cookie=False))

    async def scenario():
        async with TestClient(TestServer(gateway.app)) as client:
            page = await client.get("/")
            assert page.status == 200 and "mva-login-form" in await page.text()
            replies = []
            for attempt in range(4):
                reply = await client.post("/login", data={"username": "ada", "password": f"guess-{attempt}"},
                                          allow_redirects=False)
                replies.append((reply.status, await reply.text(), reply.cookies))
            expired = await (await client.get("/?expired=1")).text()
            return replies, expired
    try:
        replies, expired = run(scenario())
    finally:
        service.database.dispose()
        security.configure_hasher()
    assert [status for status, _, _ in replies] == [401, 401, 401, 401]
    assert "Wrong user name or password" in replies[0][1]
    assert "Too many failed logins" in replies[-1][1]
    assert all("guess-" not in text and "mva_login" not in cookies for _, text, cookies in replies)
    assert "expired" in expired


def test_the_session_page_watches_its_connection_before_trame_runs_and_cannot_be_broken_out_of():
    from MVAWebLib.session_page import trame_index_html, with_reconnect
    page = with_reconnect(trame_index_html(), "https://example.org/</script><b>")
    head = page.split("</head>", 1)[0]
    # an inline classic script in <head> runs while the page is parsed; trame's bundle, a module script, after
    assert '<script>\n(function () {' in head and 'Object.defineProperty(window, "trame"' in head
    assert '<script type="module"' in head
    assert page.count("</script><b>") == 0 and '"https://example.org/<\\/script><b>"' in page
    with pytest.raises(ValueError):
        with_reconnect("<html><body></body></html>", "/")


def test_the_gateway_sends_no_one_to_a_session_process_that_never_served(tmp_path, monkeypatch):
    """wslink's launcher answers "ready" for a process that died at start: "try again", not a dead page."""
    from aiohttp import web
    from aiohttp.test_utils import TestClient, TestServer
    from MVAWorkflowLib import security
    from MVAWorkflowLib.service import WorkflowService

    from MVAWebLib import gateway
    monkeypatch.setattr(gateway, "RECORD_WAIT_S", 0.3)
    security.configure_hasher(time_cost=1, memory_cost_kib=1024)
    url = f"sqlite:///{tmp_path / 'gateway.db'}"
    service = WorkflowService.open(url)
    user = service.create_first_admin("ada", "correct horse battery")
    launched = []

    async def launcher(request):
        launched.append(await request.json())
        return web.json_response({"port": 9101})  # and the process it started has gone
    fake_launcher = web.Application()
    fake_launcher.router.add_post("/launcher/", launcher)
    runtime = RuntimeFolder(tmp_path / "runtime")

    async def scenario():
        async with TestServer(fake_launcher) as launcher_server:
            config = gateway.GatewayConfig(url, runtime.root, str(launcher_server.make_url("/launcher/")),
                                           public_url="/", session_page="/session/{port}/", secure_cookie=False)
            async with TestClient(TestServer(gateway.Gateway(service, config).app)) as client:
                form = {"username": "ada", "password": "correct horse battery"}
                dead = await client.post("/login", data=form, allow_redirects=False)
                dead_text = await dead.text()
                runtime.record_session(user.id, 9101)  # now a process of ada serves on 9101
                live = await client.post("/login", data=form, allow_redirects=False)
                return dead.status, dead_text, live.status, live.headers.get("Location", "")
    try:
        dead_status, dead_text, live_status, location = run(scenario())
    finally:
        service.database.dispose()
        security.configure_hasher()
    assert dead_status == 503 and "Try again" in dead_text
    assert live_status == 303 and location.startswith("/session/9101/index.html?") and "secret=" in location
    assert len(launched) == 1  # the live process is reused, not launched again


def test_an_ending_session_process_drops_its_record_at_once_and_refuses_a_new_browser(tmp_path, monkeypatch):
    """A quick login after an expiry or logout must reach a new process, not the one about to exit."""
    from MVAWorkflowLib import security
    from MVAWorkflowLib.service import WorkflowService

    from MVAWebLib import session_process
    monkeypatch.setattr(session_process, "EXIT_AFTER_LOGOUT_S", 0.05)
    security.configure_hasher(time_cost=1, memory_cost_kib=1024)
    service = WorkflowService.open(f"sqlite:///{tmp_path / 'team.db'}")
    service.create_first_admin("ada", "correct horse battery")
    login = service.login("ada", "correct horse battery")
    runtime = RuntimeFolder(tmp_path / "runtime")
    runtime.record_session(login.user.id, 9101)
    stopped, adopted = [], []

    class Server:
        async def stop(self):
            stopped.append(1)
    stopper = session_process.Stopper(Server(), on_ending=lambda: runtime.forget_session(login.user.id,
                                                                                          os.getpid()))
    check = session_process.TicketCheck(service, login.user.id, adopted.append, stopper)

    async def scenario():
        assert check(service.issue_ticket(login.token))  # a live process lets its user in
        stopper.soon()
        stopper.soon()  # a second logout message: still one stop
        assert runtime.live_session(login.user.id) is None  # the gateway will launch a new process
        late = service.issue_ticket(login.token)
        assert not check(late)
        await asyncio.sleep(0.2)
        return late
    try:
        late = run(scenario())
        assert stopped == [1] and len(adopted) == 1
        assert service.redeem_ticket(late).user.id == login.user.id  # refused unredeemed: still good elsewhere
    finally:
        service.database.dispose()
        security.configure_hasher()

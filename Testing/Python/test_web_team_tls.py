"""The production setup of the README: Debian's nginx as TLS reverse proxy (self-signed certificate here) in
front of the gateway and the session processes, the launcher on loopback and never proxied.

Needs /usr/sbin/nginx (`apt-get install -y nginx-light`), openssl and Chromium; skipped without them.
"""
import os
import shutil
import subprocess
import urllib.error
import urllib.request
import ssl

import pytest

pytest.importorskip("playwright.sync_api")
from web_harness import CHROMIUM, CHROMIUM_ARGS  # noqa: E402

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
for tool, hint in ((CHROMIUM, "apt-get install -y chromium"), (NGINX, "apt-get install -y nginx-light")):
    if not os.path.exists(tool):
        pytest.skip(f"{tool} is not installed ({hint})", allow_module_level=True)
if shutil.which("openssl") is None:
    pytest.skip("openssl is not installed", allow_module_level=True)

import team_deployment as team  # noqa: E402
from test_web_team_deployment import SESSION_START_S, submit_login, wait_logged_in  # noqa: E402

pytestmark = pytest.mark.slow
NGINX_MAIN = """daemon off;
pid {folder}/nginx.pid;
error_log {folder}/error.log;
events {{ worker_connections 256; }}
http {{
    client_body_temp_path {folder}/body;
    proxy_temp_path {folder}/proxy;
    fastcgi_temp_path {folder}/fastcgi;
    uwsgi_temp_path {folder}/uwsgi;
    scgi_temp_path {folder}/scgi;
    include {site};
}}
"""


@pytest.fixture(scope="module")
def behind_nginx(tmp_path_factory):
    from MVAWebLib.deploy_cli import nginx_site
    from MVAWorkflowLib import security
    security.configure_hasher(time_cost=1, memory_cost_kib=1024)
    folder = tmp_path_factory.mktemp("tls")
    service, _admin, url = team.create_project(str(folder), annotators=("ann",), reviewers=(), cases=1)
    deployed = team.TeamDeployment(folder, url, grace_s=60).start_gateway(
        public_url="/", session_page="/session/{port}/", session_ws="ws://USE_HOST/session/{port}/ws", secure=True)
    certificate, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                    "/CN=127.0.0.1", "-keyout", str(key), "-out", str(certificate)], check=True,
                   capture_output=True)
    https_port = team.free_port()
    nginx_dir = folder / "nginx"
    nginx_dir.mkdir()
    site = nginx_dir / "mva.conf"
    site.write_text(nginx_site(listen=f"127.0.0.1:{https_port}", gateway_port=deployed.gateway_port,
                               session_ports=deployed.session_ports, certificate=certificate,
                               certificate_key=key, log_dir=nginx_dir))
    main = nginx_dir / "nginx.conf"
    main.write_text(NGINX_MAIN.format(folder=nginx_dir, site=site))
    nginx = subprocess.Popen([NGINX, "-c", str(main), "-p", str(nginx_dir)], stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)
    base = f"https://127.0.0.1:{https_port}/"
    insecure = ssl.create_default_context()
    insecure.check_hostname, insecure.verify_mode = False, ssl.CERT_NONE
    team.wait_http(base + "healthz", opener=lambda u: urllib.request.urlopen(u, timeout=2, context=insecure))
    yield {"deployed": deployed, "base": base, "nginx_dir": nginx_dir, "context": insecure}
    nginx.terminate()
    nginx.wait(10)
    deployed.stop()
    service.database.dispose()
    team.drop_database(url)
    security.configure_hasher()


def test_a_user_logs_in_over_tls_and_the_session_runs_over_wss_through_nginx(behind_nginx):
    from playwright.sync_api import sync_playwright
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(ignore_https_errors=True)
        page = context.new_page()
        sockets = []
        page.on("websocket", lambda socket: sockets.append(socket.url))
        submit_login(page, behind_nginx["base"], "ann")
        wait_logged_in(page, "ann")
        cookies = {c["name"]: c for c in context.cookies()}
        page_url = page.url
        browser.close()
    assert page_url.startswith(behind_nginx["base"] + "session/")
    assert any(url.startswith("wss://127.0.0.1:") and "/session/" in url for url in sockets)
    assert cookies["mva_login"]["secure"] and cookies["mva_login"]["httpOnly"]
    log = (behind_nginx["nginx_dir"] / "mva-access.log").read_text()
    assert "/session/" in log and "secret" not in log and "sessionURL" not in log  # tickets stay out of logs


def test_the_launcher_is_not_reachable_through_the_proxy(behind_nginx):
    deployed, base = behind_nginx["deployed"], behind_nginx["base"]
    for path in ("launcher/", f"session/{deployed.launcher_port}/launcher/"):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(urllib.request.Request(base + path, data=b'{"application": "annotator"}'),
                                   timeout=10, context=behind_nginx["context"])
        assert refused.value.code in (403, 404, 405)

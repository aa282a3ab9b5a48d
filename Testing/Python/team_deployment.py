"""The team deployment as the README tells an admin to start it, for the browser, attack and load tests.

`mva launcher` (wslink's launcher with WebAnnotator/deploy/launcher.json) and `mva gateway` run as separate
processes on 127.0.0.1 with a private runtime folder; session processes are started by the launcher. The
database is PostgreSQL when MVA_TEST_POSTGRES_URL is set (CI: .ci/run starts one), else SQLite in a temporary folder.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MVA = [sys.executable, "-m", "MVACommandLineLib.cli"]
PASSWORD = "correct horse battery"
PROJECT = "Team study"


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def free_port_range(count):
    """`count` consecutive free ports (the launcher's session port range)."""
    for _ in range(50):
        start = free_port()
        if start + count > 65000:
            continue
        ports = range(start, start + count)
        try:
            for port in ports:
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        return start, start + count - 1
    raise RuntimeError("No free port range")


def wait_http(url, timeout=60, opener=None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with (opener or (lambda u: urllib.request.urlopen(u, timeout=2)))(url):
                return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {timeout} s")


def database_url(folder):
    """A schema of its own in the PostgreSQL test database (MVA_TEST_POSTGRES_URL; other tests may use that
    database at the same time), or SQLite in `folder` when that is not set."""
    postgres = os.environ.get("MVA_TEST_POSTGRES_URL")
    if not postgres:
        return f"sqlite:///{folder}/team.db"
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    schema = f"mva_team_{os.getpid()}_{int(time.time() * 1000) % 10 ** 8}"
    engine = create_engine(postgres)
    with engine.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine.dispose()
    url = make_url(postgres).update_query_dict({"options": f"-csearch_path={schema}"})
    return url.render_as_string(hide_password=False)


def drop_database(url):
    """Remove the PostgreSQL schema `database_url` made (nothing to do for SQLite: its folder goes away)."""
    if not url.startswith("postgresql"):
        return
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    parsed = make_url(url)
    schema = parsed.query["options"].split("=", 1)[1]
    engine = create_engine(parsed.difference_update_query(["options"]))
    with engine.begin() as connection:
        connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    engine.dispose()


def create_project(folder, annotators=("ann", "bob"), reviewers=("rita",), cases=2):
    """A project with one label, a form question, `cases` copies of the MNI T1 and the given users."""
    from MVAWebLib.cases import default_case
    from MVAWorkflowLib.service import WorkflowService
    case_folder = os.path.join(folder, "cases")
    os.makedirs(case_folder, exist_ok=True)
    for index in range(cases):
        shutil.copy(default_case(), os.path.join(case_folder, f"case_{index + 1:02d}.nii.gz"))
    url = database_url(folder)
    service = WorkflowService.open(url)
    service.create_first_admin("ada", PASSWORD)
    admin = service.login("ada", PASSWORD).token
    for name in annotators:
        service.create_user(admin, name, PASSWORD, "annotator")
    for name in reviewers:
        service.create_user(admin, name, PASSWORD, "reviewer")
    project = service.create_project(admin, PROJECT, storage_root=os.path.join(folder, "storage"))
    service.add_labels(admin, project.id, ["1:White matter:#f0e0a0"])
    service.add_question(admin, project.id, "quality", "Image quality", "choice", ["good", "poor"])
    service.add_cases(admin, project.id, case_folder)
    return service, admin, url


class TeamDeployment:
    """Launcher + gateway subprocesses; `stop()` ends them and every session process."""

    def __init__(self, folder, database, grace_s=60, sessions=6, developer=True):
        self.folder = str(folder)
        self.runtime = os.path.join(self.folder, "runtime")
        self.database = database
        self.launcher_port, self.gateway_port = free_port(), free_port()
        self.session_ports = free_port_range(sessions)
        env = dict(os.environ, MVA_DATABASE_URL=database, PYTHONUNBUFFERED="1",
                   VTK_DEFAULT_OPENGL_WINDOW="vtkEGLRenderWindow", OMP_NUM_THREADS="1")
        env.pop("MVA_PASSWORD", None)
        self.logs = os.path.join(self.folder, "logs")
        os.makedirs(self.logs, exist_ok=True)
        ports = f"{self.session_ports[0]}-{self.session_ports[1]}"
        self.launcher = self._start("launcher", MVA + ["launcher", "--runtime", self.runtime, "--port",
                                                       str(self.launcher_port), "--session-ports", ports,
                                                       "--grace", str(grace_s)], env)
        gateway_args = ["gateway", "--runtime", self.runtime, "--project-name", PROJECT, "--port",
                        str(self.gateway_port), "--launcher", f"http://127.0.0.1:{self.launcher_port}/launcher/"]
        self.gateway_args = gateway_args
        self.env = env
        self.developer = developer
        self.gateway = None

    def _start(self, name, command, env):
        log = open(os.path.join(self.logs, f"{name}.log"), "ab")
        return subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)

    def start_gateway(self, public_url=None, session_page=None, session_ws=None, secure=False):
        """Gateway reached directly (no nginx: pages and websockets on the session ports) unless told otherwise."""
        args = list(self.gateway_args)
        args += ["--public-url", public_url or f"http://127.0.0.1:{self.gateway_port}/",
                 "--session-page", session_page or "http://127.0.0.1:{port}/",
                 "--session-ws", session_ws or "ws://127.0.0.1:{port}/ws"]
        if not secure:
            args.append("--insecure-cookie")
        if self.developer:
            args.append("--developer")
        self.gateway = self._start("gateway", MVA + args, self.env)
        wait_http(f"http://127.0.0.1:{self.gateway_port}/healthz")
        return self

    @property
    def url(self):
        return f"http://127.0.0.1:{self.gateway_port}/"

    def sessions(self):
        """{user id: record} of the live session processes (runtime folder)."""
        folder = os.path.join(self.runtime, "sessions")
        records = {}
        for name in os.listdir(folder) if os.path.isdir(folder) else []:
            if name.endswith(".json"):
                with open(os.path.join(folder, name), encoding="utf-8") as stream:
                    record = json.load(stream)
                records[record["user_id"]] = record
        return records

    def stop(self):
        pids = [record["pid"] for record in self.sessions().values()]
        for process in (self.gateway, self.launcher):
            if process is not None and process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for process in (self.gateway, self.launcher):
            if process is not None:
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)

    def log_text(self):
        texts = []
        for folder in (self.logs, os.path.join(self.runtime, "logs")):
            for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
                with open(os.path.join(folder, name), errors="replace") as stream:
                    texts.append(f"--- {name}\n{stream.read()[-4000:]}")
        return "\n".join(texts)


def process_memory_mb(pid):
    """Resident memory of a process (VmRSS) in MB."""
    with open(f"/proc/{int(pid)}/status", encoding="ascii") as stream:
        for line in stream:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def pid_alive(pid):
    from MVAWebLib.runtime_files import pid_alive as alive
    return alive(pid)

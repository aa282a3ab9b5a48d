"""`mva launcher`, `mva gateway` and `mva nginx-site`: the team deployment (thin: parse, configure, start).

`mva launcher` runs wslink's own launcher (wslink.launcher) on WebAnnotator/deploy/launcher.json with its
placeholders filled in; it writes the effective configuration into the private runtime folder. Every property
of the command line is pinned by a sanitize rule, because wslink substitutes launch-request values before the
properties: without the pin a request carrying "python" or "runtime" would choose the command.
"""
import json
import os
import sys

DEPLOY_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "deploy")
LAUNCHER_CONFIG = os.path.join(DEPLOY_DIR, "launcher.json")
NGINX_SITE = os.path.join(DEPLOY_DIR, "nginx-mva.conf")


def port_range(text):
    low, _, high = str(text).partition("-")
    low, high = int(low), int(high or low)
    if not 1024 <= low <= high <= 65535:
        raise ValueError(f"expected a port range such as 9101-9140, got {text!r}")
    return low, high


def launcher_config(runtime_dir, port=9000, session_ports=(9101, 9140), grace_s=600, python=None,
                    template=LAUNCHER_CONFIG):
    """The launcher configuration (a dict) from the repository's template."""
    from wslink.launcher import remove_comments
    with open(template, encoding="utf-8") as stream:
        text = remove_comments(stream.read())
    runtime_dir = os.path.abspath(runtime_dir)
    text = text.replace("@RUNTIME@", runtime_dir).replace("@PYTHON@", python or sys.executable)
    config = json.loads(text)
    config["configuration"]["port"] = int(port)
    config["configuration"]["host"] = "127.0.0.1"
    config["resources"] = [{"host": "127.0.0.1", "port_range": [int(session_ports[0]), int(session_ports[1])]}]
    config["properties"]["grace"] = str(int(grace_s))
    sanitize = config["configuration"].setdefault("sanitize", {})
    for key, value in config["properties"].items():
        sanitize[key] = {"type": "inList", "list": [value], "default": value}
    return config


def write_launcher_config(config, runtime_dir):
    from MVAWebLib.runtime_files import RuntimeFolder, private_folder, write_private
    runtime = RuntimeFolder(runtime_dir)
    private_folder(config["configuration"]["log_dir"])
    path = os.path.join(runtime.root, "launcher.json")
    write_private(path, json.dumps(config, indent=1).encode("utf-8"))
    return path


def nginx_site(listen=443, gateway_port=8080, session_ports=(9101, 9140), certificate="/etc/ssl/mva/cert.pem",
               certificate_key="/etc/ssl/mva/key.pem", server_name="_", log_dir="/var/log/nginx",
               template=NGINX_SITE):
    """The nginx site (text) from the repository's template."""
    with open(template, encoding="utf-8") as stream:
        text = stream.read()
    values = {"LISTEN": listen, "SERVER_NAME": server_name, "CERTIFICATE": certificate,
              "CERTIFICATE_KEY": certificate_key, "LOG_DIR": log_dir, "GATEWAY_PORT": gateway_port,
              "SESSION_PORTS": "|".join(str(p) for p in range(int(session_ports[0]), int(session_ports[1]) + 1))}
    for key, value in values.items():
        text = text.replace(f"@{key}@", str(value))
    return text


def add_deploy_commands(subparsers):
    """Add `launcher`, `gateway` and `nginx-site` to an argparse subparsers object."""
    from MVACommandLineLib.arguments import int_range
    launcher = subparsers.add_parser("launcher", help="team deployment: wslink's launcher of session processes")
    launcher.add_argument("--runtime", required=True, help="private runtime folder (shared with the gateway)")
    launcher.add_argument("--port", type=int_range(1, 65535), default=9000, help="loopback port (default: %(default)s)")
    launcher.add_argument("--session-ports", default="9101-9140", help="ports of session processes")
    launcher.add_argument("--grace", type=int_range(0, 7 * 24 * 3600), default=600, help="seconds a session lives after its browser left")
    launcher.add_argument("--config", default=LAUNCHER_CONFIG, help="launcher configuration template")

    gateway = subparsers.add_parser("gateway", help="team deployment: the login endpoint")
    gateway.add_argument("--project", default=None, metavar="DB_URL_OR_FILE",
                         help="workflow database (default: $MVA_DATABASE_URL or the file in "
                              "$MVA_DATABASE_URL_FILE: a password on the command line shows in ps)")
    gateway.add_argument("--project-name", default=None)
    gateway.add_argument("--runtime", required=True, help="private runtime folder (shared with the launcher)")
    gateway.add_argument("--launcher", default="http://127.0.0.1:9000/launcher/", help="the launcher's address")
    gateway.add_argument("--host", default="127.0.0.1")
    gateway.add_argument("--port", type=int_range(1, 65535), default=8080)
    gateway.add_argument("--public-url", default="/", help="the login page as the browser reaches it")
    gateway.add_argument("--session-page", default="/session/{port}/", help="a session's page (behind nginx)")
    gateway.add_argument("--session-ws", default="ws://USE_HOST/session/{port}/ws",
                         help="a session's websocket; USE_HOST: the page's host, ws becomes wss under https")
    gateway.add_argument("--trusted-proxy", action="append", default=None,
                         help="address of the reverse proxy whose X-Forwarded-For is believed (default: 127.0.0.1)")
    gateway.add_argument("--insecure-cookie", action="store_true", help="no TLS in front (tests on loopback only)")
    gateway.add_argument("--autosave", default=None, help="autosave folder (default: RUNTIME/autosave)")
    gateway.add_argument("--developer", action="store_true", help="offer the tiny random SAM in sessions")

    site = subparsers.add_parser("nginx-site", help="team deployment: print the nginx site for these ports")
    site.add_argument("--listen", default="443")
    site.add_argument("--gateway-port", type=int_range(1, 65535), default=8080)
    site.add_argument("--session-ports", default="9101-9140")
    site.add_argument("--certificate", default="/etc/ssl/mva/cert.pem")
    site.add_argument("--certificate-key", default="/etc/ssl/mva/key.pem")
    site.add_argument("--server-name", default="_")
    site.add_argument("--log-dir", default="/var/log/nginx")


def run_deploy_command(args):
    """Run `mva launcher`, `mva gateway` or `mva nginx-site`; returns an exit status."""
    if args.command == "nginx-site":
        print(nginx_site(args.listen, args.gateway_port, port_range(args.session_ports), args.certificate,
                         args.certificate_key, args.server_name, args.log_dir), end="")
        return 0
    if args.command == "launcher":
        from wslink.launcher import start
        config = launcher_config(args.runtime, args.port, port_range(args.session_ports), args.grace,
                                 template=args.config)
        start([write_launcher_config(config, args.runtime)])
        return 0
    from MVAWorkflowLib.database import default_url
    from MVAWorkflowLib.errors import WorkflowError
    from MVAWorkflowLib.service import WorkflowService

    from MVAWebLib.gateway import GatewayConfig, run_gateway
    from MVAWebLib.workflow_session import database_url
    from MVAWorkflowLib.security import read_secret
    url = database_url(args.project) if args.project else (read_secret("MVA_DATABASE_URL") or default_url())
    try:
        service = WorkflowService.open(url)
    except WorkflowError as error:
        print(f"mva gateway: {error}", file=sys.stderr)
        return 2
    config = GatewayConfig(url, args.runtime, args.launcher, args.project_name, args.public_url, args.session_page,
                           args.session_ws, args.trusted_proxy or ("127.0.0.1",), not args.insecure_cookie,
                           args.autosave, args.developer)
    print(f"mva gateway: log in at {args.public_url} (listening on {args.host}:{args.port})", flush=True)
    run_gateway(service, config, args.host, args.port)
    return 0

"""The team deployment's login endpoint (`mva gateway`): the only place that sees passwords.

    browser --TLS--> nginx --> gateway (/, /login, /logout)          the login page and its checks
                          \\--> session process of that user (/session/PORT/...)  one per logged-in user
    gateway --loopback--> wslink launcher (POST /launcher/)            starts session processes

POST /login checks the password with `WorkflowService.login` (throttled per user and per address, audited),
keeps the session token in an HttpOnly, SameSite=Strict cookie, finds the user's running session process (or
asks the launcher, on loopback, for a new one) and sends the browser to it with a one-time ticket
(`issue_ticket`, 60 s) as wslink's secret. The session process redeems the ticket at the websocket hello, so
the password never leaves this process and the cookie never reaches the session. A reload comes back here
(no ticket in the address any more) and gets a new ticket for the same process.
"""
import asyncio
import html
import json
import logging
import os
import urllib.parse

from aiohttp import ClientError, ClientSession, ClientTimeout, web

from MVAWebLib.runtime_files import RuntimeFolder

_LOG = logging.getLogger(__name__)
COOKIE = "mva_login"
LAUNCH_TIMEOUT_S = 300  # a session process imports torch, VTK and trame-slicer: 10-20 s idle, minutes on a loaded host
RECORD_WAIT_S = 10  # after the launcher's answer, for the process's session record (written before its ready line)

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Log in · {project}</title>
<meta name="viewport" content="width=device-width,initial-scale=1"><link rel="icon" href="data:,">
<style>body{{font-family:sans-serif;background:#f4f4f6;display:flex;justify-content:center;margin-top:12vh}}
form{{background:#fff;padding:2em;border-radius:8px;box-shadow:0 2px 8px #0002;width:320px}}
input{{width:100%;margin:.4em 0 1em;padding:.5em;box-sizing:border-box}}button{{padding:.6em 1.4em}}
.error{{color:#b00020}}.info{{color:#245}}</style></head>
<body><form method="post" action="{login_url}" id="mva-login-form"><h2>Log in to {project}</h2>
<p class="{kind}" id="mva-login-{kind}">{message}</p>
<label>User name<input name="username" id="mva-login-user" autocomplete="username" autofocus></label>
<label>Password<input name="password" id="mva-login-password" type="password" autocomplete="current-password">
</label><button type="submit" id="mva-login">Log in</button></form></body></html>"""


class GatewayConfig:
    """Where things are: the database, the launcher, the runtime folder and the public addresses."""

    def __init__(self, database_url, runtime_dir, launcher_url, project_name=None, public_url="/",
                 session_page="/session/{port}/", session_ws="ws://USE_HOST/session/{port}/ws",
                 trusted_proxies=("127.0.0.1",), secure_cookie=True, autosave_dir=None, developer=False):
        self.database_url = database_url
        self.runtime = RuntimeFolder(runtime_dir)
        self.launcher_url = launcher_url
        self.project_name = project_name
        self.public_url = public_url
        self.session_page = session_page
        self.session_ws = session_ws
        self.trusted_proxies = tuple(trusted_proxies)
        self.secure_cookie = secure_cookie
        self.autosave_dir = autosave_dir or os.path.join(self.runtime.root, "autosave")
        self.developer = developer


class Gateway:
    """The aiohttp application of the login endpoint."""

    def __init__(self, service, config):
        self.service = service
        self.config = config
        self._locks = {}  # user id -> asyncio.Lock: one launch at a time per user
        self.app = web.Application()
        self.app.add_routes([web.get("/", self.index), web.post("/login", self.login),
                             web.get("/logout", self.logout), web.get("/healthz", self.health)])

    # --- pages ----------------------------------------------------------------------------------------
    def page(self, message="", kind="info", status=200):
        project = html.escape(self.config.project_name or "the annotation project")
        body = PAGE.format(project=project, message=html.escape(message), kind=kind,
                           login_url=html.escape(urllib.parse.urljoin(self.config.public_url, "login")))
        return web.Response(text=body, content_type="text/html", status=status,
                            headers={"Cache-Control": "no-store", "X-Frame-Options": "DENY"})

    async def health(self, _request):
        return web.json_response({"ok": True})

    async def index(self, request):
        from MVAWorkflowLib.errors import AuthenticationError
        token = request.cookies.get(COOKIE)
        if token:
            try:
                user = self.service.whoami(token)
            except AuthenticationError:
                user = None
            if user is not None:
                return await self.to_session(user, token)
        if "expired" in request.query:
            return self.page("Your login has expired: log in again. Unsaved work was kept and is offered when "
                             "you open the case again.", "error")
        return self.page("Logged out." if "logged_out" in request.query else "")

    async def login(self, request):
        from MVAWorkflowLib.errors import AuthenticationError, WorkflowError
        from MVAWorkflowLib.security import client_address
        form = await request.post()
        address = client_address(request.remote, request.headers.get("X-Forwarded-For"),
                                 self.config.trusted_proxies)
        try:
            session = await asyncio.get_running_loop().run_in_executor(
                None, lambda: self.service.login(str(form.get("username", "")), str(form.get("password", "")),
                                                 address=address))
        except AuthenticationError as error:
            return self.page(str(error), "error", status=401)
        except WorkflowError as error:
            return self.page(str(error), "error", status=400)
        response = await self.to_session(session.user, session.token)
        response.set_cookie(COOKIE, session.token, httponly=True, samesite="Strict", path="/",
                            secure=self.config.secure_cookie)
        return response

    async def logout(self, request):
        token = request.cookies.get(COOKIE)
        if token:
            self.service.logout(token)
        response = web.HTTPFound(urllib.parse.urljoin(self.config.public_url, "?logged_out=1"))
        response.del_cookie(COOKIE, path="/")
        raise response

    # --- sessions ---------------------------------------------------------------------------------------
    async def to_session(self, user, token):
        """A redirect to the user's session process (started if needed) with a fresh one-time ticket."""
        lock = self._locks.setdefault(user.id, asyncio.Lock())
        async with lock:
            record = self.config.runtime.live_session(user.id)
            port = record["port"] if record else await self.launch(user)
        if port is None:
            return self.page("No annotation session could be started: all session slots are in use or the "
                             "server is overloaded. Try again in a minute, or ask the administrator.", "error",
                             status=503)
        ticket = self.service.issue_ticket(token)
        page = self.config.session_page.format(port=port)
        query = urllib.parse.urlencode({"sessionURL": self.config.session_ws.format(port=port), "secret": ticket})
        response = web.HTTPSeeOther(f"{page}index.html?{query}")
        response.headers["Cache-Control"] = "no-store"
        response.headers["Referrer-Policy"] = "no-referrer"
        return response

    async def launch(self, user):
        """Ask the launcher for a session process of `user`; returns its port, or None."""
        config = self.config
        request = {"user_id": user.id, "database_url": config.database_url, "project_name": config.project_name,
                   "gateway_url": config.public_url, "autosave_dir": config.autosave_dir,
                   "developer": config.developer}
        name = config.runtime.write_request(request)
        try:
            async with ClientSession(timeout=ClientTimeout(total=LAUNCH_TIMEOUT_S)) as http:
                async with http.post(config.launcher_url, json={"application": "annotator", "request": name}) as reply:
                    text = await reply.text()
                    if reply.status != 200:
                        _LOG.error("Launcher refused a session for user %s: %s %s", user.id, reply.status, text)
                        return None
            port = int(json.loads(text)["port"])
        except (ClientError, asyncio.TimeoutError, ValueError, KeyError) as error:
            _LOG.error("Launcher did not start a session for user %s: %s", user.id, error)
            return None
        # the process records itself once it serves; wslink's launcher also answers "ready" for a process that
        # died at start (after 60 s), whose port then serves nothing: no redirect to a dead page
        loop = asyncio.get_running_loop()
        deadline = loop.time() + RECORD_WAIT_S
        while (config.runtime.live_session(user.id) or {}).get("port") != port:
            if loop.time() > deadline:
                _LOG.error("The session process of user %s on port %s is not serving (it ended at start: see "
                           "the launcher's log folder)", user.id, port)
                return None
            await asyncio.sleep(0.1)
        return port


def run_gateway(service, config, host="127.0.0.1", port=8080):
    """Serve the gateway until interrupted."""
    web.run_app(Gateway(service, config).app, host=host, port=port, print=None)
